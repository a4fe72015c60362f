"""Connections: the ops that combine tensors. Specs write them as operators (``+``,
``++``, ``*``, slices) or built-in functions (``gate``, ``join``), not through ``|>``.

Each is defined once here: the kind of its input edges, its shape rule, the tensors
its emitted forward creates (the summary's activation figure), whether its output may
alias an input, its forward expression (a tree of udnet/backends/pytorch/expr.py over
its operands; ``None``: the backend builds it: a slice reads its bounds, a join is a
module), its symbol in the summary and its drawing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from udnet.backends.pytorch.expr import BinOp, Expr, List, Lit, Slice, Subscript, call
from udnet.ops.spec import Arg, Shape, ShapeError, Signature, fmt, numel


@dataclass(frozen=True)
class Connection:
    name: str
    edge: str  # the kind of the edges into it
    symbol: str  # how the summary writes it
    activation: Callable[[list[Shape], Shape], int]  # elements per sample its forward creates
    forward: Callable[[list[Expr], tuple], Expr] | None  # operand expressions, form -> expression
    node: dict = field(default_factory=dict)  # Graphviz attributes of its drawn node
    edge_style: dict = field(default_factory=dict)  # Graphviz attributes of its input edges
    legend: str = ""  # what its edges mean, in a drawing's legend
    saves_output: bool = False
    signature: Signature | None = None  # the keyword arguments of a built-in function (join)
    # What its forward expression needs to know of the operand shapes: structure, equal
    # for all instances of an emitted class.
    form: Callable[[list[Shape]], tuple] = lambda shapes: ()



def _chain(op: str, args: list[Expr]) -> Expr:
    """``a op b op c``."""
    out = args[0]
    for a in args[1:]:
        out = BinOp(out, op, a)
    return out


def _gate(args: list[Expr], form: tuple) -> Expr:
    h, x, t = args
    return BinOp(BinOp(t, "*", h), "+", BinOp(BinOp(Lit(1), "-", t), "*", x))


def _vectors(shapes: list[Shape]) -> tuple:
    """Which operands of ``*`` are [C] vectors to broadcast over a [C, H, W] operand."""
    spatial = any(len(s) == 3 for s in shapes)
    return tuple(spatial and len(s) == 1 for s in shapes)


def _mul(args: list[Expr], form: tuple) -> Expr:
    spread = (Slice(), Slice(), Lit(None), Lit(None))  # a [N, C] vector as [N, C, 1, 1]
    return _chain("*", [Subscript(a, spread) if vector else a for a, vector in zip(args, form)])


def _mul_activation(shapes: list[Shape], out: Shape) -> int:
    vectors = _vectors(shapes)
    return numel(out) + sum(s[0] for s, v in zip(shapes, vectors) if v)  # each [N, C, 1, 1] view counts


def _node(**attrs: str) -> dict:  # pragma: no mutate block (runs at import)
    return {"style": "filled", **attrs}


CONNECTIONS: dict[str, Connection] = {c.name: c for c in (
    Connection("add", "residual", "+", lambda shapes, out: (len(shapes) - 1) * numel(out),  # partial sums
               lambda args, form: _chain("+", args),
               _node(shape="circle", label="+", width="0.3", height="0.3", fixedsize="true",
                     fillcolor="#dce8fb", color="#1f63c6", fontsize="14"),
               {"color": "#1f63c6", "penwidth": "2", "style": "dashed"}, "residual sum (+)"),
    Connection("concat", "concat", "++", lambda shapes, out: numel(out),
               lambda args, form: call("torch.cat", List(tuple(args)), Lit(1)),
        _node(label="++", fillcolor="#d4f2dc", color="#1e8c45", height="0.25"),
        {"color": "#1e8c45", "penwidth": "1.6"}, "concat (++)"),
    # t * h, 1 - t, (1 - t) * x and the sum
    Connection("gate", "gate", "gate", lambda shapes, out: 4 * numel(out), _gate,
               _node(shape="diamond", label="gate", fillcolor="#ffe3c2", color="#e07000", height="0.4"),
               {"color": "#e07000", "penwidth": "1.8", "style": "dashed"}, "highway gate: T*H + (1-T)*x"),
    # torch.stack of the n inputs, then the mean
    Connection("join", "join", "join", lambda shapes, out: (len(shapes) + 1) * numel(out), None,
               _node(shape="invtrapezium", label="join (mean)", fillcolor="#ead8f5", color="#8e3fb0"),
               {"color": "#8e3fb0", "penwidth": "2.2"}, "fractal join (mean of columns)",
               signature=Signature("join", (
                   Arg("drop_local", "prob", 0.0, doc="local drop-path: drop each input with this probability",
                       why="the probability of dropping each input (keeping at least one)"),
                   Arg("drop_global", "prob", 0.0, doc="fraction of each batch trained with global drop-path",
                       why="the fraction of each batch trained with global drop-path"),
               ))),
    Connection("slice", "slice", "slice", lambda shapes, out: numel(out), None,
               _node(fillcolor="#fbdad6", color="#c0392b", height="0.25"),
               {"color": "#c0392b", "penwidth": "1.8", "style": "dotted"}, "dual path: channel split",
               saves_output=True),
    Connection("mul", "product", "*", _mul_activation, _mul,
               _node(shape="circle", label="*", width="0.3", height="0.3", fixedsize="true",
                     fillcolor="#fde7f3", color="#b0306f", fontsize="14"),
               {"color": "#b0306f", "penwidth": "1.8", "style": "dashed"}, "element-wise product (*): attention",
               form=_vectors),
)}

#: kind of the edges into each connection op; op nodes' inputs are "sequence" edges.
CONNECTION_KINDS = {name: c.edge for name, c in CONNECTIONS.items()}


def infer_add(shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            hint = None
            if len(s) == len(first) == 3 and s[0] != first[0] and s[1:] == first[1:]:
                hint = f"insert a 1x1 projection on the shortcut: conv({max(s[0], first[0])}, 1)"
            elif len(s) == len(first) == 1:
                hint = f"insert a projection on the shortcut: linear({max(s[0], first[0])})"
            elif len(s) == len(first) == 3 and s[1:] != first[1:]:
                # the shortcut is the operand with the larger map; its projection strides
                # each dimension by the ratio, in the other operand's channels
                big, small = (first, s) if first[1] * first[2] >= s[1] * s[2] else (s, first)
                strides = [b // t if t and b % t == 0 else 0 for b, t in zip(big[1:], small[1:])]
                if all(strides):
                    stride = strides[0] if strides[0] == strides[1] else f"[{strides[0]}, {strides[1]}]"
                    hint = f"project the shortcut with stride: conv({small[0]}, 1, stride = {stride})"
                elif all(abs(a - b) <= 1 for a, b in zip(s[1:], first[1:])):
                    # 17 against 18: an odd size was halved and doubled again
                    hint = ("the sizes differ by rounding; upsample to the other operand's own size, "
                            "upsample(size = [height(t), width(t)]), or use an input size that divides evenly")
                else:
                    hint = ("a residual sum needs equal shapes; "
                            "stride or pool the larger operand, or upsample the smaller")
            raise ShapeError(f"residual sum of {fmt(first)} and {fmt(s)}: shapes differ", hint)
    return first


def infer_concat(shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or s[1:] != first[1:]:
            raise ShapeError(
                f"channel concat of {fmt(first)} and {fmt(s)}: spatial sizes differ",
                "concatenate tensors of equal height and width; pool or stride the larger one",
            )
    return (sum(s[0] for s in shapes),) + first[1:]


def infer_mul(shapes: list[Shape]) -> Shape:
    """PyTorch's broadcasting of [N, ...] tensors, with a [C] vector read as [C, 1, 1]
    against a [C, H, W] tensor: each dimension equal, or 1 in one of the operands."""
    a, b = shapes
    full = tuple(s + (1, 1) if len(s) == 1 and max(len(a), len(b)) == 3 else s for s in (a, b))
    out = []
    for x, y in zip(*full):
        if x != y and 1 not in (x, y):
            raise ShapeError(
                f"element-wise product of {fmt(a)} and {fmt(b)}: the shapes do not broadcast",
                "each of C, H, W must be equal or 1 in one operand: [C, H, W] * [C, 1, 1] (channel attention), "
                "[C, H, W] * [1, H, W] (spatial attention), [C, H, W] * [C]",
            )
        out.append(max(x, y))
    return tuple(out)


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
