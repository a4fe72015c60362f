"""The edges to draw, one per IR edge, with dense buffers recognised as buses."""

from __future__ import annotations

from udnet.ir.graph import IR


def drawn_edges(ir: IR, topo_index: dict[int, int]):
    """(tail, head, kind, skip, port) for every IR edge, with dense buses recognised.

    A concat operand that is an ancestor of another operand of the same concat is the
    accumulated buffer of a dense block: its edge is a bus segment. A concat whose
    operands start with the operands of another concat is drawn as that concat ++ rest.
    After the share-concat pass, every edge between the nodes of one planned buffer (its
    base, its links and the slices that drop a link's head) is a bus segment too. A sum
    of an upsampled operand and others (an FPN merge) has a top-down edge from the former
    and lateral edges from the latter.
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
        if ir.nodes[v]["op"] == "add" and not any(skips):
            kinds = _top_down(ir, operands, kinds)
        for u, kind, skip, port in zip(operands, kinds, skips, ports):
            if kind == "concat" and skip and ir.nodes[v]["op"] == "concat":
                kind = "bus"
            out.append((u, v, kind, skip, port))
    buffer_of = _buffer_nodes(ir)
    if buffer_of:
        out = [
            (u, v, "bus" if buffer_of.get(u, -1) == buffer_of.get(v, -2) else kind, skip, port)
            for u, v, kind, skip, port in out
        ]
    return out


UPSAMPLING = ("upsample", "conv_transpose")


def _top_down(ir: IR, operands: list[int], kinds: list[str]) -> list[str]:
    """The kinds of a sum's operand edges: top-down and lateral when some operands, not all,
    are upsampled."""
    up = [ir.nodes[u]["op"] in UPSAMPLING for u in operands]
    if not any(up) or all(up):
        return kinds
    return ["topdown" if is_up else "lateral" for is_up in up]


def _buffer_nodes(ir: IR) -> dict[int, int]:
    """Node -> id of the shared buffer it is part of (``share_concat``'s plan)."""
    of = {}
    for b in ir.graph.get("buffers", []):
        of[b.base] = b.id
        of.update((link, b.id) for link in b.links)
    for n, d in ir.nodes(data=True):
        if d.get("tail_of") is not None:
            of[n] = d["tail_of"]
    return of


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
