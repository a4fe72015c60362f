"""``verify(ir)``: every invariant of the IR, checked after elaboration and after each pass.

A violation is a bug in udnet (a pass or the elaborator), not a user mistake, so it
raises ``VerifyError`` naming the stage that broke it.
"""

from __future__ import annotations

import networkx as nx

from udnet import ops as opdefs
from udnet.ir.buffers import check as check_buffers
from udnet.ir.graph import IR

EDGE_KINDS = {"sequence"} | set(opdefs.CONNECTION_KINDS.values())
_ARITY = {"input": (0, 0), "output": (1, 1), "gate": (3, 3), "slice": (1, 1), "mul": (2, 2)}


class VerifyError(AssertionError):
    pass


def verify(ir: IR, stage: str = "elaboration") -> None:
    def fail(msg: str) -> None:
        raise VerifyError(f"IR invalid after {stage}: {msg}")

    if not nx.is_directed_acyclic_graph(ir):
        fail(f"cycle through {nx.find_cycle(ir)[:4]}")
    inputs = [n for n, d in ir.nodes(data=True) if d["op"] == "input"]
    outputs = [n for n, d in ir.nodes(data=True) if d["op"] == "output"]
    if inputs != [ir.graph.get("input")]:
        fail(f"expected one input node, got {inputs}")
    # Output ports: one unnamed output, or one or more named ones, in a fixed order.
    order = ir.graph.get("outputs") or []
    if not order or sorted(outputs) != sorted(order) or len(set(order)) != len(order):
        fail(f"the output nodes {outputs} are not the graph's outputs {order}")
    names = [ir.nodes[n]["attrs"].get("name") for n in order]
    if names != [None] and (None in names or len(set(names)) != len(names)):
        fail(f"outputs must be one unnamed output or uniquely named ones, got {names}")
    for n in order:
        if ir.out_degree(n):
            fail(f"the output node {names[order.index(n)]!r} has consumers")
    for n, d in ir.nodes(data=True):
        op = d["op"]
        edges = ir.in_edges_by_port(n)
        ports = [e[2]["port"] for e in edges]
        if ports != list(range(len(edges))):
            fail(f"node {ir.path(n)} has ports {ports}")
        low, high = _ARITY.get(op, (1, None) if op in ("add", "concat", "join") else (1, 1))
        if op == "add":
            low = 2
        if len(edges) < low or (high is not None and len(edges) > high):
            fail(f"node {ir.path(n)} ({op}) has {len(edges)} inputs")
        want_kind = opdefs.CONNECTION_KINDS.get(op, "sequence")
        for u, _, e in edges:
            if e["kind"] != want_kind or e["kind"] not in EDGE_KINDS:
                fail(f"edge {ir.path(u)} -> {ir.path(n)} has kind {e['kind']}, expected {want_kind}")
        shapes = [ir.nodes[u]["shape"] for u, _, _ in edges]
        try:
            expect = _infer(ir, n, d, shapes, edges)
        except opdefs.ShapeError as err:
            fail(f"node {ir.path(n)}: {err.message}")
        if expect != d["shape"]:
            fail(f"node {ir.path(n)} has shape {d['shape']}, its inputs give {expect}")
        spec = opdefs.OPS.get(op)
        params = spec.params(shapes[0], d["attrs"]) if spec else 0
        if params != d["params"]:
            fail(f"node {ir.path(n)} records {d['params']} parameters, its shapes give {params}")
    problem = _scope_problem(ir) or check_buffers(ir)  # buffers: share-concat's plan, where it ran
    if problem:
        fail(problem)


def _scope_problem(ir: IR) -> str | None:
    """The scopes form a tree, as ``ScopeTree`` reads them: each under its own path, after
    the scope its path lies in; every node in a listed scope or in the network ("")."""
    listed = {""}
    for path, scope in ir.graph["scopes"].items():
        if scope.path != path:
            return f"the scope {path!r} records the path {scope.path!r}"
        if path.rpartition(".")[0] not in listed:
            return f"the scope {path!r} is not listed after the scope around it"
        listed.add(path)
    for n, d in ir.nodes(data=True):
        if d["scope"] not in listed:
            return f"node {ir.path(n)} is in the scope {d['scope']!r}, which is not listed"
    return None


def _infer(ir: IR, n: int, d: dict, shapes: list, edges: list) -> tuple:
    op = d["op"]
    if op == "input":
        return d["shape"]
    if op == "output":
        return shapes[0]
    if op in opdefs.OPS:
        return opdefs.infer_op(opdefs.OPS[op], shapes[0], d["attrs"])
    if op == "add":
        return opdefs.infer_add(shapes)
    if op == "concat":
        lo = 0
        for (u, _, e), s in zip(edges, shapes):
            if e["channels"] != (lo, lo + s[0]):
                raise opdefs.ShapeError(f"concat operand {ir.path(u)} lands at {e['channels']}, not {(lo, lo + s[0])}")
            lo += s[0]
        return opdefs.infer_concat(shapes)
    if op == "mul":
        return opdefs.infer_mul(shapes)
    if op in ("gate", "join"):
        return opdefs.infer_same(op, shapes)
    if op == "slice":
        lo, hi = d["attrs"]["lo"], d["attrs"]["hi"]
        if not 0 <= lo <= hi <= shapes[0][0] or edges[0][2]["channels"] != (lo, hi):
            raise opdefs.ShapeError(f"slice [{lo}:{hi}] of {shapes[0][0]} channels")
        return opdefs.infer_slice(shapes[0], lo, hi)
    raise opdefs.ShapeError(f"unknown op {op}")
