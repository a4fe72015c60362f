"""The shared machinery of the op table: arguments and their checks, ``OpSpec`` (one
op, defined once) and what the backends read from it (``Torch`` emission, ``Draw``).

The op families live in the sibling modules; ``udnet.ops.OPS`` collects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from udnet.limits import HALF_MAX, MAX_DIM
from udnet.spectext import spec_string, spec_text

Shape = tuple[int, ...]

REQUIRED = object()


class ShapeError(Exception):
    """A shape rule failed; the elaborator attaches the span and notes. ``operand``: the
    index of the argument at fault, where the caller has a span for each (gate)."""

    def __init__(self, message: str, hint: str | None = None, operand: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.operand = operand


class ArgError(Exception):
    """An op argument is missing, unknown or of the wrong type; ``arg`` is its position or name."""

    def __init__(self, message: str, arg: int | str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.arg = arg
        self.hint = hint


#: bn's eps is added to a variance in float32 before dividing by its square root; below the
#: normal float32 range (about 1.2e-38) it rounds to 0 or a subnormal, and 0 / 0 gives NaN.
EPS_MIN = 1e-37


@dataclass(frozen=True)
class Arg:
    """One argument of an op. Integers (``int``, ``pos_int``, pairs) are
    integers only (``3.0`` is not one) and at most ``MAX_DIM``; numbers (``float``,
    ``prob``, and ``opt_number``, which may be none and keeps an integer an integer) are
    finite and within ``[lo, hi]`` (``hi`` excluded when ``hi_open``), by default
    ``[-HALF_MAX, HALF_MAX]``; ``why`` explains the range in the error's hint."""

    name: str
    kind: str  # int, pos_int, pair, pos_pair, opt_pair, float, opt_number, prob, bool, choice
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    doc: str = ""
    lo: float | None = None
    hi: float | None = None
    hi_open: bool = False
    why: str = ""

    def bounds(self) -> tuple[float, float, bool]:
        """The valid range of a number argument: (lo, hi, hi excluded)."""
        if self.kind == "prob":
            return (0.0, 1.0, True)
        lo = -HALF_MAX if self.lo is None else self.lo
        return (lo, HALF_MAX if self.hi is None else self.hi, self.hi_open)

    def valid(self) -> str:
        """The valid values of a number or integer argument, as the docs and hints write them."""
        if self.kind in ("float", "prob", "opt_number"):
            lo, hi, hi_open = self.bounds()
            return f"[{num_text(lo)}, {num_text(hi)}{')' if hi_open else ']'}"
        if self.kind == "pair":
            return "0 to 2**31"
        return "1 to 2**31" if self.kind in ("pos_int", "pos_pair", "opt_pair") else "-2**31 to 2**31"


def num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(x)


def square(pair: tuple[int, int]) -> int | tuple[int, int]:
    """A pair as a constructor argument: 3 for (3, 3)."""
    return pair[0] if pair[0] == pair[1] else pair


@dataclass(frozen=True)
class Field:
    """One constructor argument of an op's PyTorch module. ``keyword`` None: positional.
    ``default``: the argument's text when the constructor's default applies (then it is
    left out); ``same_as``: left out when its text equals that field's. ``hint`` names the
    class parameter a shared emitted class makes of it when instances differ."""

    hint: str
    value: Any  # an int, float, bool, str or a pair of ints
    keyword: str | None = None
    default: str | None = None
    same_as: str | None = None


@dataclass(frozen=True)
class Torch:
    """How the PyTorch backend builds an op: ``module(fields...)``, called on the tensor.
    ``helpers`` is the source of any function or class the module needs, copied into
    model.py in this order; ``inplace`` is a field that makes the module overwrite its
    input, used where nothing else reads the input (``Field("inplace", True, "inplace",
    "False")`` for ReLU)."""

    module: str | Callable[[Shape], str]  # callable: the class depends on the input's rank
    fields: Callable[[Shape, dict], tuple[Field, ...]] = lambda s, a: ()
    helpers: tuple[str, ...] = ()
    inplace: Field | None = None

    def describe(self, shape: Shape, attrs: dict, inplace: bool = False) -> tuple:
        """What constructs the op's module: ("op", module, fields as tuples)."""
        module = self.module(shape) if callable(self.module) else self.module
        fields = self.fields(shape, attrs) + ((self.inplace,) if inplace and self.inplace else ())
        return ("op", module, tuple((f.hint, f.keyword, f.default, f.same_as, f.value) for f in fields))


