"""Pooling and resampling: windows, adaptive and global pooling, upsampling. No
parameters; pooling counts no MACs (the papers' convention counts conv and linear only).
"""

from __future__ import annotations

import math
from functools import partial

from udnet.backends.pytorch.helper_text import helper_text
from udnet.ops.conv import pair_text
from udnet.ops.shapes import window_out
from udnet.ops.spec import Arg, ArgError, Draw, Field, OpSpec, Shape, ShapeError, Torch, square

GLOBAL_AVG_POOL = helper_text("global_avg_pool.py")

_FILL = "#d3efd9"


def _pool_infer(op: str, s: Shape, a: dict) -> Shape:
    for p, k in zip(a["pad"], a["kernel"]):
        if 2 * p > k:  # PyTorch's pooling pads at most half its window
            raise ShapeError(f"{op} padding {p} is more than half the kernel {k}")
    oh, ow = window_out(op, s, a, dil=(1, 1))
    return (s[0], oh, ow)


def _pool_label(op: str, a: dict) -> str:
    k = a["kernel"]
    text = f"{op} {k[0]}x{k[1]}"
    if a.get("stride") is not None and tuple(a["stride"]) != tuple(k):
        text += f" /{pair_text(a['stride'])}"
    return text


def _pool_fields(s: Shape, a: dict) -> tuple[Field, ...]:
    stride = a["stride"] if a["stride"] is not None else a["kernel"]
    return (
        Field("kernel", square(a["kernel"])),
        Field("stride", square(stride), "stride", same_as="kernel"),
        Field("pad", square(a["pad"]), "padding", "0"),
        Field("ceil", a["ceil"], "ceil_mode", "False"),
    )


_WINDOW_ARGS = (
    Arg("kernel", "pos_pair"),
    Arg("stride", "opt_pair", None, doc="defaults to the kernel size"),
    Arg("pad", "pair", 0),
    Arg("ceil", "bool", False),
)


MAXPOOL = OpSpec(
    "maxpool",
    _WINDOW_ARGS,
    partial(_pool_infer, "maxpool"),
    Torch("nn.MaxPool2d", _pool_fields),
    Draw(_FILL, partial(_pool_label, "maxpool")),
    "max pooling",
    rank=(3,),
)

AVGPOOL = OpSpec(
    "avgpool",
    _WINDOW_ARGS + (Arg("count_pad", "bool", True, doc="count zero padding in the average"),),
    partial(_pool_infer, "avgpool"),
    Torch("nn.AvgPool2d", lambda s, a: _pool_fields(s, a) + (
        Field("count_pad", a["count_pad"], "count_include_pad", "True"),)),
    Draw(_FILL, partial(_pool_label, "avgpool")),
    "average pooling",
    rank=(3,),
)


def _adaptive_infer(s: Shape, a: dict) -> Shape:
    return (s[0],) + tuple(a["size"])


def _adaptive_label(name: str, a: dict) -> str:
    return f"{name.replace('_', ' ')} {a['size'][0]}x{a['size'][1]}"


def _adaptive_fields(s: Shape, a: dict) -> tuple[Field, ...]:
    return (Field("size", square(a["size"])),)


def _adaptive(name: str, module: str, what: str) -> OpSpec:  # pragma: no mutate block (runs at import)
    return OpSpec(
        name,
        (Arg("size", "pos_pair", doc="output size, s or [h, w]"),),
        _adaptive_infer,
        Torch(module, _adaptive_fields),
        Draw(_FILL, partial(_adaptive_label, name)),
        f"{what} pooling to a fixed output size, whatever the input size",
        rank=(3,),
    )


GAP = OpSpec(
    "gap",
    (Arg("keep", "bool", False, doc="keep [C, 1, 1] instead of [C]"),),
    lambda s, a: (s[0], 1, 1) if a["keep"] else (s[0],),
    Torch("GlobalAvgPool", lambda s, a: (Field("keep", a["keep"], "keep", "False"),), (GLOBAL_AVG_POOL,)),
    Draw(_FILL),
    "global average pooling",
    saves_output=True,
    rank=(3,),
)


def _upsample_check(a: dict) -> dict:
    if a["size"] is not None and a["scale"] is not None:
        raise ArgError("upsample takes a scale or a size, not both", "size",
                       hint="upsample(2) doubles height and width; upsample(size = [h, w]) resizes to h x w")
    if a["align_corners"] and a["mode"] != "bilinear":
        raise ArgError("upsample align_corners applies to bilinear upsampling only", "align_corners",
                       hint='write mode = "bilinear", or leave align_corners out')
    if a["size"] is None and a["scale"] is None:
        a = dict(a, scale=2)
    return a


def _upsample_infer(s: Shape, a: dict) -> Shape:
    if a["size"] is not None:
        return (s[0],) + tuple(a["size"])
    h, w = (math.floor(d * a["scale"]) for d in s[1:])  # as PyTorch rounds: down
    if h < 1 or w < 1:
        raise ShapeError(f"upsample by {a['scale']!r} leaves no output from the input {s[1]}x{s[2]}",
                         hint="the scale multiplies height and width; it must leave at least 1x1")
    return (s[0], h, w)


def _upsample_fields(s: Shape, a: dict) -> tuple[Field, ...]:
    size = Field("size", square(a["size"]), "size") if a["size"] is not None else None
    return (size or Field("scale", a["scale"], "scale_factor"), Field("mode", a["mode"], "mode"),
            Field("align_corners", a["align_corners"], "align_corners", "False"))


UPSAMPLE = OpSpec(
    "upsample",
    (
        Arg("scale", "opt_number", None, lo=0.0, doc="multiplies height and width (2 when no size is given)"),
        Arg("mode", "choice", "nearest", ("nearest", "bilinear")),
        Arg("size", "opt_pair", None, doc="the output size, s or [h, w], instead of a scale"),
        Arg("align_corners", "bool", False, doc="bilinear only: corner pixels' centres align"),
    ),
    _upsample_infer,
    Torch("nn.Upsample", _upsample_fields),
    Draw(_FILL, lambda a: f"upsample to {pair_text(a['size'])}" if a["size"] else f"upsample x{a['scale']}"),
    "spatial upsampling by a scale (an integer or a number) or to a size",
    rank=(3,),
    check=_upsample_check,
)

OPS = (
    MAXPOOL,
    AVGPOOL,
    _adaptive("adaptive_avgpool", "nn.AdaptiveAvgPool2d", "average"),
    _adaptive("adaptive_maxpool", "nn.AdaptiveMaxPool2d", "max"),
    GAP,
    UPSAMPLE,
)
