"""Graphviz backend: legible diagrams of ultra-deep networks, fast.

``build_dot(ir)`` turns the IR into DOT (built with the ``graphviz`` package); ``render``
runs a layout program over it; ``draw`` does both and writes the file atomically.
Nothing here imports torch.

What the picture shows
    * one cluster per block instance (and labelled group), titled with the block's call,
      e.g. ``denseblock1: DenseBlock(n=6, k=32)``;
    * ``depth=N`` collapses every scope deeper than N into one node;
    * consecutive identical block instances (same block, same arguments, same inner
      structure, each feeding the next) fold into one node marked ``xN`` unless
      ``expand`` is set;
    * one edge style per connection kind, with a legend of the kinds present;
    * skip connections are laid out with little weight and drawn last, so they bow
      around the main path and lie on top of it, never under it;
    * a dense block is drawn as a buffer: its chain of binary concats becomes a thick
      bus, every layer reads the bus once and appends to it once (O(L) edges, not
      O(L^2)). A concat that repeats an earlier concat's operands as a prefix is
      redrawn as "that concat ++ the rest", so hand-written all-to-all concatenation
      becomes the same bus.

Rendering uses the system ``dot`` when it is on PATH and otherwise ``graphviz-pure``, a
self-contained port of Graphviz's ``dot`` installed as a normal pip dependency (see
docs/architecture.md, "Rendering diagrams").
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field, replace

import graphviz

from udnet.elaborate.values import value_key
from udnet.errors import UdnetError, UsageError, show_path
from udnet.ir.graph import IR, Scope
from udnet.ops import CONNECTIONS, OPS, SHOW_DEPTH, show_string

# ---------------------------------------------------------------------------
# Styles

# Edge kinds as drawn: the IR's kinds (a connection's from the op table), plus "bus" for
# the segments of a dense buffer.
EDGE_STYLE: dict[str, dict[str, str]] = {
    "sequence": {"color": "#4d4d4d", "penwidth": "1.1"},
    "bus": {"color": "#8fd19e", "penwidth": "7", "arrowhead": "none"},
    **{c.edge: c.edge_style for c in CONNECTIONS.values()},
}
LEGEND = {
    "sequence": "sequence",
    "bus": "dense buffer (each layer reads, then appends)",
    **{c.edge: c.legend for c in CONNECTIONS.values()},
}
# When several IR edges become one drawn edge, the most telling kind wins.
PRIORITY = ("gate", "product", "join", "residual", "slice", "concat", "bus", "sequence")

#: Fill colour of each op's node, from the op table.
OP_FILL = {name: spec.draw.fill for name, spec in OPS.items()}
CONNECTION_NODE = {name: c.node for name, c in CONNECTIONS.items()}
BLOCK_CLUSTER = {
    "style": "rounded,filled",
    "fillcolor": "#f6f8fc",
    "color": "#8a9bb8",
    "fontsize": "10",
    "labeljust": "l",
    "margin": "8",
}
GROUP_CLUSTER = {"style": "rounded,dashed", "color": "#9a9a9a", "fontsize": "10", "labeljust": "l", "margin": "8"}
NESTED_FILLS = ("#f6f8fc", "#eef2f9", "#e6ecf5", "#dfe6f1")

GRAPH_ATTR = {
    "fontname": "Helvetica",
    "fontsize": "11",
    "nodesep": "0.22",
    "ranksep": "0.28",
    "labeljust": "l",
    "margin": "0.1",
    "outputorder": "edgesfirst",
    "newrank": "true",
}
NODE_ATTR = {
    "shape": "box",
    "style": "rounded,filled",
    "fillcolor": "#f2f2f2",
    "fontname": "Helvetica",
    "fontsize": "10",
    "height": "0.3",
    "margin": "0.08,0.03",
    "penwidth": "0.8",
}
EDGE_ATTR = {"fontname": "Helvetica", "fontsize": "8", "arrowsize": "0.6"}

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}

#: Layout time grows faster than the drawing (graphviz-pure lays out 1,800 nodes in about
#: a second, 4,600 in about six, 24,000 in more than five minutes), so a drawing to render
#: may have at most this many nodes (--max-draw-nodes) and EDGES_PER_NODE times as many
#: edges, checked before the renderer starts. DOT output has no such limit.
MAX_DRAW_NODES = 5_000
EDGES_PER_NODE = 4
#: Seconds the renderer may run before it is stopped (--draw-timeout).
DRAW_TIMEOUT = 120.0


@dataclass
class DrawOptions:
    """What to draw. ``depth``: None draws every scope; N collapses scopes deeper than N."""

    depth: int | None = None
    expand: bool = False  # do not fold repeated block instances
    shapes: bool = False  # tensor shapes on edges
    rankdir: str = "TB"
    legend: bool = True
    title: bool = True
    max_nodes: int | None = MAX_DRAW_NODES  # None: no budget (DOT output)
    timeout: float | None = DRAW_TIMEOUT  # seconds for the renderer; None: no limit


# ---------------------------------------------------------------------------
# From the IR to drawn items


@dataclass
class _Aggregate:
    """A node of the drawing standing for many IR nodes: a collapsed scope or a fold."""

    id: str
    home: str  # scope path of the cluster it sits in
    label: str
    kind: str  # "collapsed" or "fold"
    nodes: set[int] = field(default_factory=set)
    tooltip: str = ""
    glue: set[int] = field(default_factory=set)  # a fold's nodes between its instances


def _parent(path: str, scopes: dict[str, Scope]) -> str:
    while "." in path:
        path = path.rsplit(".", 1)[0]
        if path in scopes:
            return path
    return ""


def _show_value(v, depth: int = 0) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):  # as the spec would write it, unprintable characters escaped
        return show_string(v)
    if isinstance(v, (list, tuple)):
        if depth >= SHOW_DEPTH and v:  # lists nest as deep as --max-nesting allows
            return "[...]"
        return "[" + ", ".join(_show_value(i, depth + 1) for i in v) + "]"
    return str(v)


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


def _same_args(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)


def _call(scope: Scope, outer: Scope | None = None) -> str:
    """``Block(a=1, b=2)``; inside an instance of the same block (recursion), only the
    arguments that changed, then "...": ``Fractal(C=2, ...)``."""
    items = list(scope.args.items())
    more = False
    if outer is not None and outer.block == scope.block and outer.args.keys() == scope.args.keys():
        changed = [(k, v) for k, v in items if not _equal(outer.args[k], v)]
        more = len(changed) < len(items)
        items = changed
    args = ", ".join(f"{k}={_show_value(v)}" for k, v in items)
    if more:
        args = f"{args}, ..." if args else "..."
    text = f"{scope.block}({args})"
    return text if len(text) <= 72 else text[:68] + "...)"


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _op_text(op: str, a: dict) -> str:
    """An op node's label, from the op table: its arguments worth showing, or its name."""
    label = OPS[op].draw.label
    return label(a) if label else op


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


