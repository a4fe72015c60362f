"""Values in a mirrored class: a spec expression over the block's parameters, locals and
loop variables as Python (``__init__``'s), the same read in ``forward`` (through the
attributes ``__init__`` sets), labels, and what the translation knows at each point
(``State``). A mixin of the Translator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from udnet.backends.pytorch.expr import (
    SELF,
    Attr,
    BinOp,
    Call,
    Expr,
    FString,
    IfExp,
    Lit,
    Name,
    Neg,
    Not,
    Subscript,
    Tuple,
    read_names,
)
from udnet.backends.pytorch.mirror.program import (
    OUT,
    Apply,
    SeqCtor,
    Unsupported,
    substitute,
)
from udnet.frontend import ast
from udnet.reserved import FUNCTIONS, MODULE_ATTRS


_PY_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "//": "//", "%": "%", "**": "**", "==": "==",
           "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "and": "and", "or": "or", "in": "in",
           "++": "+"}



@dataclass

class State:
    """What the translation knows at a point of the body."""

    kinds: dict[str, str] = field(default_factory=dict)  # spec name -> "tensor" | "value" | "loop"
    chan: dict[str, Expr] = field(default_factory=dict)  # tensor -> its channels (in __init__)
    assigned_once: dict[str, bool] = field(default_factory=dict)  # value -> set once, at the top
    depth: int = 0  # loops and ifs around the statement


class Values:
    """Value expressions and labels; ``self`` is the Translator."""

    def label(self, label: ast.Label, st: State, stage: Any) -> Expr:
        parts: list = []
        for p in label.parts:
            if isinstance(p, str):
                parts.append(p)
            else:
                parts.append(self.value(p, st))
        if "." in "".join(p for p in parts if isinstance(p, str)):
            raise Unsupported("a dotted label")
        if all(isinstance(p, str) for p in parts):
            return Lit("".join(parts))
        if len(parts) == 1:
            return Call(Name("str"), (parts[0],))
        return FString(tuple(parts))

    def auto_label(self, stage: Any, into: SeqCtor | None) -> Expr:
        name = self.auto.get(id(stage))
        if name is None:
            raise Unsupported("an unlabelled stage in a loop")
        return Lit(name)

    # -- values --

    def value(self, e: Any, st: State) -> Expr:
        """A value expression over the constructor's names (parameters, locals, loop variables)."""
        if isinstance(e, ast.Literal):
            if isinstance(e.value, str) or isinstance(e.value, (bool, int, float)):
                return Lit(e.value)
        if isinstance(e, ast.Name):
            kind = st.kinds.get(e.id)
            if kind in ("value", "loop"):
                return Name(self.pyname(e.id))
            if e.id == "channels" and kind is None and "x" in st.chan:
                return st.chan["x"]
            raise Unsupported(f"name {e.id}")
        if isinstance(e, ast.ListExpr):
            return Tuple(tuple(self.value(i, st) for i in e.items))
        if isinstance(e, ast.BinOp) and e.op in _PY_OPS:
            left, right = self.value(e.left, st), self.value(e.right, st)
            return BinOp(left, _PY_OPS[e.op], right)
        if isinstance(e, ast.UnaryOp):
            operand = self.value(e.operand, st)
            return Not(operand) if e.op == "not" else Neg(operand) if e.op == "-" else operand
        if isinstance(e, ast.Ternary):
            return IfExp(self.value(e.cond, st), self.value(e.then, st), self.value(e.orelse, st))
        if isinstance(e, ast.Index):
            return Subscript(self.value(e.value, st), (self.value(e.index, st),))
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in FUNCTIONS and not e.kwargs:
            if st.kinds.get(e.func.id) is not None:
                raise Unsupported(f"{e.func.id} is a variable")
            return Call(Name(e.func.id), tuple(self.value(a, st) for a in e.args))
        raise Unsupported(f"value expression {type(e).__name__}")

    def attribute(self, base: str) -> str:
        """A plain attribute's name: no module's, no nn.Module's, no other attribute's."""
        attr = base
        while attr in MODULE_ATTRS or attr in self.labels or attr == OUT or attr in self.attr_of.values() \
                or attr in self.chains:
            attr += "_"
        self.chains.add(attr) if base == "concat_channels" else None
        return attr

    def forward_label(self, label: Expr, st: State) -> Expr:
        if isinstance(label, FString):
            parts = tuple(p if isinstance(p, str) else self.forward_value(p, st) for p in label.parts)
            return FString(parts)
        if isinstance(label, Call):
            return self.forward_value(label, st)
        return label

    def forward_value(self, e: Expr, st: State, loop_vars: set[str] = frozenset()) -> Expr:
        """A value of __init__ as forward reads it: through ``self``."""
        names = {}
        for n in set(read_names(e)):
            if n in loop_vars or n in self._loop_names(st):
                continue
            if n in ("len", "min", "max", "abs", "int", "float", "round", "sum", "range", "str"):
                continue
            self.fwd_reads.add(n)
            if n not in self.attr_of:
                self.attr_of[n] = self.attribute(n)
            names[n] = Attr(SELF, self.attr_of[n])
        return substitute(e, names) if not isinstance(e, Apply) else e

    def _loop_names(self, st: State) -> set[str]:
        return {self.py[n] for n, k in st.kinds.items() if k == "loop" and n in self.py}




def constant(e: Any) -> Expr:
    """A parameter's default as a Python default: a literal, a negative number, a list of them."""
    if isinstance(e, ast.Literal):
        return Lit(e.value)
    if isinstance(e, ast.UnaryOp) and e.op == "-" and isinstance(e.operand, ast.Literal) \
            and type(e.operand.value) in (int, float):
        return Lit(-e.operand.value)
    if isinstance(e, ast.ListExpr):
        items = [constant(i) for i in e.items]
        return Lit(tuple(i.value for i in items))
    raise Unsupported("a default that is not a constant")




def choose(cond: Expr, then: Expr, orelse: Expr) -> Expr:
    """``then if cond else orelse``, as simply as it can be said: a channel count that two
    branches leave as ``hidden`` and ``in_channels`` under ``hidden != in_channels`` is
    ``hidden`` either way."""
    if then == orelse:
        return then
    if isinstance(cond, BinOp) and cond.op in ("==", "!="):
        same, other = (orelse, then) if cond.op == "==" else (then, orelse)
        if {same, other} == {cond.left, cond.right}:
            return same
    return IfExp(cond, then, orelse)