@dataclass(frozen=True)
class Draw:
    """How a drawing shows an op: its fill colour and the label text from its attributes."""

    fill: str
    label: Callable[[dict], str] | None = None


def numel(s: Shape) -> int:
    n = 1
    for d in s:
        n *= d
    return n


@dataclass(frozen=True)
class Signature:
    """The arguments a built-in takes, with defaults and checks (an op's, or a join's)."""

    name: str
    args: tuple[Arg, ...]

    def bind(self, args: list, kwargs: dict) -> dict:
        """Check call arguments against the signature; return the complete attribute dict."""
        if len(args) > len(self.args):
            raise ArgError(
                f"{self.name} takes at most {len(self.args)} argument(s), got {len(args)}",
                len(self.args),
                hint=f"signature: {self.signature()}",
            )
        attrs: dict[str, Any] = {}
        where: dict[str, int | str] = {}
        for i, value in enumerate(args):
            attrs[self.args[i].name] = value
            where[self.args[i].name] = i
        names = {a.name for a in self.args}
        for key, value in kwargs.items():
            if key not in names:
                raise ArgError(f"{self.name} has no argument '{key}'", key, hint=f"signature: {self.signature()}")
            if key in attrs:
                raise ArgError(f"{self.name} got argument '{key}' twice", key)
            attrs[key] = value
            where[key] = key
        for a in self.args:
            if a.name not in attrs:
                if a.default is REQUIRED:
                    raise ArgError(f"{self.name} needs argument '{a.name}'", hint=f"signature: {self.signature()}")
                attrs[a.name] = check_arg(self.name, a, a.default, a.name)  # normalised as given ones are
                continue
            attrs[a.name] = check_arg(self.name, a, attrs[a.name], where[a.name])
        return self.finish(attrs)

    def signature(self) -> str:
        parts = []
        for a in self.args:
            parts.append(a.name if a.default is REQUIRED else f"{a.name} = {spec_text(a.default)}")
        return f"{self.name}({', '.join(parts)})"

    def finish(self, attrs: dict) -> dict:
        """The bound attributes, after rules across arguments (none here)."""
        return attrs


@dataclass(frozen=True)
class OpSpec(Signature):
    """An op, defined once: signature, shape rule, costs, aliasing, emission and drawing.

    ``params(shape, attrs)``: trainable parameters (buffers are not counted);
    ``macs(in_shape, out_shape, attrs)``: multiply-accumulates per sample;
    ``activation(in_shape, out_shape, attrs)``: elements per sample of the tensors the
    emitted module creates in eval mode, as torch.fx counts them (the summary's figure);
    ``saves_output``: its backward keeps its output, or its output may be its input (a
    view, an identity in eval), so an in-place op after it must not overwrite it;
    ``check(attrs)``: rules across arguments, after each is checked (raise ``ArgError``);
    it returns the attributes, normalised."""

    infer: Callable[[Shape, dict], Shape]
    torch: Torch
    draw: Draw
    doc: str
    params: Callable[[Shape, dict], int] = lambda s, a: 0
    macs: Callable[[Shape, Shape, dict], int] = lambda i, o, a: 0
    activation: Callable[[Shape, Shape, dict], int] = lambda i, o, a: numel(o)
    saves_output: bool = False
    rank: tuple[int, ...] = (1, 3)  # input ranks accepted
    check: Callable[[dict], dict] = lambda a: a

    def finish(self, attrs: dict) -> dict:
        return self.check(attrs)


