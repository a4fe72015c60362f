"""Convolutions and the fully connected layer: the ops with weights that MACs count.

MACs count the multiply-accumulates per sample, the papers' convention: a conv's output
positions times its weight's size; a transposed conv's input positions times its
weight's size (each input value scatters through the whole kernel), as FlopCounterMode
counts them.
"""

from __future__ import annotations

from functools import partial

from udnet.backends.pytorch.helper_text import helper_text
from udnet.ops.shapes import window_out
from udnet.ops.spec import HALF_MAX, Arg, Draw, Field, OpSpec, Shape, ShapeError, Torch, fmt, num_text, square

# model.py's helpers for conv and linear, read as text from their module.
INIT_WEIGHT = helper_text("init_layers.py", "init_weight")
CONV2D = helper_text("init_layers.py", "conv2d")
LINEAR = helper_text("init_layers.py", "linear")

_BIAS_WHY = (
    f"the bias is this constant, and {num_text(HALF_MAX)}, the largest float16, keeps it finite in half precision"
)
INITS = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "zeros", "default")


def _groups(op: str, c: int, out: int, g: int) -> None:
    if c < 1:
        raise ShapeError(f"{op} input has no channels")
    if c % g or out % g:
        raise ShapeError(
            f"{op} groups = {g} must divide both the input channels ({c}) and the output channels ({out})"
        )


def _kernel_fields(s: Shape, a: dict) -> tuple[Field, ...]:
    """The constructor arguments conv2d and nn.ConvTranspose2d begin with."""
    return (
        Field("in", s[0]),
        Field("out", a["out"]),
        Field("kernel", square(a["kernel"])),
        Field("stride", square(a["stride"]), "stride", "1"),
        Field("pad", square(a["pad"]), "padding", "0"),
    )


def _conv_infer(s: Shape, a: dict) -> Shape:
    _groups("conv", s[0], a["out"], a["groups"])
    oh, ow = window_out("conv", s, a)
    return (a["out"], oh, ow)


