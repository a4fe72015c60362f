"""Element-wise activations (and softmax over channels): no parameters, no MACs."""

from __future__ import annotations

from udnet.ops.shapes import same
from udnet.ops.spec import HALF_MAX, Arg, Draw, Field, OpSpec, Torch, num_text

_FILL = "#ffd9cc"


def _activation(name: str, module: str, doc: str, saves_output: bool, args=(), fields=lambda s, a: (),
                label=None, inplace: Field | None = None) -> OpSpec:  # pragma: no mutate block (runs at import)
    """``saves_output``: its backward reads its output (sigmoid, tanh, elu, softmax, relu
    itself) rather than its input, so a ReLU after it must not run in place."""
    return OpSpec(name, args, same, Torch(module, fields, inplace=inplace), Draw(_FILL, label), doc,
                  saves_output=saves_output)


OPS = (
    _activation("relu", "nn.ReLU", "max(x, 0)", True, inplace=Field("inplace", True, "inplace", "False")),
    _activation("relu6", "nn.ReLU6", "min(max(x, 0), 6)", False),
    _activation("sigmoid", "nn.Sigmoid", "1 / (1 + exp(-x))", True),
    _activation("tanh", "nn.Tanh", "hyperbolic tangent", True),
    _activation(
        "elu", "nn.ELU", "exponential linear unit: x if x > 0, else alpha * (exp(x) - 1)", True,
        (Arg("alpha", "float", 1.0, lo=0.0, why=(
            f"elu saturates at -alpha for negative inputs (0 gives relu), and {num_text(HALF_MAX)}, the largest "
            "float16, keeps that finite in half precision"
        )),),
        lambda s, a: (Field("alpha", a["alpha"], None, "1.0"),),
    ),
    _activation("silu", "nn.SiLU", "x * sigmoid(x) (swish)", False),
    _activation(
        "gelu", "nn.GELU", "x * Phi(x), Phi the standard normal CDF (or its tanh approximation)", False,
        (Arg("approximate", "choice", "none", ("none", "tanh")),),
        lambda s, a: (Field("approximate", a["approximate"], "approximate", '"none"'),),
        lambda a: "gelu" if a["approximate"] == "none" else "gelu (tanh)",
    ),
    _activation("hardswish", "nn.Hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)", False),
    _activation("hardsigmoid", "nn.Hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3)", False),
    _activation(
        "leaky_relu", "nn.LeakyReLU", "x if x > 0, else slope * x", False,
        (Arg("slope", "float", 0.01, doc="the slope for negative inputs"),),
        lambda s, a: (Field("slope", a["slope"], None, "0.01"),),
        lambda a: f"leaky_relu {a['slope']:g}",
    ),
    _activation(
        "softmax", "nn.Softmax", "softmax over the channels at each position", True,
        fields=lambda s, a: (Field("dim", 1, "dim"),),
    ),
)