def infer_op(spec: OpSpec, shape: Shape, attrs: dict) -> Shape:
    if len(shape) not in spec.rank:
        want = " or ".join("[C, H, W]" if r == 3 else "[C]" for r in spec.rank)
        hint = None
        if spec.rank == (3,):
            hint = "spatial ops cannot follow gap, flatten or linear"
        elif spec.rank == (1,):
            hint = "insert gap (global average pooling) or flatten first"
        raise ShapeError(f"{spec.name} needs a {want} tensor, got {fmt(shape)}", hint)
    return spec.infer(shape, attrs)


def fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_arg(op: str, a: Arg, v: Any, where: int | str) -> Any:
    given = v  # report what the user wrote, not the normalised pair

    def bad(expect: str, hint: str | None = None) -> ArgError:
        return ArgError(f"{op} argument '{a.name}' must be {expect}, got {_describe(given)}", where, hint)

    def not_int(expect: str, item: Any) -> ArgError:
        hint = None
        if isinstance(item, float):
            fix = f"write {int(item)}" if item.is_integer() and abs(item) < 1e16 else "convert it with int(...)"
            hint = f"{item!r} is a number, not an integer: {fix}"
        return bad(expect, hint)

    def too_big() -> ArgError:
        return bad("at most 2**31", f"the valid range is {a.valid()}: sizes, windows and counts above 2**31 "
                   "(a fixed limit) are always a mistake")

    is_int = isinstance(v, int) and not isinstance(v, bool)
    if a.kind in ("int", "pos_int"):
        if not is_int:
            raise not_int("an integer", v)
        if a.kind == "pos_int" and v < 1:
            raise bad("a positive integer", f"the valid range is {a.valid()}")
        if abs(v) > MAX_DIM:
            raise too_big()
        return v
    if a.kind in ("pair", "pos_pair", "opt_pair"):
        if a.kind == "opt_pair" and v is None:
            return None
        if is_int:
            v = (v, v)
        elif isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(e) for e in v):
            v = tuple(v)
        else:
            floats = [e for e in (v if isinstance(v, (list, tuple)) and len(v) == 2 else (v,)) if type(e) is float]
            raise not_int("an integer or a list of two integers", floats[0] if floats else None)
        low = 0 if a.kind == "pair" else 1
        if min(v) < low:
            raise bad("positive" if low else "non-negative", f"the valid range is {a.valid()}")
        if max(v) > MAX_DIM:
            raise too_big()
        return v
    if a.kind == "opt_number" and v is None:
        return None
    if a.kind in ("float", "prob", "opt_number"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        lo, hi, hi_open = a.bounds()
        expect = f"a probability in {a.valid()}" if a.kind == "prob" else f"a number in {a.valid()}"
        hint = f"the valid range is {a.valid()}: " + (a.why or (
            f"every number an op holds is at most {num_text(HALF_MAX)} in magnitude, the largest float16, so that "
            "the model stays finite in half precision"
        ))
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise bad("a finite number", hint)
        if not (lo <= v < hi if hi_open else lo <= v <= hi):  # compared exactly: v may be a huge integer
            raise bad(expect, hint)
        return v if a.kind == "opt_number" and _is_int(v) else float(v)
    if a.kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if a.kind == "choice":
        if not isinstance(v, str) or v not in a.choices:
            raise bad("one of " + ", ".join(f'"{c}"' for c in a.choices))
        return v
    raise AssertionError(a.kind)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _describe(v: Any) -> str:
    """A value given to an op, for an error message: short lists are shown whole."""
    if isinstance(v, (list, tuple)):
        text = spec_text(v)
        return text if len(text) <= 60 else f"a list of {len(v):,}"
    if isinstance(v, str):
        if len(v) > 60:  # strings can be a million characters long
            return f"the string {spec_string(v[:40] + '...')} ({len(v):,} characters)"
        return f"the string {spec_string(v)}"
    if v is None or isinstance(v, (bool, int, float)):
        return spec_text(v)
    return type(v).__name__
