"""The built-in op set: arguments, static shape inference, parameter and MAC counts.

Adding an op means adding one ``OpSpec`` to ``OPS`` (and its emission in the
PyTorch backend). Connection ops (add, concat, gate, join, slice) are not called
by name in specs; they come from operators and have their shape rules at the end.

MACs count the multiply-accumulates of conv and linear layers, the usual
convention in the papers; element-wise ops and normalisation count zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Shape = tuple[int, ...]

REQUIRED = object()

#: No dimension of a tensor may exceed this (a fixed cap: sizes beyond it are always a
#: mistake, such as conv(2**60, 3) or 80 upsample(2) in a row). See docs/limits.md.
MAX_DIM = 2**31
#: Default cap on the elements of one node's output (per sample, batch excluded) and on
#: one node's parameters: 2**32, 16 GiB in float32. ``Limits.max_elements``, --max-elements.
MAX_ELEMENTS = 2**32


class ShapeError(Exception):
    """A shape rule failed; the elaborator attaches the span and notes."""

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


#: The largest finite float16. Every number an op argument holds is at most this in
#: magnitude: a bias constant or elu's alpha (its output's bound) must stay finite when the
#: model runs in half precision (autocast, .half()), and hence in float32. docs/language.md.
HALF_MAX = 65504.0
#: bn's eps is added to a variance in float32 before dividing by its square root; below the
#: normal float32 range (about 1.2e-38) it rounds to 0 or a subnormal, and 0 / 0 gives NaN.
EPS_MIN = 1e-37


@dataclass(frozen=True)
class Arg:
    """One argument of an op. Integers (``int``, ``pos_int``, ``nonneg_int``, pairs) are
    integers only (``3.0`` is not one) and at most ``MAX_DIM``; numbers (``float``,
    ``prob``) are finite and within ``[lo, hi]`` (``hi`` excluded when ``hi_open``), by
    default ``[-HALF_MAX, HALF_MAX]``; ``why`` explains the range in the error's hint."""

    name: str
    kind: str  # int, pos_int, nonneg_int, pair, pos_pair, opt_pair, float, prob, bool, choice
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
        if self.kind in ("float", "prob"):
            lo, hi, hi_open = self.bounds()
            return f"[{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
        if self.kind in ("pair", "nonneg_int"):
            return "0 to 2**31"
        return "1 to 2**31" if self.kind in ("pos_int", "pos_pair", "opt_pair") else "-2**31 to 2**31"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(x)


@dataclass(frozen=True)
class OpSpec:
    name: str
    args: tuple[Arg, ...]
    infer: Callable[[Shape, dict], Shape]
    params: Callable[[Shape, dict], int] = lambda s, a: 0
    macs: Callable[[Shape, Shape, dict], int] = lambda i, o, a: 0
    doc: str = ""
    rank: tuple[int, ...] = (1, 3)  # input ranks accepted
    extra: dict = field(default_factory=dict)

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
                    raise ArgError(
                        f"{self.name} needs argument '{a.name}'", None, hint=f"signature: {self.signature()}"
                    )
                attrs[a.name] = a.default if a.default is None else _check(self.name, a, a.default, a.name)
                continue
            attrs[a.name] = _check(self.name, a, attrs[a.name], where[a.name])
        return attrs

    def signature(self) -> str:
        parts = []
        for a in self.args:
            parts.append(a.name if a.default is REQUIRED else f"{a.name} = {show_value(a.default)}")
        return f"{self.name}({', '.join(parts)})"


#: Lists nested deeper than this are shown as ``[...]``: values may nest as deep as
#: --max-nesting allows, and a printout of hundreds of brackets says nothing.
SHOW_DEPTH = 24


