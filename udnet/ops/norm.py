"""Normalisation over channels. Normalisation counts no MACs."""

from __future__ import annotations

from udnet.ops.spec import EPS_MIN, Arg, Draw, Field, OpSpec, Shape, ShapeError, Torch

_EPS_WHY = (
    "eps is added to the variance before dividing by its square root, so it must stay positive "
    "in float32 (whose normal numbers start near 1.2e-38)"
)


def _eps(default: float = 1e-5) -> Arg:
    return Arg("eps", "float", default, lo=EPS_MIN, why=_EPS_WHY)


def _channels(op: str):
    def infer(s: Shape, a: dict) -> Shape:
        if s[0] < 1:
            raise ShapeError(f"{op} input has no channels")
        return s

    return infer


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
    _channels("bn"),
    Torch(lambda s, a: "nn.BatchNorm2d" if len(s) == 3 else "nn.BatchNorm1d", lambda s, a: (
        Field("channels", s[0]),
        _eps_field(a),
        Field("momentum", a["momentum"], "momentum", "0.1"),
        Field("affine", a["affine"], "affine", "True"),
    )),
    Draw("#fff1bd"),
    "batch normalisation over channels (weight 1, bias 0 at init)",
    params=lambda s, a: 2 * s[0] if a["affine"] else 0,
)

OPS = (BN,)
