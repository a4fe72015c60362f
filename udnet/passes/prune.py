"""Dead-path pruning and compile-time specialisation.

Removes every node that cannot reach an output, folds identities, single-input
joins and zero-width concat operands, and (with ``--fractal-column N``) keeps only
column N at every FractalNet join, so the other columns die. User code that was
dead before any specialisation is reported as a warning at its line:col.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from udnet.errors import UsageError
from udnet.ir.analysis import ScopeTree, join_columns
from udnet.ir.graph import IR
from udnet.passes.manager import Options, Report, Warning_


def run(ir: IR, options: Options) -> Report:
    report = Report("prune")
    dead = _unreachable(ir)
    report.warnings = _dead_code_warnings(ir, dead)
    removed = len(dead)
    ir.remove_nodes_from(dead)
    report.warnings += _single_join_warnings(ir)
    if options.fractal_column is not None:
        _keep_column(ir, options.fractal_column)
    folded = _fold(ir)
    late = _unreachable(ir)
    ir.remove_nodes_from(late)
    removed += len(late)
    _drop_empty_scopes(ir)
    report.lines.append(f"removed {removed} node(s) that cannot reach the output, folded {folded}")
    if options.fractal_column is not None:
        report.lines.append(f"specialised to FractalNet column {options.fractal_column}")
    return report


def params_after(ir: IR) -> int:
    """The parameter count of ``ir`` after this pass (``ir`` is left unchanged). Cheap when
    nothing dies: every node reaches the output and no concat operand is zero-wide."""
    zero_wide = any(d["op"] == "concat" and any(e[2]["channels"][0] == e[2]["channels"][1]
                                                for e in ir.in_edges_by_port(n)) for n, d in ir.nodes(data=True))
    if not zero_wide and not _unreachable(ir):
        return ir.param_count()
    import copy

    pruned = copy.deepcopy(ir)
    run(pruned, Options())
    return pruned.param_count()


def _live(ir: IR) -> set[int]:
    """Every node some output reads, the outputs included: each output is live."""
    live = set(ir.graph["outputs"])
    for out in ir.graph["outputs"]:
        live |= nx.ancestors(ir, out)
    return live


def _unreachable(ir: IR) -> list[int]:
    live = _live(ir)
    return [n for n in ir.nodes if n not in live and n != ir.input_node]


def _dead_code_warnings(ir: IR, dead: list[int]) -> list[Warning_]:
    """One warning per dead statement (an unused binding, a dead branch): the dead nodes of
    one connected piece that were written on one line, under one caret."""
    groups: dict = {}
    pieces = nx.weakly_connected_components(ir.subgraph(dead))
    for piece, nodes in enumerate(pieces):
        for n in nodes:
            span = ir.nodes[n]["span"]
            if span is not None:
                groups.setdefault((piece, span.source.name, span.line), []).append(n)
    out = []
    for nodes in groups.values():
        spans = [ir.nodes[n]["span"] for n in nodes]
        first = min(spans, key=lambda s: (s.line, s.col))
        last = max(spans, key=lambda s: (s.end_line, s.end_col))
        span = replace(first, end_line=last.end_line, end_col=last.end_col)
        var = next((ir.nodes[n].get("var") for n in sorted(nodes, reverse=True) if ir.nodes[n].get("var")), None)
        what = f"'{var}' is computed but never reaches the network output" if var else (
            "this computation never reaches the network output"
        )
        out.append(Warning_(span, f"{what}; it was pruned"))
    out.sort(key=lambda w: (w.span.line, w.span.col))
    # Report the outermost construct only: drop spans nested in an earlier reported one.
    kept: list[Warning_] = []
    for w in out:
        if not any(_inside(w.span, k.span) for k in kept):
            kept.append(w)
    return kept


def _single_join_warnings(ir: IR) -> list[Warning_]:
    """A join of one tensor is that tensor, so folding it changes nothing, but any
    drop-path it was given silently does nothing: say so where it was written."""
    out = []
    for n, d in ir.nodes(data=True):
        if d["op"] != "join" or ir.in_degree(n) != 1 or d["span"] is None:
            continue
        rates = [k for k in ("drop_local", "drop_global") if d["attrs"].get(k)]
        what = f"its {' and '.join(rates)} drop{'s' if len(rates) == 1 else ''} nothing" if rates else "it is its input"
        out.append(Warning_(d["span"], f"this join has a single input, so {what}; it was folded away "
                                       "(drop_path(p) drops a residual branch per sample)"))
    return sorted(out, key=lambda w: (w.span.line, w.span.col))


def _inside(a, b) -> bool:
    return (b.line, b.col) <= (a.line, a.col) and (a.end_line, a.end_col) <= (b.end_line, b.end_col)


def _keep_column(ir: IR, column: int) -> None:
    cols = join_columns(ir)
    if not cols:
        raise UsageError(f"--fractal-column {column}: the network has no fractal joins")
    top = max(max(c) for c in cols.values())
    if not 1 <= column <= top:
        raise UsageError(f"--fractal-column {column}: columns are numbered 1 (shallowest) to {top}")
    # Every join is live here (run removed the dead code first). Each keeps one input,
    # so _fold then removes it; a join off column N's path dies with the other columns.
    for j, c in cols.items():
        if column not in c:
            continue
        keep = c.index(column)
        for u, v, k, d in list(ir.in_edges(j, keys=True, data=True)):
            if d["port"] != keep:
                ir.remove_edge(u, v, k)


def _fold(ir: IR) -> int:
    """Fold identities, single-input joins/adds/concats and zero-width concat operands."""
    folded = 0
    for n in list(ir.topo()):  # only n itself is ever removed, so every later n is still there
        d = ir.nodes[n]
        if d["op"] == "concat":
            edges = ir.in_edges_by_port(n)
            if any(e[2]["channels"][0] == e[2]["channels"][1] for e in edges) and len(edges) > 1:
                keep = [e for e in edges if e[2]["channels"][0] != e[2]["channels"][1]] or edges[:1]
                for u, v, k, _ in list(ir.in_edges(n, keys=True, data=True)):
                    ir.remove_edge(u, v, k)
                lo = 0
                for port, (u, _, _) in enumerate(keep):
                    width = ir.nodes[u]["shape"][0]
                    ir.add_edge(u, n, port=port, kind="concat", channels=(lo, lo + width))
                    lo += width
                folded += 1
        single = d["op"] in ("identity", "join", "concat") and ir.in_degree(n) == 1
        if single:
            (src,) = ir.inputs(n)
            for _, v, k, e in list(ir.out_edges(n, keys=True, data=True)):
                ir.add_edge(src, v, **e)
                ir.remove_edge(n, v, k)
            _repoint_scopes(ir, n, src)
            ir.remove_node(n)
            folded += 1
    return folded


def _repoint_scopes(ir: IR, old: int, new: int) -> None:
    for scope in ir.graph["scopes"].values():
        if scope.input == old:
            scope.input = new
        if scope.output == old:
            scope.output = new
        scope.inputs = [new if u == old else u for u in scope.inputs]
        scope.outputs = [(name, new if u == old else u) for name, u in scope.outputs]


def _drop_empty_scopes(ir: IR) -> None:
    tree = ScopeTree(ir)
    used = set()
    for _, d in ir.nodes(data=True):
        used.update(tree.enclosing(d["scope"]))
    for path in [p for p in ir.graph["scopes"] if p not in used]:
        del ir.graph["scopes"][path]