class _Drawing:
    """The quotient of the IR that gets drawn: which IR node lands in which drawn item."""

    def __init__(self, ir: IR, opt: DrawOptions):
        self.ir = ir
        self.opt = opt
        self.scopes: dict[str, Scope] = ir.graph.get("scopes", {})
        self.parent = {p: _parent(p, self.scopes) for p in self.scopes}
        self.children: dict[str, list[str]] = {}
        for p in self.scopes:
            self.children.setdefault(self.parent[p], []).append(p)
        # nodes of every scope, nested scopes included
        self.members: dict[str, set[int]] = {p: set() for p in self.scopes}
        for n, d in ir.nodes(data=True):
            s = d.get("scope") or ""
            while s:
                if s in self.members:
                    self.members[s].add(n)
                s = self.parent.get(s, "") if s in self.scopes else _parent(s, self.scopes)
        self.aggregates: dict[str, _Aggregate] = {}
        self.item: dict[int, str] = {}  # IR node -> aggregate id (absent: drawn as itself)
        self.visible: set[str] = set()  # scopes drawn as clusters
        self._sig: dict[str, tuple] = {}
        self._walk("")

    def outer(self, path: str) -> Scope | None:
        """The nearest enclosing block instance."""
        p = self.parent.get(path, "")
        while p:
            if self.scopes[p].kind == "block":
                return self.scopes[p]
            p = self.parent[p]
        return None

    # -- deciding what is a cluster, what collapses and what folds

    def _depth(self, path: str) -> int:
        return path.count(".") + 1

    def _walk(self, root: str) -> None:
        # Depth first with a stack of its own: the module tree may nest as deep as
        # --max-depth allows, beyond Python's recursion limit.
        stack = [self._enter(root)]
        while stack:
            c = next(stack[-1], None)
            if c is None:
                stack.pop()
            elif self.opt.depth is not None and self._depth(c) > self.opt.depth:
                self._collapse(c)
            else:
                self.visible.add(c)
                stack.append(self._enter(c))

    def _enter(self, path: str):
        """Fold the runs among the children of ``path``; the other children, in order."""
        kids = self.children.get(path, [])
        folded: set[str] = set()
        if not self.opt.expand:
            for run, glue in self._runs(path, kids):
                folded.update(run)
                self._fold(path, run, glue)
        # not folded, and with an op of its own to draw (not a block that returns x)
        return iter([c for c in kids if c not in folded and self.members[c]])

    def _collapse(self, path: str) -> None:
        s = self.scopes[path]
        agg = _Aggregate(f"s{len(self.aggregates)}", self.parent[path], "", "collapsed", set(self.members[path]))
        head = _leaf(path)
        call = _call(s, self.outer(path)) if s.kind == "block" else ""
        kinds = self._inner_kinds(agg.nodes)
        lines = [head] + ([call] if call else []) + ([kinds] if kinds else [])
        agg.label = "\n".join(lines)
        agg.tooltip = f"{path}: {call or 'group'} ({len(agg.nodes)} ops)"
        self._add(agg)

    def _fold(self, parent: str, run: list[str], glue: set[int]) -> None:
        nodes = set(glue)
        for p in run:
            nodes |= self.members[p]
        first, last = _leaf(run[0]), _leaf(run[-1])
        m1, m2 = re.fullmatch(r"(.*?)(\d+)", first), re.fullmatch(r"(.*?)(\d+)", last)
        if m1 and m2 and m1.group(1) == m2.group(1):
            names = f"{first}..{m2.group(2)}"
        else:
            names = f"{first} .. {last}"
        s = self.scopes[run[0]]
        kinds = self._inner_kinds(nodes)
        lines = [names, _call(s, self.outer(run[0])), f"x{len(run)}" + (f" ({kinds})" if kinds else "")]
        agg = _Aggregate(f"f{len(self.aggregates)}", parent, "\n".join(lines), "fold", nodes, glue=glue)
        agg.tooltip = f"{run[0]} .. {run[-1]}: {len(run)} x {_call(s)}"
        self._add(agg)

    def _add(self, agg: _Aggregate) -> None:
        self.aggregates[agg.id] = agg
        for n in agg.nodes:
            self.item[n] = agg.id

    def _inner_kinds(self, nodes: set[int]) -> str:
        ops = {self.ir.nodes[n]["op"] for n in nodes}
        names = {"add": "residual", "concat": "concat", "gate": "gate", "join": "join", "slice": "split",
                 "mul": "product"}
        return ", ".join(names[o] for o in CONNECTIONS if o in ops)

    def _runs(self, parent: str, kids: list[str]):
        """Maximal runs (>= 2) of identical, chained sibling block instances, with their glue."""
        blocks = [k for k in kids if self.scopes[k].kind == "block"]
        runs = []
        i = 0
        while i < len(blocks):
            run, glue = [blocks[i]], set()
            j = i + 1
            while j < len(blocks) and self._same(blocks[j - 1], blocks[j]):
                g = self._chained(parent, blocks[j - 1], blocks[j])
                if g is None:
                    break
                glue |= g
                run.append(blocks[j])
                j += 1
            if len(run) >= 2:
                runs.append((run, glue))
            i = j if len(run) >= 2 else i + 1
        return runs

    def _same(self, a: str, b: str) -> bool:
        sa, sb = self.scopes[a], self.scopes[b]
        if sa.block != sb.block or _call(sa) != _call(sb) or not _same_args(sa.args, sb.args):
            return False
        return self._signature(a) == self._signature(b)

    def _signature(self, path: str):
        if path in self._sig:
            return self._sig[path]
        ir = self.ir
        nodes = sorted(self.members[path])
        index = {n: i for i, n in enumerate(nodes)}
        cut = len(path) + 1
        sig = []
        for n in nodes:
            d = ir.nodes[n]
            attrs = () if d["op"] == "slice" else tuple(sorted((k, repr(v)) for k, v in d["attrs"].items()))
            ins = tuple((index.get(u, -1), e["kind"], e["port"]) for u, _, e in ir.in_edges(n, data=True))
            sig.append((d["scope"][cut:], d.get("name"), d["op"], attrs, tuple(sorted(ins))))
        self._sig[path] = tuple(sig)
        return self._sig[path]

    def _chained(self, parent: str, a: str, b: str) -> set[int] | None:
        """Glue nodes between a and b if b is fed by a alone (directly or via one node of
        the parent scope that a feeds, like a dense block's concat); None otherwise."""
        ir = self.ir
        ma, mb = self.members[a], self.members[b]
        exits = {n for n in ma if any(v not in ma for v in ir.successors(n))}
        if len(exits) != 1:
            return None
        (e,) = exits
        preds = {u for n in mb for u in ir.predecessors(n) if u not in mb}
        if preds == {e}:
            return set()
        if len(preds) == 1:
            (g,) = preds
            if ir.nodes[g].get("scope", "") == parent and e in set(ir.predecessors(g)):
                return {g}
        return None


