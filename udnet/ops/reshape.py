"""Ops that move values without computing new ones: identity, flatten."""

from __future__ import annotations

from udnet.ops.shapes import same
from udnet.ops.spec import Draw, OpSpec, Torch

_FILL = "#f2f2f2"


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
)
