"""Evaluating expressions to values: literals, lists, ranges, arithmetic and comparisons,
conditions, indexing and slicing, and pipes (``t |> stage``). Tensors that meet in an
expression become IR nodes in build.py; names are read in names.py, calls made in
builtins.py. A mixin of the Elaborator.
"""

from __future__ import annotations

from typing import Any

from udnet.elaborate.values import (
    ChainStage,
    Frame,
    GroupStage,
    Incomparable,
    Outputs,
    Stage,
    Tensor,
    Tensors,
    contains,
    describe,
    equal,
    type_name,
)
from udnet.elaborate.values import show as _show
from udnet.errors import UdnetError
from udnet.frontend import ast
from udnet.limits import INT_LIMIT, LEN_LIMIT


class Expressions:
    """The expression visitor: ``_eval`` dispatches on the node type to ``_eval_<type>``
    (of any mixin of the Elaborator); ``self`` is the Elaborator."""

    def _eval(self, e: ast.Expr, frame: Frame) -> Any:
        method = _EVAL.get(type(e))
        if method is None:
            method = _EVAL[type(e)] = getattr(type(self), "_eval_" + type(e).__name__)
        return method(self, e, frame)

    def _eval_Literal(self, e: ast.Literal, frame: Frame) -> Any:
        return e.value

    def _eval_ListExpr(self, e: ast.ListExpr, frame: Frame) -> Any:
        return self._list(tuple(self._eval(i, frame) for i in e.items), e.span)

    def _eval_UnaryOp(self, e: ast.UnaryOp, frame: Frame) -> Any:
        v = self._eval(e.operand, frame)
        if e.op == "not":
            if not isinstance(v, bool):
                raise UdnetError(f"'not' needs true or false, got {describe(v)}", e.operand.span)
            return not v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UdnetError(f"unary '{e.op}' needs a number, got {describe(v)}", e.operand.span)
        return -v if e.op == "-" else v

    def _eval_BinOp(self, e: ast.BinOp, frame: Frame) -> Any:
        op = e.op
        if op in ("and", "or"):
            left = self._cond(e.left, frame)
            if (op == "and" and not left) or (op == "or" and left):
                return left
            return self._cond(e.right, frame)
        a = self._eval(e.left, frame)
        b = self._eval(e.right, frame)
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return self._tensor_binop(e, a, b)
        cost = [0]
        try:
            r = arith(op, a, b, cost)
        except TypeMismatch as m:
            raise UdnetError(str(m), e.span) from None
        except ZeroDivisionError:
            raise UdnetError("division by zero", e.right.span) from None
        except OverflowError:
            raise UdnetError(f"the result of '{op}' is too large", e.span) from None
        if type(r) is tuple:
            return self._list(r, e.span)
        if type(a) in (tuple, str) or type(b) in (tuple, str):  # copying, comparing, searching
            self._tick(e.span, (len(a) if type(a) in (tuple, str) else 0) // 16
                       + (len(b) if type(b) in (tuple, str) else 0) // 16 + cost[0] // 16)
        elif cost[0] >= 16:
            self._tick(e.span, cost[0] // 16)
        return r

    def _eval_RangeExpr(self, e: ast.RangeExpr, frame: Frame) -> range:
        lo, hi = self._eval(e.lo, frame), self._eval(e.hi, frame)
        for v, sub in ((lo, e.lo), (hi, e.hi)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise UdnetError(f"a range a..b needs integers, got {describe(v)}", sub.span)
        if hi - lo >= INT_LIMIT:
            raise UdnetError(f"the range {lo}..{hi} is too large", e.span)
        return range(lo, hi + 1)

    def _eval_Ternary(self, e: ast.Ternary, frame: Frame) -> Any:
        return self._eval(e.then if self._cond(e.cond, frame) else e.orelse, frame)

    def _eval_Index(self, e: ast.Index, frame: Frame) -> Any:
        v = self._eval(e.value, frame)
        i = self._eval(e.index, frame)
        if isinstance(v, Outputs) and isinstance(i, str):
            return self._output_named(v, i, e)
        if isinstance(v, Tensor):
            raise UdnetError(
                "a tensor is indexed by channel ranges, not single positions",
                e.span,
                f"write a slice: [{_show(i)}:...]",
            )
        if not isinstance(v, (tuple, str, range)):
            raise UdnetError(f"cannot index {describe(v)}", e.value.span)
        if isinstance(i, bool) or not isinstance(i, int):
            raise UdnetError(f"an index must be an integer, got {describe(i)}", e.index.span)
        if not -len(v) <= i < len(v):
            raise UdnetError(f"index {i} is out of range for a list of {len(v)}", e.index.span,
                             "indices start at 0; the last is len(list) - 1")
        return v[i]

    def _eval_SliceExpr(self, e: ast.SliceExpr, frame: Frame) -> Any:
        v = self._eval(e.value, frame)
        bounds = []
        for sub in (e.lo, e.hi):
            b = None if sub is None else self._eval(sub, frame)
            if b is not None and (isinstance(b, bool) or not isinstance(b, int)):
                raise UdnetError(f"a slice bound must be an integer, got {describe(b)}", sub.span)
            bounds.append(b)
        lo, hi = bounds
        if isinstance(v, range):  # a range stays a range: no items are made
            return v[lo:hi]
        if isinstance(v, (tuple, str)):
            part = v[lo:hi]
            if isinstance(part, tuple):
                return self._list(part, e.span)
            self._tick(e.span, len(part) // 16)
            return part
        if not isinstance(v, Tensor):
            raise UdnetError(f"cannot slice {describe(v)}", e.value.span)
        return self._slice_channels(v, lo, hi, e)

    def _eval_Pipe(self, e: ast.Pipe, frame: Frame) -> Any:
        value = self._eval(e.value, frame)
        label = self._label(e.label, frame)
        if isinstance(e.stage, ast.Body):
            stage: Any = GroupStage(e.stage, frame)
        else:
            stage = self._eval(e.stage, frame)
            if not isinstance(stage, Stage):
                raise UdnetError(
                    f"the right side of |> must be an op, a block or a {{ ... }} group, not {describe(stage)}",
                    e.stage.span,
                )
        if isinstance(value, (Tensor, Tensors)):
            return self._apply(stage, value, label, e.span)
        if isinstance(value, Outputs):
            raise UdnetError(f"{describe(value)} are piped into {describe(stage)}", e.value.span,
                             "pick one by name: o.name |> ...")
        if isinstance(value, Stage):
            head = value.stages if isinstance(value, ChainStage) else ((value, None, e.value.span),)
            return ChainStage(head + ((stage, label, e.span),))
        raise UdnetError(f"the left side of |> must be a tensor or a stage, not {describe(value)}", e.value.span)

    def _cond(self, e: ast.Expr, frame: Frame) -> bool:
        v = self._eval(e, frame)
        if not isinstance(v, bool):
            raise UdnetError(f"a condition must be true or false, got {describe(v)}", e.span, "compare it: n > 0")
        return v


#: ast node type -> the Elaborator's _eval_<type> (filled on first use).
_EVAL: dict[type, Any] = {}


class TypeMismatch(Exception):
    """Operands or arguments of the wrong type or size; the caller turns it into a located error."""


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def arith(op: str, a: Any, b: Any, cost: list[int] | None = None) -> Any:
    """``a op b`` on values; ``cost[0]`` counts the items a comparison or search walked."""
    if op in ("==", "!="):
        try:
            same = equal(a, b, cost)
        except Incomparable as err:
            raise TypeMismatch(str(err)) from None
        return same if op == "==" else not same
    if op in ("<", "<=", ">", ">="):
        if not ((is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
            raise TypeMismatch(f"'{op}' compares numbers, not {describe(a)} and {describe(b)}")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "in":
        if not isinstance(b, (tuple, range, str)):
            raise TypeMismatch(f"'in' needs a list or a range on the right, got {describe(b)}")
        if isinstance(b, str):
            if not isinstance(a, str):
                raise TypeMismatch(f"'in' a string needs a string on the left, got {describe(a)}")
            return a in b
        try:
            return contains(b, a, cost)
        except Incomparable as err:
            raise TypeMismatch(str(err)) from None
    if op in ("++", "+") and (
        (isinstance(a, (tuple, range)) and isinstance(b, (tuple, range))) or (isinstance(a, str) and isinstance(b, str))
    ):
        if len(a) + len(b) > LEN_LIMIT:
            n = len(a) + len(b)
            raise TypeMismatch(f"'{op}' would build a {type_name(a)} of {n:,} items (limit {LEN_LIMIT:,})")
        return a + b if isinstance(a, str) else tuple(a) + tuple(b)
    if not (is_number(a) and is_number(b)):
        raise TypeMismatch(f"'{op}' needs numbers, got {describe(a)} and {describe(b)}")
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op == "/":
        r = a / b
    elif op == "//":
        r = a // b
    elif op == "%":
        r = a % b
    elif op == "**":
        if isinstance(a, int) and isinstance(b, int) and b >= 0 and abs(a) > 1 and b > 62:
            raise TypeMismatch(f"{a} ** {b} is too large")
        if isinstance(b, int) and b < 0 and a == 0:
            raise ZeroDivisionError
        r = a**b
        if isinstance(r, complex):
            raise TypeMismatch(f"{a} ** {b} is not a real number")
    else:
        raise TypeMismatch(f"'{op}' needs tensors or lists, got {describe(a)} and {describe(b)}")
    if isinstance(r, int) and abs(r) > INT_LIMIT:
        raise TypeMismatch(f"integer result of '{op}' is too large (limit 2**62)")
    if isinstance(r, float) and (r != r or r in (float("inf"), float("-inf"))):
        raise TypeMismatch(f"'{op}' gives a non-finite number")
    return r
