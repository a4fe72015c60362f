"""The typed syntax tree. Every node keeps the source span it was parsed from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from udnet.errors import Span


@dataclass(eq=False)
class Node:
    span: Span


# ---- expressions ----


@dataclass(eq=False)
class Literal(Node):
    value: int | float | bool | str


@dataclass(eq=False)
class Name(Node):
    id: str


@dataclass(eq=False)
class ListExpr(Node):
    items: list["Expr"]


@dataclass(eq=False)
class BinOp(Node):
    op: str  # + - * / // % ** ++ and or == != < <= > >= in
    left: "Expr"
    right: "Expr"


@dataclass(eq=False)
class UnaryOp(Node):
    op: str  # - + not
    operand: "Expr"


@dataclass(eq=False)
class RangeExpr(Node):
    """``lo..hi``, both ends inclusive, as in the papers' ``for l = 1..L``."""

    lo: "Expr"
    hi: "Expr"


@dataclass(eq=False)
class Ternary(Node):
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"


@dataclass(eq=False)
class Keyword(Node):
    name: str
    value: "Expr"


@dataclass(eq=False)
class Call(Node):
    func: "Expr"
    args: list["Expr"]
    kwargs: list[Keyword]


@dataclass(eq=False)
class Index(Node):
    value: "Expr"
    index: "Expr"


@dataclass(eq=False)
class SliceExpr(Node):
    value: "Expr"
    lo: "Expr | None"
    hi: "Expr | None"


@dataclass(eq=False)
class Field(Node):
    """``o.name``: one tensor of several named outputs."""

    value: "Expr"
    name: str


@dataclass(eq=False)
class TupleExpr(Node):
    """``(a, b)``: several tensors piped into one stage."""

    items: list["Expr"]


@dataclass(eq=False)
class Label(Node):
    """``conv1:`` or ``denselayer{i}:``; parts are literal text or interpolated expressions."""

    parts: list[Union[str, "Expr"]]


@dataclass(eq=False)
class Body(Node):
    stmts: list["Stmt"]


@dataclass(eq=False)
class Pipe(Node):
    """``value |> label: stage``; the stage is an expression or an inline ``{ ... }`` body."""

    value: "Expr"
    label: Label | None
    stage: "Expr | Body"


Expr = Union[
    Literal, Name, ListExpr, BinOp, UnaryOp, RangeExpr, Ternary, Call, Index, SliceExpr, Pipe, Field, TupleExpr
]


# ---- statements ----


@dataclass(eq=False)
class Assign(Node):
    name: str
    value: Expr


@dataclass(eq=False)
class ExprStmt(Node):
    """A stage applied to the current tensor: ``conv1: conv(64, 3)`` means ``x = x |> conv1: ...``."""

    label: Label | None
    value: Expr


@dataclass(eq=False)
class ScopeStmt(Node):
    label: Label
    body: Body


@dataclass(eq=False)
class For(Node):
    var: str
    iterable: Expr
    body: Body


@dataclass(eq=False)
class If(Node):
    cond: Expr
    body: Body
    orelse: "Body | If | None"


@dataclass(eq=False)
class Return(Node):
    value: Expr


@dataclass(eq=False)
class NamedOutput(Node):
    label: Label
    value: Expr


@dataclass(eq=False)
class ReturnNamed(Node):
    """``return {p2: a, p3: b}``: several named outputs, in this order."""

    outputs: list[NamedOutput]


@dataclass(eq=False)
class Assert(Node):
    cond: Expr
    message: Expr | None


Stmt = Union[Assign, ExprStmt, ScopeStmt, For, If, Return, ReturnNamed, Assert]


# ---- definitions ----


@dataclass(eq=False)
class Param(Node):
    name: str
    default: Expr | None


@dataclass(eq=False)
class Definition(Node):
    kind: str  # "block" or "network"
    name: str
    name_span: Span
    params: list[Param]
    body: Body
    inputs: list[Param] = field(default_factory=list)  # block Up(c)(x, skip): its tensor inputs
    doc: str = ""  # the comment right above it, its lines without their "#"


@dataclass(eq=False)
class Module(Node):
    definitions: list[Definition]
