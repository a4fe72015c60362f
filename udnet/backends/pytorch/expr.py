"""Python expressions of the emitted code, as a small tree rendered by ``render``.

Code is built from these nodes and turned into text only when a line is printed, so
whether a name reads ``self.n`` or ``n``, or where a call's arguments start and end, is
decided while building, never by reading generated text back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Union


@dataclass(frozen=True)
class Name:
    """A name: a local, a parameter, a helper, ``self``."""

    id: str


@dataclass(frozen=True)
class Attr:
    """``value.attr``."""

    value: Expr
    attr: str


@dataclass(frozen=True)
class Lit:
    """A literal: an int, float, bool, str or None, or a tuple of them."""

    value: Any


@dataclass(frozen=True)
class Call:
    """``func(*args, **dict(kwargs))``; keyword arguments keep their order."""

    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True)
class BinOp:
    """``left op right``: arithmetic, a comparison, ``and`` or ``or``."""

    left: Expr
    op: str
    right: Expr


@dataclass(frozen=True)
class Neg:
    """``-operand``."""

    operand: Expr


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Expr


@dataclass(frozen=True)
class IfExp:
    """``then if cond else orelse``."""

    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(frozen=True)
class Slice:
    """``lo:hi`` inside a subscript; None leaves a bound out."""

    lo: Expr | None = None
    hi: Expr | None = None


@dataclass(frozen=True)
class Subscript:
    """``value[i, j, ...]``."""

    value: Expr
    index: tuple[Expr, ...]


@dataclass(frozen=True)
class Tuple:
    """``(a, b)``, ``(a,)``."""

    elts: tuple[Expr, ...]


@dataclass(frozen=True)
class List:
    """``[a, b]``."""

    elts: tuple[Expr, ...]


@dataclass(frozen=True)
class Starred:
    """``*value``: a list's items as a call's arguments."""

    value: Expr


@dataclass(frozen=True)
class FString:
    """``f"text{expr}text"``: parts are literal text or expressions."""

    parts: tuple[str | Expr, ...]


Expr = Union[Name, Attr, Lit, Call, BinOp, Neg, Not, IfExp, Slice, Subscript, Tuple, List, Starred, FString]

SELF = Name("self")


def self_attr(name: str) -> Attr:
    return Attr(SELF, name)


def dotted(path: str) -> Expr:
    """A dotted path as the op table writes it (``nn.BatchNorm2d``): names and attributes."""
    first, *rest = path.split(".")
    expr: Expr = Name(first)
    for attr in rest:
        expr = Attr(expr, attr)
    return expr


def call(func: str, *args: Expr, **kwargs: Expr) -> Call:
    """A call of the function or class at dotted path ``func``."""
    return Call(dotted(func), args, tuple(kwargs.items()))


def is_int(e: Expr | None, value: int) -> bool:
    """Is ``e`` the int literal ``value`` (not a bool, not a float)?"""
    return isinstance(e, Lit) and type(e.value) is int and e.value == value


#: Python's binding strength of each binary operator (comparisons do not chain here).
_PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4, "is not": 4,
               "+": 6, "-": 6, "*": 7, "/": 7, "//": 7, "%": 7, "**": 9}
_UNARY, _NOT, _IFEXP = 8, 3, 0


def precedence(e: Expr) -> int:
    """How tightly ``e`` binds as an operand: 10 for atoms (a negative number binds as
    its minus sign does: (-2) ** 2)."""
    if isinstance(e, Lit) and type(e.value) in (int, float) and (e.value < 0 or repr(e.value).startswith("-")):
        return _UNARY
    if isinstance(e, BinOp):
        return _PRECEDENCE[e.op]
    if isinstance(e, Neg):
        return _UNARY
    if isinstance(e, Not):
        return _NOT
    if isinstance(e, IfExp):
        return _IFEXP
    return 10


def render(e: Expr) -> str:
    """The expression as Python source, the way ruff format writes it."""
    if isinstance(e, Name):
        return e.id
    if isinstance(e, Attr):
        return f"{_atom(e.value)}.{e.attr}"
    if isinstance(e, Lit):
        return _literal(e.value)
    if isinstance(e, Call):
        return f"{render(e.func)}({', '.join(arguments(e))})"
    if isinstance(e, BinOp):
        # Operands bind tighter than their operator, or are parenthesised: (1 - t) * x;
        # on the right an equal operator needs them too: a - (b - c); ** groups to the
        # right, and a comparison never chains: (a == b) == c.
        level = _PRECEDENCE[e.op]
        left, right = render(e.left), render(e.right)
        if precedence(e.left) < level or (precedence(e.left) == level and (e.op == "**" or level == 4)):
            left = f"({left})"
        if precedence(e.right) < level or (precedence(e.right) == level and e.op != "**"):
            right = f"({right})"
        return f"{left} {e.op} {right}"
    if isinstance(e, Neg):
        operand = render(e.operand)
        return f"-({operand})" if precedence(e.operand) < 9 else f"-{operand}"
    if isinstance(e, Not):
        operand = render(e.operand)
        return f"not ({operand})" if precedence(e.operand) < _NOT else f"not {operand}"
    if isinstance(e, IfExp):
        parts = [render(x) for x in (e.then, e.cond, e.orelse)]
        parts[0], parts[1] = (f"({p})" if precedence(x) <= _IFEXP else p for p, x in zip(parts, (e.then, e.cond)))
        return f"{parts[0]} if {parts[1]} else {parts[2]}"
    if isinstance(e, Slice):
        lo, hi = ("" if b is None else render(b) for b in (e.lo, e.hi))
        if all(b is None or _simple(b) for b in (e.lo, e.hi)):
            return f"{lo}:{hi}"
        # ruff treats a slice's colon as an operator around complex bounds: x[a + 1 :]
        return (f"{lo} " if lo else "") + ":" + (f" {hi}" if hi else "")
    if isinstance(e, Subscript):
        return f"{_atom(e.value)}[{', '.join(render(i) for i in e.index)}]"
    if isinstance(e, Tuple):
        return "(" + ", ".join(render(x) for x in e.elts) + ("," if len(e.elts) == 1 else "") + ")"
    if isinstance(e, List):
        return "[" + ", ".join(render(x) for x in e.elts) + "]"
    if isinstance(e, Starred):
        return f"*{render(e.value)}"
    if isinstance(e, FString):
        if any(not isinstance(p, str) and any(q in render(p) for q in "\"'\\") for p in e.parts):
            # A quote inside a replacement field ends the f-string before Python 3.12.
            return render(_concatenation(e.parts))
        text = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else f"{{{render(p)}}}"
                       for p in e.parts)
        return f'f"{text}"'
    raise TypeError(e)


def _atom(e: Expr) -> str:
    """``e`` rendered to be indexed or read an attribute of: (a + b)[0], not a + b[0]."""
    text = render(e)
    return f"({text})" if precedence(e) < 10 or (isinstance(e, Lit) and isinstance(e.value, (int, float))) else text


def _concatenation(parts: tuple) -> Expr:
    """An f-string's parts as ``"text" + str(expr) + ...``."""
    terms = [Lit(p) if isinstance(p, str) else Call(Name("str"), (p,)) for p in parts if p != ""]
    out = terms[0]
    for t in terms[1:]:
        out = BinOp(out, "+", t)
    return out