def _conv_params(s: Shape, a: dict) -> int:
    kh, kw = a["kernel"]
    return a["out"] * (s[0] // a["groups"]) * kh * kw + (a["out"] if a["bias"] else 0)


def _conv_macs(i: Shape, o: Shape, a: dict) -> int:
    """Multiply-adds: each output value sums over its group's input channels and the kernel."""
    return o[0] * o[1] * o[2] * (i[0] // a["groups"]) * a["kernel"][0] * a["kernel"][1]


def _transposed_params(s: Shape, a: dict) -> int:
    return s[0] * (a["out"] // a["groups"]) * a["kernel"][0] * a["kernel"][1] + (a["out"] if a["bias"] else 0)


def _transposed_macs(i: Shape, o: Shape, a: dict) -> int:
    """Multiply-adds: each input value is scattered over its group's output channels and the kernel."""
    return i[1] * i[2] * i[0] * (o[0] // a["groups"]) * a["kernel"][0] * a["kernel"][1]


def _window_label(name: str, stride_mark: str, a: dict) -> str:
    """The drawn label of a convolution: "3x3 conv, 64 /2, g=32, d=2". A transposed
    convolution marks its stride "x2", since it enlarges by it."""
    k = a["kernel"]
    text = f"{k[0]}x{k[1]} {name}, {a['out']}"
    if tuple(a["stride"]) != (1, 1):
        text += f" {stride_mark}{pair_text(a['stride'])}"
    if a["groups"] > 1:
        text += f", g={a['groups']}"
    if tuple(a["dilation"]) != (1, 1):
        text += f", d={pair_text(a['dilation'])}"
    return text


def pair_text(v) -> str:
    """A pair as a drawing label writes it: 3, or 3x1."""
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


CONV = OpSpec(
    "conv",
    (
        Arg("out", "pos_int", doc="output channels"),
        Arg("kernel", "pos_pair", doc="kernel size, k or [kh, kw]"),
        Arg("stride", "pos_pair", 1),
        Arg("pad", "pair", 0),
        Arg("dilation", "pos_pair", 1),
        Arg("groups", "pos_int", 1),
        Arg("bias", "bool", False),
        Arg("weight_init", "choice", "kaiming_normal", INITS),
        Arg("bias_init", "float", 0.0, why=_BIAS_WHY),
    ),
    _conv_infer,
    Torch("conv2d", lambda s, a: _kernel_fields(s, a) + (
        Field("dilation", square(a["dilation"]), "dilation", "1"),
        Field("groups", a["groups"], "groups", "1"),
        Field("bias", a["bias"], "bias", "False"),
        Field("weight_init", a["weight_init"], "weight_init", '"kaiming_normal"'),
        Field("bias_init", a["bias_init"], "bias_init", "0.0"),
    ), (INIT_WEIGHT, CONV2D)),
    Draw("#cfe0fb", partial(_window_label, "conv", "/")),
    "2-d convolution",
    params=_conv_params,
    macs=_conv_macs,
    rank=(3,),
)


def _transposed_infer(s: Shape, a: dict) -> Shape:
    _groups("conv_transpose", s[0], a["out"], a["groups"])
    out = []
    for size, k, st, p, op, d in zip(s[1:], a["kernel"], a["stride"], a["pad"], a["output_pad"], a["dilation"]):
        if op >= st and op >= d:
            raise ShapeError(
                f"conv_transpose output_pad {op} must be smaller than the stride ({st}) or the dilation ({d})",
                hint="output_pad picks one of the stride's possible output sizes; it is at most stride - 1",
            )
        n = (size - 1) * st - 2 * p + d * (k - 1) + op + 1
        if n < 1:
            raise ShapeError(
                f"conv_transpose with kernel {fmt(a['kernel'])} and padding {fmt(a['pad'])} leaves no output "
                f"from the input {s[1]}x{s[2]}",
                hint="the padding removes more than the kernel adds: pad less",
            )
        out.append(n)
    return (a["out"], out[0], out[1])


CONV_TRANSPOSE = OpSpec(
    "conv_transpose",
    (
        Arg("out", "pos_int", doc="output channels"),
        Arg("kernel", "pos_pair", doc="kernel size, k or [kh, kw]"),
        Arg("stride", "pos_pair", 1),
        Arg("pad", "pair", 0, doc="removed from each border of the output"),
        Arg("output_pad", "pair", 0, doc="added to one side of the output: picks among the sizes a stride allows"),
        Arg("groups", "pos_int", 1),
        Arg("dilation", "pos_pair", 1),
        Arg("bias", "bool", False),
    ),
    _transposed_infer,
    Torch("nn.ConvTranspose2d", lambda s, a: _kernel_fields(s, a) + (
        Field("output_pad", square(a["output_pad"]), "output_padding", "0"),
        Field("groups", a["groups"], "groups", "1"),
        Field("bias", a["bias"], "bias", "True"),
        Field("dilation", square(a["dilation"]), "dilation", "1"),
    )),
    Draw("#cfe0fb", partial(_window_label, "conv_transpose", "x")),
    "transposed 2-d convolution (the gradient of conv): upsamples by its stride",
    params=_transposed_params,
    macs=_transposed_macs,
    rank=(3,),
)


def _linear_infer(s: Shape, a: dict) -> Shape:
    if s[0] < 1:
        raise ShapeError("linear input has no features")
    return (a["out"],)


LINEAR_OP = OpSpec(
    "linear",
    (
        Arg("out", "pos_int"),
        Arg("bias", "bool", True),
        Arg("weight_init", "choice", "default", INITS),
        Arg("bias_init", "float", 0.0, why=_BIAS_WHY),
    ),
    _linear_infer,
    Torch("linear", lambda s, a: (
        Field("in", s[0]),
        Field("out", a["out"]),
        Field("bias", a["bias"], "bias", "True"),
        Field("weight_init", a["weight_init"], "weight_init", '"default"'),
        Field("bias_init", a["bias_init"], "bias_init", "0.0"),
    ), (INIT_WEIGHT, LINEAR)),
    Draw("#e3d5f5", lambda a: f"linear, {a['out']}"),
    "fully connected layer",
    params=lambda s, a: a["out"] * s[0] + (a["out"] if a["bias"] else 0),
    macs=lambda i, o, a: i[0] * o[0],
    rank=(1,),
)

OPS = (CONV, CONV_TRANSPOSE, LINEAR_OP)
