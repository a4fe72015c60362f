"""Pooling and resampling: windows, global pooling, upsampling. No
parameters; pooling counts no MACs (the papers' convention counts conv and linear only).
"""

from __future__ import annotations

from udnet.ops.conv import pair_text
from udnet.ops.shapes import window_out
from udnet.ops.spec import Arg, Draw, Field, OpSpec, Shape, Torch, square

GLOBAL_AVG_POOL = '''
class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: [N, C, H, W] -> [N, C] (or [N, C, 1, 1])."""

    def __init__(self, keep=False):
        super().__init__()
        self.keep = keep

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keep)
'''

_FILL = "#d3efd9"


def _pool_infer(op: str):
    def infer(s: Shape, a: dict) -> Shape:
        oh, ow = window_out(op, s, a, dil=(1, 1))
        return (s[0], oh, ow)

    return infer


def _pool_label(op: str):
    def label(a: dict) -> str:
        k = a["kernel"]
        text = f"{op} {k[0]}x{k[1]}"
        if a.get("stride") is not None and tuple(a["stride"]) != tuple(k):
            text += f" /{pair_text(a['stride'])}"
        return text

    return label


def _pool_fields(s: Shape, a: dict) -> tuple[Field, ...]:
    stride = a["stride"] if a["stride"] is not None else a["kernel"]
    return (
        Field("kernel", square(a["kernel"])),
        Field("stride", square(stride), "stride", same_as="kernel"),
        Field("pad", square(a["pad"]), "padding", "0"),
        Field("ceil", a["ceil"], "ceil_mode", "False"),
    )


def _window_args() -> tuple[Arg, ...]:
    return (
        Arg("kernel", "pos_pair"),
        Arg("stride", "opt_pair", None, doc="defaults to the kernel size"),
        Arg("pad", "pair", 0),
        Arg("ceil", "bool", False),
    )


MAXPOOL = OpSpec(
    "maxpool",
    _window_args(),
    _pool_infer("maxpool"),
    Torch("nn.MaxPool2d", _pool_fields),
    Draw(_FILL, _pool_label("maxpool")),
    "max pooling",
    rank=(3,),
)

AVGPOOL = OpSpec(
    "avgpool",
    _window_args() + (Arg("count_pad", "bool", True, doc="count zero padding in the average"),),
    _pool_infer("avgpool"),
    Torch("nn.AvgPool2d", lambda s, a: _pool_fields(s, a) + (
        Field("count_pad", a["count_pad"], "count_include_pad", "True"),)),
    Draw(_FILL, _pool_label("avgpool")),
    "average pooling",
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


UPSAMPLE = OpSpec(
    "upsample",
    (Arg("scale", "pos_int", 2), Arg("mode", "choice", "nearest", ("nearest", "bilinear"))),
    lambda s, a: (s[0], s[1] * a["scale"], s[2] * a["scale"]),
    Torch("nn.Upsample", lambda s, a: (Field("scale", a["scale"], "scale_factor"), Field("mode", a["mode"], "mode"))),
    Draw(_FILL, lambda a: f"upsample x{a['scale']}"),
    "spatial upsampling by an integer factor",
    rank=(3,),
)

OPS = (
    MAXPOOL,
    AVGPOOL,
    GAP,
    UPSAMPLE,
)
