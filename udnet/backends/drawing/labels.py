"""The texts of a drawing: block calls, op labels, node attributes, DOT-safe quoting."""

from __future__ import annotations

import re

import graphviz

from udnet.elaborate.values import value_key
from udnet.ir.graph import IR, Scope
from udnet.ops import OPS
from udnet.spectext import spec_text

from .style import CONNECTION_NODE

# Per-op text and fill colour

#: Fill colour of each op's node, from the op table.
OP_FILL = {name: spec.draw.fill for name, spec in OPS.items()}


#: A block call is cut to this many characters ("...)"): a label must stay narrow.
CALL_WIDTH = 72


def label_value(v) -> str:
    """A value in a drawing's label: floats short, and the text cut not long after
    ``CALL_WIDTH``, where ``call_text`` cuts anyway, so that a range of 2**62 items costs
    nothing to draw."""
    return spec_text(v, limit=CALL_WIDTH, short_floats=True)


def _equal(a, b) -> bool:
    """The same value of the same type (``true`` is not ``1``, ``[1]`` is not ``[1.0]``),
    without recursion: lists may nest thousands deep."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if type(x) is not type(y) or len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)) or value_key(x) != value_key(y):
            return False
    return True


def same_args(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)


def call_text(scope: Scope, outer: Scope | None = None) -> str:
    """``Block(a=1, b=2)``; inside an instance of the same block (recursion), only the
    arguments that changed, then "...": ``Fractal(C=2, ...)``."""
    items = list(scope.args.items())
    more = False
    if outer is not None and outer.block == scope.block and outer.args.keys() == scope.args.keys():
        changed = [(k, v) for k, v in items if not _equal(outer.args[k], v)]
        more = len(changed) < len(items)
        items = changed
    args = ", ".join(f"{k}={label_value(v)}" for k, v in items)
    if more:
        args = f"{args}, ..." if args else "..."
    text = f"{scope.block}({args})"
    return text if len(text) <= CALL_WIDTH else text[: CALL_WIDTH - 4] + "...)"


def stage_text(passes: list[str], fractal_column: int | None = None) -> str:
    """What a drawing after the passes shows, for its title: ``after prune, share-concat``."""
    text = "after " + ", ".join(passes) if passes else "no passes"
    return text + (f"; column {fractal_column}" if fractal_column is not None else "")


def _op_text(op: str, a: dict) -> str:
    """An op node's label, from the op table: its arguments worth showing, or its name."""
    label = OPS[op].draw.label
    return label(a) if label else op


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


_TEXT_ATTRS = ("label", "tooltip", "headlabel")


class Html(str):
    """An HTML-like label udnet built itself, every spec text in it escaped: passed as is."""


def quoted(attrs: dict) -> dict:
    """Text from a spec (labels, string arguments) reaches DOT verbatim: backslashes and
    quotes escaped, never read as an HTML label or an escString (\\l, \\N); every
    character that is not printable but the line breaks udnet puts in labels shown
    escaped (a NUL would end the string inside Graphviz and re-pair the quotes; control
    characters are not allowed in SVG)."""
    out = dict(attrs)
    for key in _TEXT_ATTRS:
        v = out.get(key)
        if isinstance(v, str) and not isinstance(v, Html):
            out[key] = graphviz.nohtml(_printable(v).replace("\\", "\\\\").replace('"', '\\"'))
    return out


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii") for c in text)


def node_attrs(ir: IR, n: int, tap: bool) -> dict:
    d = ir.nodes[n]
    op = d["op"]
    path = ir.path(n)
    tip = f"{path}: {op} -> [{', '.join(map(str, d['shape']))}]"
    if d.get("params"):
        tip += f", {d['params']:,} params"
    attrs: dict[str, str] = {"tooltip": tip, "class": f"op {op}"}
    if op in ("input", "output"):
        name = d["attrs"].get("name")  # one of several named outputs: an ordered dict's key
        attrs.update(
            label=f"{op} {name}\n{shape_text(d['shape'])}" if name else f"{op}\n{shape_text(d['shape'])}",
            style="filled",
            fillcolor="#3d4b66",
            fontcolor="white",
            color="#3d4b66",
        )
        return attrs
    if op in CONNECTION_NODE:
        attrs.update(CONNECTION_NODE[op])
        if op == "concat" and tap:
            attrs.update(label=f"++ {d['shape'][0]}", fontsize="8", height="0.2", margin="0.04,0.01")
            attrs["class"] += " tap"
        elif op == "concat":
            attrs["label"] = f"++ {d['shape'][0]}"
        elif op == "slice":
            attrs["label"] = f"[{d['attrs']['lo']}:{d['attrs']['hi']}]"
        return attrs
    text = _op_text(op, d["attrs"])
    name = d.get("name")
    auto = name is None or re.fullmatch(re.escape(op) + r"(_\d+)?_*", name)
    attrs["label"] = text if auto else f"{name}\n{text}"
    attrs["fillcolor"] = OP_FILL.get(op, "#f2f2f2")
    return attrs
