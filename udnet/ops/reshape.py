"""Ops that move values without computing new ones: identity, flatten, channel shuffle."""

from __future__ import annotations

from udnet.backends.pytorch.helper_text import helper_text
from udnet.ops.shapes import same
from udnet.ops.spec import Arg, Draw, Field, OpSpec, Shape, ShapeError, Torch, numel

CHANNEL_SHUFFLE = helper_text("channel_shuffle.py")

_FILL = "#f2f2f2"


def _shuffle_infer(s: Shape, a: dict) -> Shape:
    if s[0] % a["groups"]:
        raise ShapeError(f"channel_shuffle groups = {a['groups']} must divide the input channels ({s[0]})")
    return s


OPS = (
    OpSpec("identity", (), same, Torch("nn.Identity"), Draw(_FILL), "passes its input through", saves_output=True),
    OpSpec(
        "flatten",
        (),
        lambda s, a: (s[0] * s[1] * s[2],) if len(s) == 3 else s,
        Torch("nn.Flatten"),
        Draw(_FILL),
        "[C, H, W] to [C*H*W]",
        saves_output=True,  # a view of its input
    ),
    OpSpec(
        "channel_shuffle",
        (Arg("groups", "pos_int", doc="channel groups to interleave"),),
        _shuffle_infer,
        Torch("ChannelShuffle", lambda s, a: (Field("groups", a["groups"]),), (CHANNEL_SHUFFLE,)),
        Draw(_FILL, lambda a: f"channel shuffle /{a['groups']}"),
        "ShuffleNet's channel shuffle: channel i * n + j moves to j * groups + i (n = C / groups)",
        # The grouped view, its transpose and the flattened copy; with one group the
        # result may be a view of the input.
        activation=lambda i, o, a: 3 * numel(o),
        saves_output=True,
        rank=(3,),
    ),
)