def arguments(c: Call) -> list[str]:
    """A call's arguments, each rendered: positional, then ``keyword=value``."""
    return [render(a) for a in c.args] + [f"{k}={render(v)}" for k, v in c.kwargs]


def read_names(e: Expr) -> Iterator[str]:
    """Every name the expression reads (the first name of each dotted path included)."""
    if isinstance(e, Name):
        yield e.id
    elif isinstance(e, (Attr, Subscript)):
        yield from read_names(e.value)
        for i in getattr(e, "index", ()):
            yield from read_names(i)
    elif isinstance(e, Call):
        for part in (e.func, *e.args, *(v for _, v in e.kwargs)):
            yield from read_names(part)
    elif isinstance(e, BinOp):
        yield from read_names(e.left)
        yield from read_names(e.right)
    elif isinstance(e, (Neg, Not, Starred)):
        yield from read_names(getattr(e, "operand", None) or e.value)
    elif isinstance(e, IfExp):
        for part in (e.cond, e.then, e.orelse):
            yield from read_names(part)
    elif isinstance(e, Slice):
        for b in (e.lo, e.hi):
            if b is not None:
                yield from read_names(b)
    elif isinstance(e, (Tuple, List)):
        for x in e.elts:
            yield from read_names(x)
    elif isinstance(e, FString):
        for p in e.parts:
            if not isinstance(p, str):
                yield from read_names(p)


def _simple(e: Expr) -> bool:
    """A slice bound ruff writes without spaces around the colon: a name or a number."""
    return isinstance(e, Name) or (isinstance(e, Lit) and type(e.value) is int)


def _literal(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # Backslashes, quotes, line breaks and anything unprintable as escapes: spec text
        # never ends the literal.
        return '"' + v.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(v, tuple):
        return "(" + ", ".join(_literal(e) for e in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, range):  # a spec's a..b (step 1), passed to a block
        return f"range({v.start}, {v.stop})"
    raise TypeError(type(v))
