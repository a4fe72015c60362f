"""Normalisation over channels: batch norm (trained or frozen), group norm, layer norm.

Normalisation counts no MACs. Frozen batch norm keeps its statistics and affine as
buffers, so it has no parameters.
"""

from __future__ import annotations

from functools import partial

from udnet.backends.pytorch.helper_text import helper_text
from udnet.ops.spec import EPS_MIN, Arg, Draw, Field, OpSpec, Shape, ShapeError, Torch, numel

# model.py's helpers for frozen_bn and layernorm, read as text from their module.
FROZEN_BATCH_NORM = helper_text("norm_layers.py", "FrozenBatchNorm2d")
LAYER_NORM_2D = helper_text("norm_layers.py", "LayerNorm2d")

_EPS_WHY = (
    "eps is added to the variance before dividing by its square root, so it must stay positive "
    "in float32 (whose normal numbers start near 1.2e-38)"
)


def _eps(default: float = 1e-5) -> Arg:  # pragma: no mutate block (runs at import)
    return Arg("eps", "float", default, lo=EPS_MIN, why=_EPS_WHY)


def _channels(op: str, s: Shape, a: dict) -> Shape:
    if s[0] < 1:
        raise ShapeError(f"{op} input has no channels")
    return s


def _eps_field(a: dict) -> Field:
    return Field("eps", a["eps"], "eps", "1e-05")


BN = OpSpec(
    "bn",
    (
        _eps(),
        Arg("momentum", "float", 0.1, lo=0.0, hi=1.0, why=(
            "the running statistics move this fraction of the way to each batch's "
            "(0 freezes them, 1 keeps only the last batch)"
        )),
        Arg("affine", "bool", True),
    ),
    partial(_channels, "bn"),
    Torch(lambda s: "nn.BatchNorm2d" if len(s) == 3 else "nn.BatchNorm1d", lambda s, a: (
        Field("channels", s[0]),
        _eps_field(a),
        Field("momentum", a["momentum"], "momentum", "0.1"),
        Field("affine", a["affine"], "affine", "True"),
    )),
    Draw("#fff1bd"),
    "batch normalisation over channels (weight 1, bias 0 at init)",
    params=lambda s, a: 2 * s[0] if a["affine"] else 0,
)

FROZEN_BN = OpSpec(
    "frozen_bn",
    (_eps(),),
    partial(_channels, "frozen_bn"),
    Torch("FrozenBatchNorm2d", lambda s, a: (Field("channels", s[0]), _eps_field(a)), (FROZEN_BATCH_NORM,)),
    Draw("#fff1bd", lambda a: "frozen bn"),
    "batch normalisation with fixed statistics and affine (buffers, loaded from a checkpoint)",
    rank=(3,),
)


def _groupnorm_infer(s: Shape, a: dict) -> Shape:
    if s[0] % a["groups"]:
        raise ShapeError(f"groupnorm groups = {a['groups']} must divide the input channels ({s[0]})",
                         hint="choose a number of groups that divides the channels, such as 32 for 256")
    return s


GROUPNORM = OpSpec(
    "groupnorm",
    (Arg("groups", "pos_int", doc="channel groups, each normalised on its own"), _eps(), Arg("affine", "bool", True)),
    _groupnorm_infer,
    Torch("nn.GroupNorm", lambda s, a: (
        Field("groups", a["groups"]),
        Field("channels", s[0]),
        _eps_field(a),
        Field("affine", a["affine"], "affine", "True"),
    )),
    Draw("#fff1bd", lambda a: f"groupnorm /{a['groups']}"),
    "group normalisation: mean and variance over each group of channels and all positions",
    params=lambda s, a: 2 * s[0] if a["affine"] else 0,
)

LAYERNORM = OpSpec(
    "layernorm",
    (_eps(), Arg("affine", "bool", True)),
    partial(_channels, "layernorm"),
    Torch(lambda s: "LayerNorm2d" if len(s) == 3 else "nn.LayerNorm", lambda s, a: (
        Field("channels", s[0]),
        _eps_field(a),
        Field("affine", a["affine"], "elementwise_affine", "True"),
    ), (LAYER_NORM_2D,)),
    Draw("#fff1bd"),
    "layer normalisation over the channels at each position",
    params=lambda s, a: 2 * s[0] if a["affine"] else 0,
    # On [C, H, W]: the permuted input, the normalised tensor and its permutation back.
    activation=lambda i, o, a: (3 if len(o) == 3 else 1) * numel(o),
)

OPS = (BN, FROZEN_BN, GROUPNORM, LAYERNORM)