# ---------------------------------------------------------------------------
# Edges


def _draw_edges(ir: IR, topo_index: dict[int, int]):
    """(tail, head, kind, skip, port) for every IR edge, with dense buses recognised.

    A concat operand that is an ancestor of another operand of the same concat is the
    accumulated buffer of a dense block: its edge is a bus segment. A concat whose
    operands start with the operands of another concat is drawn as that concat ++ rest.
    """
    concat_operands: dict[tuple, int] = {}
    for n in sorted(ir.nodes, key=topo_index.__getitem__):
        if ir.nodes[n]["op"] == "concat":
            concat_operands.setdefault(tuple(ir.inputs(n)), n)
    out = []
    for v in sorted(ir.nodes, key=topo_index.__getitem__):
        edges = ir.in_edges_by_port(v)
        if not edges:
            continue
        operands = [u for u, _, _ in edges]
        kinds = [d["kind"] for _, _, d in edges]
        ports = [d["port"] for _, _, d in edges]
        if ir.nodes[v]["op"] == "concat" and len(operands) > 2:
            for k in range(len(operands) - 1, 1, -1):
                p = concat_operands.get(tuple(operands[:k]))
                if p is not None and p != v:
                    operands = [p] + operands[k:]
                    kinds = ["concat"] + kinds[k:]
                    ports = [0] + ports[k:]
                    break
        skips = _skips(ir, operands, topo_index) if len(operands) > 1 else [False] * len(operands)
        for u, kind, skip, port in zip(operands, kinds, skips, ports):
            if kind == "concat" and skip and ir.nodes[v]["op"] == "concat":
                kind = "bus"
            out.append((u, v, kind, skip, port))
    return out


