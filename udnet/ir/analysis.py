"""Analyses over the IR shared by passes and backends."""

from __future__ import annotations

from udnet.ir.graph import IR


def join_columns(ir: IR) -> dict[int, list[int]]:
    """The FractalNet column of every join input, numbered 1 (shallowest) upwards.

    Inside a flat join, inputs are columns counted from the right: ``join(deep, ..., shallow)``.
    A join that feeds (without passing another join) into inputs of column c of later
    joins sits on the path of column c, so its own deepest input is column c. This makes
    the columns global: global drop-path picks one column number for the whole network.
    """
    order = ir.topo()
    joins = [n for n in order if ir.nodes[n]["op"] == "join"]
    result: dict[int, list[int]] = {}
    for j in reversed(joins):
        n = len(ir.inputs(j))
        deepest = max((_downstream_columns(ir, j, result) or [n]) + [n])
        result[j] = [deepest - port for port in range(n)]
    return result


def _downstream_columns(ir: IR, start: int, result: dict[int, list[int]]) -> list[int]:
    """Columns of the later join inputs reached from ``start`` without crossing a join."""
    seen, stack, cols = {start}, [start], []
    while stack:
        u = stack.pop()
        for _, v, d in ir.out_edges(u, data=True):
            if ir.nodes[v]["op"] == "join":
                if v in result:
                    cols.append(result[v][d["port"]])
                continue
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return cols