def show_value(v: Any, _depth: int = 0) -> str:
    """A value as a spec writes it; lists nested deeper than ``SHOW_DEPTH`` elided as ``[...]``."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return show_string(v)
    if isinstance(v, (list, tuple, range)):
        if _depth >= SHOW_DEPTH and len(v):
            return "[...]"
        return "[" + ", ".join(show_value(i, _depth + 1) for i in v) + "]"
    return str(v)


_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def show_string(s: str) -> str:
    """A string as a spec writes it, quoted; characters that are not printable (NUL, BEL,
    terminal escapes, bidi overrides, line and paragraph separators) shown escaped, ``\\x1b``,
    ``\\u202e``, so that no printout or drawing ever carries them raw."""
    if s.isprintable():
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for c in s:
        e = _STRING_ESCAPES.get(c)
        if e is None and not c.isprintable() and c != " ":
            e = c.encode("unicode_escape").decode("ascii")
        out.append(c if e is None else e)
    return '"' + "".join(out) + '"'


def _check(op: str, a: Arg, v: Any, where: int | str) -> Any:
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
    if a.kind in ("int", "pos_int", "nonneg_int"):
        if not is_int:
            raise not_int("an integer", v)
        if a.kind == "pos_int" and v < 1:
            raise bad("a positive integer", f"the valid range is {a.valid()}")
        if a.kind == "nonneg_int" and v < 0:
            raise bad("a non-negative integer", f"the valid range is {a.valid()}")
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
    if a.kind in ("float", "prob"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        lo, hi, hi_open = a.bounds()
        expect = f"a probability in {a.valid()}" if a.kind == "prob" else f"a number in {a.valid()}"
        hint = f"the valid range is {a.valid()}: " + (a.why or (
            f"every number an op holds is at most {_num(HALF_MAX)} in magnitude, the largest float16, so that "
            "the model stays finite in half precision"
        ))
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise bad("a finite number", hint)
        if not (lo <= v < hi if hi_open else lo <= v <= hi):  # compared exactly: v may be a huge integer
            raise bad(expect, hint)
        return float(v)
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
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if len(v) > 60:  # strings can be a million characters long
            return f'the string "{v[:40]}..." ({len(v):,} characters)'
        return f'the string "{v}"'
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)}"
    return getattr(v, "describe", lambda: type(v).__name__)()


# ---- shape helpers ----


def _spatial(op: str, s: Shape) -> Shape:
    if len(s) != 3:
        raise ShapeError(
            f"{op} needs a [C, H, W] tensor, got {fmt(s)}",
            hint="spatial ops cannot follow gap, flatten or linear",
        )
    return s


def _window(size: int, k: int, stride: int, pad: int, dil: int, ceil: bool = False) -> int:
    span = dil * (k - 1) + 1
    num = size + 2 * pad - span
    # As PyTorch computes it, rounding down (or up, in ceil mode) towards -infinity: in
    # ceil mode a window may hang over the right edge, even of an input smaller than it.
    out = (-(-num // stride) if ceil else num // stride) + 1
    if out < 1:
        return 0
    # PyTorch drops a last window that would start entirely in the right padding.
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _conv_out(op: str, s: Shape, a: dict, dil=None) -> tuple[int, int]:
    _, h, w = _spatial(op, s)
    kh, kw = a["kernel"]
    sh, sw = a["stride"] if a.get("stride") is not None else a["kernel"]
    ph, pw = a["pad"]
    dh, dw = dil or a.get("dilation", (1, 1))
    if 2 * ph > kh or 2 * pw > kw:
        if op != "conv":
            raise ShapeError(f"{op} padding {a['pad'][0]} is more than half the kernel {kh}")
    ceil = a.get("ceil", False)
    oh, ow = _window(h, kh, sh, ph, dh, ceil), _window(w, kw, sw, pw, dw, ceil)
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"{op} with kernel {kh}x{kw} and padding {ph}x{pw} does not fit the input {h}x{w}",
            hint="the input is too small here: remove a downsampling step or pad more",
        )
    return oh, ow


def fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _conv_infer(s: Shape, a: dict) -> Shape:
    c = _spatial("conv", s)[0]
    if c < 1:
        raise ShapeError("conv input has no channels")
    g = a["groups"]
    if c % g or a["out"] % g:
        raise ShapeError(
            f"conv groups = {g} must divide both the input channels ({c}) and the output channels ({a['out']})"
        )
    oh, ow = _conv_out("conv", s, a)
    return (a["out"], oh, ow)


def _conv_params(s: Shape, a: dict) -> int:
    kh, kw = a["kernel"]
    return a["out"] * (s[0] // a["groups"]) * kh * kw + (a["out"] if a["bias"] else 0)


def _conv_macs(i: Shape, o: Shape, a: dict) -> int:
    kh, kw = a["kernel"]
    return o[0] * o[1] * o[2] * (i[0] // a["groups"]) * kh * kw


def _pool_infer(op: str):
    def infer(s: Shape, a: dict) -> Shape:
        oh, ow = _conv_out(op, s, a, dil=(1, 1))
        return (s[0], oh, ow)

    return infer


def _bn_infer(s: Shape, a: dict) -> Shape:
    if s[0] < 1:
        raise ShapeError("bn input has no channels")
    return s


def _linear_infer(s: Shape, a: dict) -> Shape:
    if len(s) != 1:
        raise ShapeError(
            f"linear needs a [C] tensor, got {fmt(s)}",
            hint="insert gap (global average pooling) or flatten before linear",
        )
    if s[0] < 1:
        raise ShapeError("linear input has no features")
    return (a["out"],)


def _same(s: Shape, a: dict) -> Shape:
    return s


_PROB_WHY = "p is the probability of dropping an element; 1 would drop everything and divide by 1 - p = 0"
_BIAS_WHY = (
    f"the bias is this constant, and {_num(HALF_MAX)}, the largest float16, keeps it finite in half precision"
)
_INITS = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "zeros", "default")


def _specs() -> dict[str, OpSpec]:
    pair = Arg
    ops = [
        OpSpec(
            "conv",
            (
                Arg("out", "pos_int", doc="output channels"),
                pair("kernel", "pos_pair", doc="kernel size, k or [kh, kw]"),
                pair("stride", "pos_pair", 1),
                pair("pad", "pair", 0),
                pair("dilation", "pos_pair", 1),
                Arg("groups", "pos_int", 1),
                Arg("bias", "bool", False),
                Arg("weight_init", "choice", "kaiming_normal", _INITS),
                Arg("bias_init", "float", 0.0, why=_BIAS_WHY),
            ),
            _conv_infer,
            _conv_params,
            _conv_macs,
            doc="2-d convolution",
            rank=(3,),
        ),
        OpSpec(
            "bn",
            (
                Arg("eps", "float", 1e-5, lo=EPS_MIN, why=(
                    "eps is added to the variance before dividing by its square root, so it must stay positive "
                    "in float32 (whose normal numbers start near 1.2e-38)"
                )),
                Arg("momentum", "float", 0.1, lo=0.0, hi=1.0, why=(
                    "the running statistics move this fraction of the way to each batch's "
                    "(0 freezes them, 1 keeps only the last batch)"
                )),
                Arg("affine", "bool", True),
            ),
            _bn_infer,
            lambda s, a: 2 * s[0] if a["affine"] else 0,
            doc="batch normalisation over channels (weight 1, bias 0 at init)",
        ),
        OpSpec("relu", (), _same, doc="max(x, 0)"),
        OpSpec("sigmoid", (), _same, doc="1 / (1 + exp(-x))"),
        OpSpec("tanh", (), _same, doc="hyperbolic tangent"),
        OpSpec(
            "elu",
            (Arg("alpha", "float", 1.0, lo=0.0, why=(
                f"elu saturates at -alpha for negative inputs (0 gives relu), and {_num(HALF_MAX)}, the largest "
                "float16, keeps that finite in half precision"
            )),),
            _same,
            doc="exponential linear unit",
        ),
        OpSpec("identity", (), _same, doc="passes its input through"),
        OpSpec("dropout", (Arg("p", "prob", 0.5, why=_PROB_WHY),), _same, doc="element-wise dropout (training only)"),
        OpSpec(
            "maxpool",
            (
                Arg("kernel", "pos_pair"),
                Arg("stride", "opt_pair", None, doc="defaults to the kernel size"),
                Arg("pad", "pair", 0),
                Arg("ceil", "bool", False),
            ),
            _pool_infer("maxpool"),
            doc="max pooling",
            rank=(3,),
        ),
        OpSpec(
            "avgpool",
            (
                Arg("kernel", "pos_pair"),
                Arg("stride", "opt_pair", None, doc="defaults to the kernel size"),
                Arg("pad", "pair", 0),
                Arg("ceil", "bool", False),
                Arg("count_pad", "bool", True, doc="count zero padding in the average"),
            ),
            _pool_infer("avgpool"),
            doc="average pooling",
            rank=(3,),
        ),
        OpSpec(
            "gap",
            (Arg("keep", "bool", False, doc="keep [C, 1, 1] instead of [C]"),),
            lambda s, a: (s[0], 1, 1) if a["keep"] else (s[0],),
            doc="global average pooling",
            rank=(3,),
        ),
        OpSpec(
            "linear",
            (
                Arg("out", "pos_int"),
                Arg("bias", "bool", True),
                Arg("weight_init", "choice", "default", _INITS),
                Arg("bias_init", "float", 0.0, why=_BIAS_WHY),
            ),
            _linear_infer,
            lambda s, a: a["out"] * s[0] + (a["out"] if a["bias"] else 0),
            lambda i, o, a: i[0] * o[0],
            doc="fully connected layer",
            rank=(1,),
        ),
        OpSpec(
            "flatten",
            (),
            lambda s, a: (s[0] * s[1] * s[2],) if len(s) == 3 else s,
            doc="[C, H, W] to [C*H*W]",
        ),
        OpSpec(
            "upsample",
            (Arg("scale", "pos_int", 2), Arg("mode", "choice", "nearest", ("nearest", "bilinear"))),
            lambda s, a: (s[0], s[1] * a["scale"], s[2] * a["scale"]),
            doc="spatial upsampling by an integer factor",
            rank=(3,),
        ),
    ]
    return {op.name: op for op in ops}


OPS: dict[str, OpSpec] = _specs()


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


# ---- connection ops ----

#: kind of the edges into each connection op; op nodes' inputs are "sequence" edges.
CONNECTION_KINDS = {"add": "residual", "concat": "concat", "gate": "gate", "join": "join", "slice": "slice"}


def infer_add(shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for i, s in enumerate(shapes[1:], 1):
        if s != first:
            hint = None
            if len(s) == len(first) == 3 and s[0] != first[0] and s[1:] == first[1:]:
                hint = f"insert a 1x1 projection on the shortcut: conv({max(s[0], first[0])}, 1)"
            elif len(s) == len(first) == 3 and s[1:] != first[1:]:
                stride = first[1] // s[1] if s[1] and first[1] % s[1] == 0 else None
                if stride:
                    hint = f"project the shortcut with stride: conv({s[0]}, 1, stride = {stride})"
                else:
                    hint = "a residual sum needs equal shapes; project the shortcut"
            raise ShapeError(f"residual sum of {fmt(first)} and {fmt(s)}: shapes differ", hint, operand=i)
    return first


def infer_concat(shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for i, s in enumerate(shapes[1:], 1):
        if len(s) != len(first) or s[1:] != first[1:]:
            raise ShapeError(
                f"channel concat of {fmt(first)} and {fmt(s)}: spatial sizes differ",
                "concatenate tensors of equal height and width; pool or stride the larger one",
                operand=i,
            )
    return (sum(s[0] for s in shapes),) + first[1:]


def infer_same(what: str, shapes: list[Shape], names: list[str] | None = None) -> Shape:
    first = shapes[0]
    for i, s in enumerate(shapes[1:], 1):
        if s != first:
            a = names[0] if names else "operand 1"
            b = names[i] if names else f"operand {i + 1}"
            raise ShapeError(f"{what}: {a} is {fmt(first)} but {b} is {fmt(s)}", operand=i)
    return first


def infer_slice(shape: Shape, lo: int, hi: int) -> Shape:
    return (hi - lo,) + shape[1:]