def _skips(ir: IR, operands: list[int], topo_index: dict[int, int]) -> list[bool]:
    """Which operands are ancestors of another operand (they skip over its computation)."""
    result = []
    for i, u in enumerate(operands):
        lo = topo_index[u]
        targets = [w for j, w in enumerate(operands) if j != i and w != u and topo_index[w] > lo]
        found = False
        seen: set[int] = set()
        stack = list(targets)
        while stack and not found:
            w = stack.pop()
            for x in ir.predecessors(w):
                if x == u:
                    found = True
                    break
                if x not in seen and topo_index[x] > lo:
                    seen.add(x)
                    stack.append(x)
        result.append(found)
    return result


# ---------------------------------------------------------------------------
# DOT


def build_dot(ir: IR, options: DrawOptions | None = None, **kw) -> graphviz.Digraph:
    """The diagram of ``ir`` as a ``graphviz.Digraph`` (``.source`` is the DOT text)."""
    opt = options or DrawOptions(**kw)
    if opt.rankdir not in ("TB", "LR", "BT", "RL"):
        raise UsageError(f"rankdir must be TB or LR, got '{opt.rankdir}'")
    if opt.depth is not None and opt.depth < 0:
        raise UsageError("--depth must be 0 or more")
    dr = _Drawing(ir, opt)
    nodes = sum(1 for n in ir.nodes if n not in dr.item) + len(dr.aggregates)
    _budget(opt, nodes, "nodes", opt.max_nodes)
    topo = ir.topo()
    topo_index = {n: i for i, n in enumerate(topo)}
    edges = _draw_edges(ir, topo_index)

    def item(n: int) -> str:
        return dr.item.get(n) or f"n{n}"

    taps = {v for _, v, k, _, _ in edges if k == "bus"}

    # Nodes, grouped by the cluster they sit in.
    homes: dict[str, list[tuple[str, dict]]] = {}
    for n in topo:
        if n in dr.item:
            continue
        home = ir.nodes[n].get("scope") or ""
        while home and home not in dr.visible:  # a path that is no scope of its own
            home = _parent(home, dr.scopes)
        homes.setdefault(home, []).append((f"n{n}", _node_attrs(ir, n, n in taps)))
    for agg in dr.aggregates.values():
        attrs = {"label": agg.label, "tooltip": agg.tooltip, "class": agg.kind}
        if agg.kind == "fold":
            attrs.update(shape="box3d", style="filled", fillcolor="#fdf3d7", color="#a08a4c", penwidth="1.2")
        else:
            attrs.update(style="rounded,filled,bold", fillcolor="#e4eaf6", color="#5a6f96")
        homes.setdefault(agg.home, []).append((agg.id, attrs))

    net = ir.graph.get("network", "network")
    g = graphviz.Digraph(
        name=net,
        graph_attr={**GRAPH_ATTR, "rankdir": opt.rankdir},
        node_attr=NODE_ATTR,
        edge_attr=EDGE_ATTR,
    )
    if opt.title:
        params = ir.param_count()
        g.attr(
            label=f"{net}: {ir.number_of_nodes():,} IR nodes, {params:,} parameters",
            labelloc="t",
            labeljust="c",
            fontsize="14",
        )

    # Edges between drawn items, merged.
    # A fold of dense layers swallows the bus taps between them; the bus itself runs on,
    # past the fold, to the first tap after it.
    bus_next = {u: v for u, v, k, _, _ in edges if k == "bus"}
    glue_of = {n: agg.id for agg in dr.aggregates.values() for n in agg.glue}
    merged: dict[tuple[str, str], dict] = {}
    for u, v, kind, skip, port in edges:
        a, b = item(u), item(v)
        if a == b:
            continue
        if kind == "bus" and u in glue_of:
            continue  # drawn as part of the bus that enters the fold
        if kind == "bus" and v in glue_of:
            fold = glue_of[v]
            while glue_of.get(v) == fold and v in bus_next:
                v = bus_next[v]
            b = item(v)
            if a == b:
                continue
        key = (a, b)
        e = merged.get(key)
        if e is None:
            merged[key] = {"kinds": {kind}, "skip": skip, "u": u, "v": v, "port": port}
        else:
            e["kinds"].add(kind)
            e["skip"] = e["skip"] and skip
    _budget(opt, len(merged), "edges", None if opt.max_nodes is None else EDGES_PER_NODE * opt.max_nodes)
    kinds_drawn: set[str] = set()
    plain, skipping = [], []
    bus_members: set[str] = set()
    for (a, b), e in merged.items():
        kinds = e["kinds"]
        if b in dr.aggregates and not e["skip"]:
            kind = "sequence"  # how the inside of a collapsed node uses its input is not drawn
        else:
            kind = next(k for k in PRIORITY if k in kinds)
        kinds_drawn.add(kind)
        attrs = dict(EDGE_STYLE[kind])
        attrs["class"] = kind + (" skip" if e["skip"] else "")
        if kind == "bus":
            bus_members.update((a, b))
            attrs["weight"] = "20"
        elif e["skip"]:
            attrs["weight"] = "0"
        else:
            attrs["weight"] = "4"
        if opt.shapes:
            shape = ir.nodes[e["u"]]["shape"]
            attrs["label"] = _shape_text(shape)
        if kind == "gate" and b not in dr.aggregates:
            attrs["headlabel"] = {0: "H", 1: "x", 2: "T"}.get(e["port"], "")
            attrs["labelfontcolor"] = EDGE_STYLE["gate"]["color"]
        (skipping if e["skip"] else plain).append((a, b, attrs))

    # Dense buffers: keep every bus on one line.
    def _with_group(name: str, attrs: dict) -> dict:
        if name in bus_members:
            attrs = {**attrs, "group": "bus"}
        return attrs

    def cluster(c: str) -> graphviz.Digraph:
        s = dr.scopes[c]
        sub = graphviz.Digraph(name=f"cluster_{c}")
        depth = c.count(".")
        if s.kind == "block":
            style = {**BLOCK_CLUSTER, "fillcolor": NESTED_FILLS[min(depth, len(NESTED_FILLS) - 1)]}
            attrs = {
                "label": f"{_leaf(c)}: {_call(s, dr.outer(c))}",
                "tooltip": f"{c}: {_call(s)}",
                **style,
                "class": "block",
            }
        else:
            attrs = {"label": _leaf(c), "tooltip": c, **GROUP_CLUSTER, "class": "group"}
        sub.attr(**_quoted(attrs))
        return sub

    def enter(container: graphviz.Digraph, path: str):
        for name, attrs in homes.get(path, []):
            container.node(name, **_quoted(_with_group(name, attrs)))
        return iter([c for c in dr.children.get(path, []) if c in dr.visible])

    def emit(root: graphviz.Digraph) -> None:
        """Nodes, then clusters inside clusters, written straight into the root's body as
        ``Digraph.subgraph`` would indent them. Not recursion and not nested subgraph
        objects (which copy every line once per level): the module tree may nest as deep
        as --max-depth allows."""
        stack = [enter(root, "")]
        while stack:
            c = next(stack[-1], None)
            if c is None:
                stack.pop()
                if stack:
                    root.body.append("\t" * len(stack) + "}\n")
                continue
            sub = cluster(c)
            kids = enter(sub, c)
            lines = list(sub.__iter__(subgraph=True))  # header, attributes, nodes, "}"
            pad = "\t" * len(stack)
            root.body.extend(pad + line for line in lines[:-1])
            stack.append(kids)

    if opt.legend:
        _legend(g, [k for k in PRIORITY[::-1] if k in kinds_drawn], dr.aggregates)
    emit(g)
    for a, b, attrs in plain + skipping:  # skips last: drawn on top of the main path
        g.edge(a, b, **_quoted(attrs))
    return g


