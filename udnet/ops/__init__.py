"""The op table: every built-in op defined once, by family.

``OPS`` maps each op's name to its ``OpSpec`` (``udnet.ops.spec``): its signature with
defaults and checks, shape rule, parameter, MAC and activation counts, aliasing, PyTorch
emission and drawing. The elaborator, ``verify``, the summary and the backends read
everything from there. Connections (``+``, ``++``, ``*``, ``gate``, ``join``, slices)
are in ``udnet.ops.connections``.
"""

from __future__ import annotations

from udnet.limits import HALF_MAX, MAX_DIM, MAX_ELEMENTS
from udnet.ops import activation, conv, norm, pool, regularise, reshape
from udnet.ops.connections import (
    CONNECTION_KINDS,
    CONNECTIONS,
    Connection,
    infer_add,
    infer_concat,
    infer_mul,
    infer_same,
    infer_slice,
)
from udnet.ops.spec import (
    EPS_MIN,
    REQUIRED,
    Arg,
    ArgError,
    Draw,
    Field,
    OpSpec,
    Shape,
    ShapeError,
    Torch,
    check_arg,
    fmt,
    infer_op,
    numel,
)

#: Every op, in the order of its family: the order docs list them and model.py emits helpers.
OPS: dict[str, OpSpec] = {
    op.name: op for family in (conv, norm, activation, pool, regularise, reshape) for op in family.OPS
}

__all__ = [
    "CONNECTIONS", "CONNECTION_KINDS", "EPS_MIN", "HALF_MAX", "MAX_DIM", "MAX_ELEMENTS", "OPS", "REQUIRED",
    "Arg", "ArgError", "Connection", "Draw", "Field", "OpSpec", "Shape", "ShapeError", "Torch",
    "check_arg", "fmt", "infer_add", "infer_concat", "infer_mul", "infer_op", "infer_same", "infer_slice",
    "numel",
]
