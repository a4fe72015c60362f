"""Regularisers active in training only (identities in eval): no parameters, no MACs."""

from __future__ import annotations

from udnet.ops.shapes import same
from udnet.ops.spec import Arg, Draw, Field, OpSpec, Torch

_FILL = "#e8e8e8"
_PROB_WHY = "p is the probability of dropping an element; 1 would drop everything and divide by 1 - p = 0"

OPS = (
    OpSpec(
        "dropout",
        (Arg("p", "prob", 0.5, why=_PROB_WHY),),
        same,
        Torch("nn.Dropout", lambda s, a: (Field("p", a["p"]),)),
        Draw(_FILL, lambda a: f"dropout {a['p']:g}"),
        "element-wise dropout (training only)",
        saves_output=True,
    ),
)