def _budget(opt: DrawOptions, count: int, what: str, limit: int | None) -> None:
    if limit is None or count <= limit:
        return
    ways = ["collapse deep blocks with --depth N"]
    if opt.expand:
        ways.insert(0, "fold repeated blocks (leave out --expand)")
    raise UdnetError(
        f"the drawing has {count:,} {what}, more than the limit of {limit:,} "
        + ("(--max-draw-nodes)" if what == "nodes" else f"({EDGES_PER_NODE} per node of --max-draw-nodes)")
        + "; Graphviz would take very long to lay it out",
        hint=f"{', or '.join(ways)}; or raise the limit with --max-draw-nodes N "
        "(and --draw-timeout SECONDS); -o FILE.dot writes the DOT source whatever its size",
    )


_TEXT_ATTRS = ("label", "tooltip", "headlabel")


def _quoted(attrs: dict) -> dict:
    """Text from a spec (labels, string arguments) reaches DOT verbatim: backslashes and
    quotes escaped, never read as an HTML label or an escString (\\l, \\N); every
    character that is not printable but the line breaks udnet puts in labels shown
    escaped (a NUL would end the string inside Graphviz and re-pair the quotes; control
    characters are not allowed in SVG)."""
    out = dict(attrs)
    for key in _TEXT_ATTRS:
        v = out.get(key)
        if isinstance(v, str):
            out[key] = graphviz.nohtml(_printable(v).replace("\\", "\\\\").replace('"', '\\"'))
    return out


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii") for c in text)


