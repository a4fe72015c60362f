"""Hints for an unknown name: what it is elsewhere, and which real ops are near it.

A look-alike is not a suggestion: ``relu6`` is not ``relu``, so an unknown name that
looks like an op is answered with the ops of similar names *and what each computes*,
never with "did you mean". Names of PyTorch modules and paper ops that udnet spells
differently (``batchnorm`` is ``bn``) or does not have are recognised by name.
"""

from __future__ import annotations

import difflib
from typing import Iterable

#: PyTorch and paper spellings of what udnet has under another name or as an operator.
SAME_AS = {
    "batchnorm": "bn", "batch_norm": "bn", "batchnorm2d": "bn", "bn2d": "bn",
    "conv2d": "conv", "convolution": "conv",
    "fc": "linear", "dense": "linear", "fully_connected": "linear",
    "max_pool": "maxpool", "max_pool2d": "maxpool", "maxpool2d": "maxpool", "pool": "maxpool or avgpool",
    "avg_pool": "avgpool", "avg_pool2d": "avgpool", "avgpool2d": "avgpool",
    "global_avg_pool": "gap", "global_pool": "gap", "global_average_pooling": "gap",
    "concat": "the operator ++ (a ++ b)", "cat": "the operator ++ (a ++ b)",
    "add": "the operator + (a + b)", "residual": "the operator + (a + b)", "sum_": "the operator + (a + b)",
    "slice": "a channel slice t[lo:hi]", "split": "channel slices t[:k] and t[k:]",
    "view": "flatten", "reshape": "flatten", "interpolate": "upsample",
}  # fmt: skip

#: Ops of PyTorch and the literature, by the names people write. Those udnet lacks are
#: named as such instead of being matched to a look-alike (entries that are real ops are
#: ignored: the op table wins).
ELSEWHERE = {
    "relu6": "ReLU capped at 6 (PyTorch nn.ReLU6, MobileNet)",
    "silu": "x * sigmoid(x) (PyTorch nn.SiLU)", "swish": "x * sigmoid(x) (nn.SiLU)",
    "gelu": "Gaussian error linear unit (PyTorch nn.GELU)",
    "hardswish": "PyTorch nn.Hardswish (MobileNetV3)", "hard_swish": "PyTorch nn.Hardswish",
    "hardsigmoid": "PyTorch nn.Hardsigmoid", "hard_sigmoid": "PyTorch nn.Hardsigmoid",
    "hardtanh": "PyTorch nn.Hardtanh", "leaky_relu": "PyTorch nn.LeakyReLU", "leakyrelu": "PyTorch nn.LeakyReLU",
    "prelu": "ReLU with a learned slope (PyTorch nn.PReLU)", "selu": "PyTorch nn.SELU", "celu": "PyTorch nn.CELU",
    "mish": "x * tanh(softplus(x)) (PyTorch nn.Mish)", "softplus": "PyTorch nn.Softplus",
    "softmax": "PyTorch nn.Softmax", "log_softmax": "PyTorch nn.LogSoftmax", "glu": "PyTorch nn.GLU",
    "groupnorm": "group normalisation (PyTorch nn.GroupNorm)", "group_norm": "PyTorch nn.GroupNorm",
    "layernorm": "layer normalisation (PyTorch nn.LayerNorm)", "layer_norm": "PyTorch nn.LayerNorm",
    "instancenorm": "instance normalisation (PyTorch nn.InstanceNorm2d)",
    "instance_norm": "PyTorch nn.InstanceNorm2d", "frozen_bn": "frozen batch norm (torchvision FrozenBatchNorm2d)",
    "drop_path": "stochastic depth (torchvision StochasticDepth)", "stochastic_depth": "torchvision StochasticDepth",
    "conv_transpose": "transposed convolution (PyTorch nn.ConvTranspose2d)",
    "deconv": "transposed convolution (PyTorch nn.ConvTranspose2d)",
    "adaptive_avgpool": "PyTorch nn.AdaptiveAvgPool2d", "adaptive_maxpool": "PyTorch nn.AdaptiveMaxPool2d",
    "channel_shuffle": "ShuffleNet's channel shuffle (PyTorch nn.ChannelShuffle)",
    "pixel_shuffle": "sub-pixel upsampling (PyTorch nn.PixelShuffle)",
    "conv1d": "1-d convolution (PyTorch nn.Conv1d)", "conv3d": "3-d convolution (PyTorch nn.Conv3d)",
    "lstm": "a recurrent layer (PyTorch nn.LSTM)", "gru": "a recurrent layer (PyTorch nn.GRU)",
    "attention": "attention (PyTorch nn.MultiheadAttention)", "embedding": "PyTorch nn.Embedding",
    "lrn": "local response normalisation (PyTorch nn.LocalResponseNorm)",
}  # fmt: skip


def unknown_name_hint(name: str, ops: dict, others: Iterable[str]) -> str | None:
    """The hint for an unknown ``name``; ``ops`` maps op names to specs with a ``doc``,
    ``others`` are the blocks, functions and variables in reach (typos of those are
    plainly suggested)."""
    key = name.lower()
    if key in SAME_AS:
        return f"udnet writes this as {SAME_AS[key]}"
    close_ops = difflib.get_close_matches(name, sorted(ops), 3, 0.6)
    if key in ELSEWHERE and key not in ops:
        text = f"'{name}' is {ELSEWHERE[key]}, which udnet does not have"
        return text + (f"; ops with similar names: {_described(close_ops, ops)}" if close_ops else "")
    if key in ops and key != name:
        return f"op names are lower case: {key} ({ops[key].doc})"
    close = difflib.get_close_matches(name, sorted(set(others) - set(ops)), 1)
    if close and not (close_ops and difflib.SequenceMatcher(None, name, close_ops[0]).ratio()
                      > difflib.SequenceMatcher(None, name, close[0]).ratio()):
        return f"did you mean '{close[0]}'?"
    if close_ops:
        return f"no op is called '{name}'; ops with similar names: {_described(close_ops, ops)}"
    return None


def _described(names: list[str], ops: dict) -> str:
    return "; ".join(f"{n} ({ops[n].doc})" if ops[n].doc else n for n in names)
