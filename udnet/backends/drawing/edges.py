"""The edges to draw, one per IR edge, with dense buffers recognised as buses."""

from __future__ import annotations

from udnet.ir.graph import IR


def drawn_edges(ir: IR, topo_index: dict[int, int]):
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
