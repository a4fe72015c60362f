"""Calls and the built-in functions: what ``name(...)`` means (a block, an op, the
connections gate and join, the introspection names, the functions len, min, max, abs,
int, float, round and sum), and the functions themselves. A mixin of the Elaborator.
"""

from __future__ import annotations

from typing import Any

from udnet.elaborate.expressions import TypeMismatch, is_number
from udnet.elaborate.values import MISSING, Frame, Tensor, describe
from udnet.errors import Span, UdnetError
from udnet.frontend import ast
from udnet.limits import INT_LIMIT
from udnet.ops import OPS, fmt
from udnet.reserved import CONNECTIONS, FUNCTIONS, INTROSPECTION


class Builtins:
    """Evaluating calls; ``self`` is the Elaborator."""

    def _eval_Call(self, e: ast.Call, frame: Frame) -> Any:
        if isinstance(e.func, ast.Field):
            raise UdnetError("ops and blocks are not methods of a tensor", e.func.span,
                             f"pipe the tensor into it: t |> {e.func.name}(...)")
        if not isinstance(e.func, ast.Name):
            raise UdnetError("only blocks, ops and built-in functions can be called", e.func.span)
        name = e.func.id
        bound = frame.lookup(name)
        callable_name = name in self.blocks or name in OPS or name in CONNECTIONS or name in FUNCTIONS
        if bound is not MISSING and not (callable_name or name in INTROSPECTION):
            raise UdnetError(f"'{name}' is {describe(bound)}, not something to call", e.func.span)
        args = [self._eval(a, frame) for a in e.args]
        kwargs: dict[str, Any] = {}
        kspans: dict[str, Span] = {}
        for k in e.kwargs:
            if k.name in kwargs:
                raise UdnetError(f"argument '{k.name}' is given twice", k.span)
            kwargs[k.name] = self._eval(k.value, frame)
            kspans[k.name] = k.span
        aspans = [a.span for a in e.args]
        if name in self.blocks:
            return self._block_stage(self.blocks[name], args, kwargs, e.span, kspans, aspans)
        if name in OPS:
            return self._op_stage(OPS[name], args, kwargs, e.span, kspans, e.func.span, aspans)
        if name in CONNECTIONS:
            return self._connect(name, e, args, kwargs, kspans)
        if name in INTROSPECTION:
            if len(args) != 1 or kwargs or not isinstance(args[0], Tensor):
                raise UdnetError(f"{name}(t) takes one tensor", e.span)
            return introspect(name, args[0], e.span)
        if name in FUNCTIONS:
            if kwargs:
                raise UdnetError(f"{name} takes no keyword arguments", e.kwargs[0].span)
            self._tick(e.span, sum(len(a) // 16 for a in args if isinstance(a, (tuple, str))))
            try:
                return call_function(name, args)
            except TypeMismatch as m:
                raise UdnetError(str(m), e.span) from None
        if name in self.networks:
            raise UdnetError(f"'{name}' is a network; only blocks can be used inside a network", e.func.span,
                             f"turn it into a block: block {name}(...)")
        raise self._unknown(e.func, frame)


def introspect(name: str, t: Tensor, span: Span | None = None) -> Any:
    """``channels``, ``height``, ``width`` or ``shape`` of tensor ``t``."""
    if name == "channels":
        return t.shape[0]
    if name == "shape":
        return tuple(t.shape)
    if len(t.shape) != 3:
        raise UdnetError(f"'{name}' needs a [C, H, W] tensor, the current one is {fmt(t.shape)}", span)
    return t.shape[1] if name == "height" else t.shape[2]


def call_function(name: str, args: list) -> Any:
    """The built-in function ``name`` (one of ``FUNCTIONS``) applied to values."""
    if name == "len":
        if len(args) != 1 or not isinstance(args[0], (tuple, str, range)):
            raise TypeMismatch("len takes one list or string")
        return len(args[0])
    if name in ("min", "max", "sum"):
        items = args[0] if len(args) == 1 and isinstance(args[0], (tuple, range)) else args
        if not items and name != "sum":
            raise TypeMismatch(f"{name} of nothing")
        if isinstance(items, range):  # closed forms: a range may be far too long to walk
            n = len(items)
            if name == "sum":
                r = (items[0] + items[-1]) * n // 2 if n else 0
            else:
                r = items[0] if name == "min" else items[-1]
        else:
            if not all(is_number(v) for v in items):
                raise TypeMismatch(f"{name} takes numbers")
            r = {"min": min, "max": max, "sum": sum}[name](items) if items else 0
        if isinstance(r, int) and abs(r) > INT_LIMIT:
            raise TypeMismatch(f"the result of {name} is too large (limit 2**62)")
        return r
    if len(args) != 1 or not is_number(args[0]):
        raise TypeMismatch(f"{name} takes one number")
    v = args[0]
    if name == "abs":
        return abs(v)
    if name == "float":
        return float(v)
    r = int(v) if name == "int" else int(round(v))
    if abs(r) > INT_LIMIT:
        raise TypeMismatch(f"{name}({v}) is too large for an integer (limit 2**62)")
    return r
