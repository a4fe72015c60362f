"""The DOT source of a drawing, built with the ``graphviz`` package (no layout here)."""

from __future__ import annotations

import graphviz

from udnet.errors import UsageError
from udnet.ir.graph import IR, leaf

from .edges import drawn_edges
from .columns import columns_label
from .labels import Html, call_text, node_attrs, quoted, shape_text
from .options import DrawOptions, check_budget
from .scopes import Drawing
from .style import (
    BLOCK_CLUSTER,
    EDGE_ATTR,
    EDGE_STYLE,
    GRAPH_ATTR,
    GROUP_CLUSTER,
    NESTED_FILLS,
    NODE_ATTR,
    PRIORITY,
    legend_node,
)


def build_dot(ir: IR, options: DrawOptions | None = None, **kw) -> graphviz.Digraph:
    """The diagram of ``ir`` as a ``graphviz.Digraph`` (``.source`` is the DOT text)."""
    opt = options or DrawOptions(**kw)
    if opt.rankdir not in ("TB", "LR", "BT", "RL"):
        raise UsageError(f"rankdir must be TB or LR, got '{opt.rankdir}'")
    if opt.depth is not None and opt.depth < 0:
        raise UsageError("--depth must be 0 or more")
    dr = Drawing(ir, opt)
    nodes = sum(1 for n in ir.nodes if n not in dr.item) + len(dr.aggregates)
    check_budget(opt, nodes, "nodes")
    topo = ir.topo()
    topo_index = {n: i for i, n in enumerate(topo)}
    edges = drawn_edges(ir, topo_index)

    def item(n: int) -> str:
        return dr.item.get(n) or f"n{n}"

    taps = {v for _, v, k, _, _ in edges if k == "bus"}

    # Nodes, grouped by the cluster they sit in.
    homes: dict[str, list[tuple[str, dict]]] = {}
    for n in topo:
        if n in dr.item:
            continue
        home = ir.nodes[n].get("scope") or ""
        while home and home not in dr.visible:  # the nearest scope drawn as a cluster
            home = dr.tree.parent[home]
        homes.setdefault(home, []).append((f"n{n}", node_attrs(ir, n, n in taps)))
    for agg in dr.aggregates.values():
        attrs = {"label": agg.label, "tooltip": agg.tooltip, "class": agg.kind}
        if agg.kind == "fold":
            attrs.update(shape="box3d", style="filled", fillcolor="#fdf3d7", color="#a08a4c", penwidth="1.2")
        elif agg.kind == "columns":
            attrs.update(shape="plain", style="", label=Html(columns_label(ir, agg.layout, agg.id, agg.compact)))
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
            label=f"{net}{f' ({opt.stage})' if opt.stage else ''}: {ir.number_of_nodes():,} IR nodes, "
            f"{params:,} parameters",
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
    check_budget(opt, len(merged), "edges")
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
            attrs["label"] = shape_text(shape)
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
        depth = dr.tree.depth[c] - 1
        if s.kind == "block":
            style = {**BLOCK_CLUSTER, "fillcolor": NESTED_FILLS[min(depth, len(NESTED_FILLS) - 1)]}
            attrs = {
                "label": f"{leaf(c)}: {call_text(s, dr.outer(c))}",
                "tooltip": f"{c}: {call_text(s)}",
                **style,
                "class": "block",
            }
        else:
            attrs = {"label": leaf(c), "tooltip": c, **GROUP_CLUSTER, "class": "group"}
        sub.attr(**quoted(attrs))
        return sub

    def enter(container: graphviz.Digraph, path: str):
        for name, attrs in homes.get(path, []):
            container.node(name, **quoted(_with_group(name, attrs)))
        return iter([c for c in dr.tree.children[path] if c in dr.visible])

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
        shared = bool(ir.graph.get("buffers"))
        legend_node(g, [k for k in PRIORITY[::-1] if k in kinds_drawn], dr.aggregates, shared)
    emit(g)
    outputs = [f"n{n}" for n in _outputs(ir, topo)]
    if len(outputs) > 1:  # several outputs (an FPN's levels): side by side on the last rank, in order
        g.body.append("\t{rank=sink; " + " ".join(outputs) + "}\n")
        g.body.append("\t" + " -> ".join(outputs) + " [style=invis]\n")
    for a, b, attrs in plain + skipping:  # skips last: drawn on top of the main path
        g.edge(a, b, **quoted(attrs))
    return g


def to_dot(ir: IR, **kw) -> str:
    """The DOT source (no layout, so no --max-draw-nodes budget unless ``max_nodes`` is given)."""
    return build_dot(ir, DrawOptions(**{"max_nodes": None, **kw})).source


def _outputs(ir: IR, topo: list[int]) -> list[int]:
    """The output nodes in the network's order (``graph["outputs"]``), then any others."""
    listed = [n for n in ir.graph.get("outputs", []) if n in ir]
    return listed + [n for n in topo if ir.nodes[n]["op"] == "output" and n not in listed]
