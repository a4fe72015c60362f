"""Regularisers active in training only: dropout per element, drop-path per sample.
Both are identities in eval; neither has parameters or MACs."""

from __future__ import annotations

from udnet.backends.pytorch.helper_text import helper_text
from udnet.ops.shapes import same
from udnet.ops.spec import Arg, Draw, Field, OpSpec, Torch

DROP_PATH = helper_text("drop_path.py")

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
    OpSpec(
        "drop_path",
        (Arg("p", "prob", why=(
            "p is the probability of dropping a sample's branch; 1 would drop every sample and divide by 1 - p = 0"
        )),),
        same,
        Torch("DropPath", lambda s, a: (Field("p", a["p"]),), (DROP_PATH,)),
        Draw(_FILL, lambda a: f"drop_path {a['p']:g}"),
        "stochastic depth: drops the whole tensor of a sample with probability p (training only)",
        activation=lambda i, o, a: 0,  # in eval it returns its input itself
        saves_output=True,
    ),
)