def _node_attrs(ir: IR, n: int, tap: bool) -> dict:
    d = ir.nodes[n]
    op = d["op"]
    path = ir.path(n)
    tip = f"{path}: {op} -> [{', '.join(map(str, d['shape']))}]"
    if d.get("params"):
        tip += f", {d['params']:,} params"
    attrs: dict[str, str] = {"tooltip": tip, "class": f"op {op}"}
    if op in ("input", "output"):
        attrs.update(
            label=f"{op}\n{_shape_text(d['shape'])}",
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


def _legend(g: graphviz.Digraph, kinds: list[str], aggregates: dict) -> None:
    """One HTML-table node: a line drawn in each edge style present, and what it means.

    A single node keeps the legend out of the ranks of the network, whatever its size."""
    rows = ['<tr><td colspan="2" align="left"><b>Legend</b></td></tr>']
    for k in kinds:
        st = EDGE_STYLE[k]
        if k == "bus":
            sample = f'<td width="40" height="7" fixedsize="true" bgcolor="{st["color"]}"></td>'
        else:
            width = max(1, round(float(st["penwidth"])))
            dash = f' style="{st["style"]}"' if st.get("style") in ("dashed", "dotted") else ""
            cell = 'width="40" height="8" fixedsize="true" sides="b"'
            sample = f'<td {cell} border="{width}" color="{st["color"]}"{dash}></td>'
        rows.append(f'<tr>{sample}<td align="left">{LEGEND[k]}</td></tr>')
    if any(x.kind == "fold" for x in aggregates.values()):
        rows.append(
            '<tr><td width="40" height="14" fixedsize="true" border="1" color="#a08a4c" bgcolor="#fdf3d7">xN</td>'
            '<td align="left">N identical chained blocks, folded</td></tr>'
        )
    if any(x.kind == "collapsed" for x in aggregates.values()):
        rows.append(
            '<tr><td width="40" height="12" fixedsize="true" border="2" color="#5a6f96" bgcolor="#e4eaf6"></td>'
            '<td align="left">block collapsed (--depth)</td></tr>'
        )
    table = (
        '<<table border="1" cellborder="0" cellspacing="3" cellpadding="1" style="rounded" color="#9a9a9a">'
        + "".join(rows)
        + "</table>>"
    )
    g.node("legend", label=table, shape="plain", style="", fontsize="9", **{"class": "legend"})


def to_dot(ir: IR, **kw) -> str:
    """The DOT source (no layout, so no --max-draw-nodes budget unless ``max_nodes`` is given)."""
    return build_dot(ir, DrawOptions(**{"max_nodes": None, **kw})).source


# ---------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Renderer:
    name: str  # "dot" (system Graphviz) or "graphviz-pure"
    path: str
    formats: tuple[str, ...]


def _graphviz_pure() -> str | None:
    exe = "graphviz-pure.exe" if os.name == "nt" else "graphviz-pure"
    # The one pip installed beside this interpreter (our own dependency, even when that bin/
    # is not on PATH) comes before any other on PATH.
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = os.path.join(d, exe)
        if d and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which(exe)


def find_renderer() -> Renderer | None:
    """The system ``dot`` when on PATH, else the ``graphviz-pure`` dependency, else None."""
    dot = shutil.which("dot")
    if dot:
        return Renderer("dot", dot, ("svg", "png", "pdf"))
    pure = _graphviz_pure()
    if pure:
        return Renderer("graphviz-pure", pure, ("svg", "png", "pdf"))  # pdf: via svgpdf
    return None


def render(source: str, fmt: str, renderer: Renderer | None = None, timeout: float | None = DRAW_TIMEOUT) -> bytes:
    """Lay out and render DOT ``source`` to ``fmt`` (svg, png or pdf) and return the bytes.
    A renderer still running after ``timeout`` seconds is stopped, and that is an error."""
    if fmt == "dot":
        return source.encode("utf-8")
    r = renderer or plan(f"out.{fmt}")[1]
    native = fmt
    if fmt == "pdf" and r.name == "graphviz-pure":
        native = "svg"  # graphviz-pure writes no PDF; udnet converts its SVG (udnet.backends.svgpdf)
    code, out, err = _run([r.path, f"-T{native}"], source.encode("utf-8"), timeout, r.name)
    if code != 0 or not out:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise UdnetError(f"{r.name} failed (exit {code})" + (f": {lines[-1]}" if lines else ""))
    if native != fmt:
        from udnet.backends.svgpdf import svg_to_pdf

        return svg_to_pdf(out)
    return out


def _run(cmd: list[str], data: bytes, timeout: float | None, name: str) -> tuple[int, bytes, bytes]:
    """Run the renderer in a process group of its own; past ``timeout`` seconds (or on
    Ctrl-C) the whole group is killed and reaped, so no renderer outlives udnet."""
    group = os.name == "posix"
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=group,
        )
    except OSError as e:
        raise UsageError(f"cannot run {cmd[0]}: {e.strerror}") from None
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, group)
        raise UdnetError(
            f"{name} did not finish the drawing within {timeout:g} s (--draw-timeout) and was stopped",
            hint="draw less: fold repeated blocks (leave out --expand) or collapse deep blocks with --depth N; "
            "or allow more time with --draw-timeout SECONDS",
        ) from None
    except BaseException:
        _kill(proc, group)
        raise
    return proc.returncode, out, err


