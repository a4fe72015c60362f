"""Values of the udnet language at compile time.

Numbers, booleans, strings and lists are plain Python values (lists as tuples,
so they are immutable). Tensors name an IR node; stages are things that can be
applied to a tensor with ``|>``: a bound op, a block call, an inline group of
statements, or a chain of stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from udnet.errors import Span
from udnet.frontend import ast
from udnet.ops import OpSpec, fmt
from udnet.spectext import spec_text


@dataclass(frozen=True)
class Tensor:
    node: int
    shape: tuple[int, ...]
    # "add" or "concat" when this is the direct result of that operator, so that
    # `a + b + c` builds one node; cleared as soon as the value is bound or returned.
    fresh: str | None = None

    def settled(self) -> "Tensor":
        return self if self.fresh is None else Tensor(self.node, self.shape)

    def describe(self) -> str:
        return f"a tensor {fmt(self.shape)}"


@dataclass(frozen=True, eq=False)
class Outputs:
    """Several named tensors, in order: what ``return {p2: a, p3: b}`` gives; ``o.p2``
    (or ``o["p2"]``) picks one."""

    items: tuple[tuple[str, Tensor], ...]

    def get(self, name: str) -> Tensor | None:
        return next((t for n, t in self.items if n == name), None)

    def names(self) -> str:
        return ", ".join(n for n, _ in self.items)

    def describe(self) -> str:
        return f"{len(self.items)} named outputs ({self.names()})"


@dataclass(frozen=True, eq=False)
class Tensors:
    """``(a, b)``: several tensors piped into one stage, a block with several inputs."""

    items: tuple[Tensor, ...]

    def describe(self) -> str:
        return f"{len(self.items)} tensors"


class Stage:
    def describe(self) -> str:
        return "a stage"


@dataclass(frozen=True, eq=False)
class OpStage(Stage):
    spec: OpSpec
    attrs: dict
    span: Span

    def describe(self) -> str:
        return f"the op {self.spec.name}"


@dataclass(frozen=True, eq=False)
class BlockStage(Stage):
    defn: ast.Definition
    args: dict[str, Any]
    span: Span

    def describe(self) -> str:
        return f"the block {self.defn.name}"


@dataclass(frozen=True, eq=False)
class GroupStage(Stage):
    body: ast.Body
    frame: "Frame"

    def describe(self) -> str:
        return "a { ... } group"


@dataclass(frozen=True, eq=False)
class ChainStage(Stage):
    """``a |> b`` where ``a`` is itself a stage: applying it applies each in turn."""

    stages: tuple[tuple[Stage, "LabelValue | None", Span], ...]

    def describe(self) -> str:
        return "a chain of stages"


@dataclass(frozen=True)
class LabelValue:
    text: str
    span: Span


class Frame:
    """Variables of one block body or group; groups read their enclosing frame."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: "Frame | None" = None):
        self.vars: dict[str, Any] = {}
        self.parent = parent

    def lookup(self, name: str) -> Any:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.vars:
                return frame.vars[name]
            frame = frame.parent
        return MISSING


MISSING = object()
#: Values that hold graph nodes or stages: never compared, never shown as literals.
_UNCOMPARED = (Tensor, Stage, Outputs, Tensors)


class Incomparable(Exception):
    """``==`` or ``in`` met a tensor or a stage: those are not compared (message inside)."""


def equal(a: Any, b: Any, cost: list[int] | None = None) -> bool:
    """The language's ``==``, the one equality that ``==``, ``!=``, ``in`` and list
    comparison share. Numbers compare by value (``1 == 1.0``); booleans equal only
    booleans (``true == 1`` is false), strings only strings, lists only lists of equal
    items, ranges only ranges of the same integers (a range is not ``==`` to a list).
    Tensors and stages cannot be compared: ``Incomparable``. ``cost[0]`` counts the
    items and characters compared, for the step limit.
    """
    ta, tb = type(a), type(b)
    if cost is not None:
        cost[0] += 1
    if ta is tuple and tb is tuple:
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if not equal(x, y, cost):
                return False
        return True
    if isinstance(a, _UNCOMPARED) or isinstance(b, _UNCOMPARED):
        what = "stages" if isinstance(a, Stage) or isinstance(b, Stage) else "tensors"
        raise Incomparable(f"{what} cannot be compared")
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if ta in (int, float) and tb in (int, float):
        return a == b
    if ta is str and tb is str:
        if cost is not None:
            cost[0] += min(len(a), len(b))
        return a == b
    if ta is range and tb is range:
        return a == b  # as sequences, in constant time
    return False


def contains(container: tuple | range, item: Any, cost: list[int] | None = None) -> bool:
    """``item in container`` for a list or a range: whether some element is ``equal``
    to ``item``. Constant time in a range (whose elements are integers): an integer or
    an integral float is looked up, every other value is in no range."""
    if isinstance(container, range):
        if isinstance(item, _UNCOMPARED):
            equal(item, 0)  # raises
        if type(item) is int:
            return item in container
        if type(item) is float:
            return item.is_integer() and int(item) in container
        return False
    return any(equal(item, e, cost) for e in container)


def value_key(v: Any) -> Any:
    """A hashable key that equals another only for the same value of the same type:
    Python's ``True == 1``, ``1 == 1.0`` and ``0.0 == -0.0`` (with equal hashes) must
    not make a cache or a table keyed on values confuse them."""
    t = type(v)
    if t is tuple:
        return (tuple, tuple(value_key(e) for e in v))
    if t is float:
        return (float, repr(v))
    return (t, v)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        if len(value) > 60:  # strings can be a million characters long
            return f'the string "{value[:40]}..." ({len(value):,} characters)'
        return f'the string "{value}"'
    if isinstance(value, tuple):
        return f"a list of {len(value)}"
    if isinstance(value, range):
        return "a range"
    if hasattr(value, "describe"):
        return value.describe()
    return type(value).__name__


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (tuple, range)):
        return "list"
    if isinstance(value, Tensor):
        return "tensor"
    if isinstance(value, (Outputs, Tensors)):
        return "tensors"
    return "stage"


def show(v: Any, limit: int = 100) -> str:
    """A value in a message, as a spec writes it, cut short after about ``limit``
    characters: a list may hold a million items and a range 2**62. Strings go in as they
    are: the message is escaped as a whole when it is printed."""
    return spec_text(v, quote="plain", limit=limit, depth=None)