def _kill(proc: subprocess.Popen, group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass  # gone already
    for f in (proc.stdin, proc.stdout, proc.stderr):
        try:
            f.close()
        except OSError:
            pass
    proc.wait()


def output_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageError(
            f"cannot tell the output format of '{show_path(path)}'",
            hint="give a file ending in .svg, .png, .pdf or .dot",
        )
    return FORMATS[ext]


def plan(path: str) -> tuple[str, Renderer | None]:
    """The format of ``path`` and the renderer that will write it; usage errors up front,
    before any compiling: an unknown extension, no renderer, a format it cannot write."""
    fmt = output_format(path)
    if fmt == "dot":
        return fmt, None
    r = find_renderer()
    if r is None:
        raise UsageError(
            "no Graphviz renderer found: neither 'dot' on PATH nor the 'graphviz-pure' package",
            hint="reinstall udnet (pip install -e .) to get graphviz-pure, install Graphviz, or write .dot",
        )
    if fmt not in r.formats:
        raise UsageError(
            f"{r.name} cannot write {fmt.upper()}",
            hint="install the system Graphviz (apt-get install graphviz) for PDF, or write .svg or .png",
        )
    return fmt, r


def draw(ir: IR, path: str, options: DrawOptions | None = None, **kw) -> Renderer | None:
    """Draw ``ir`` into ``path`` (format from the extension), atomically. Returns the renderer used."""
    from udnet.output import write_atomic

    fmt, r = plan(path)
    opt = options or DrawOptions(**kw)
    if fmt == "dot":  # no layout: no budget
        opt = replace(opt, max_nodes=None)
    source = build_dot(ir, opt).source
    write_atomic(path, source if fmt == "dot" else render(source, fmt, r, opt.timeout))
    return r


def to_svg(ir: IR, **kw) -> str:
    """The diagram as SVG text (what Jupyter shows for an IR)."""
    opt = DrawOptions(**kw)
    return render(build_dot(ir, opt).source, "svg", timeout=opt.timeout).decode("utf-8")
