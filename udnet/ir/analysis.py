"""Analyses over the IR shared by passes and backends."""

from __future__ import annotations

from udnet.ir.graph import IR, Scope


class ScopeTree:
    """The module tree that the IR's scopes describe. The IR keeps scopes flat, as dotted
    paths in creation order (``ir.graph["scopes"]``); this is the tree, built once, for
    every pass and backend that walks it. ``""`` is the network, the root.

    ``scopes``: the scopes of the tree, in creation order; ``parent[p]``: the scope
    directly around ``p`` (``""`` at the top); ``children[p]``: the scopes directly in
    ``p``, in creation order (``children[""]``: the top ones); ``depth[p]``: 0 for the
    network, 1 for its scopes, and so on.

    A container (``convs`` of the labels ``convs.0:``, ``convs.1:``) is a module list:
    it holds modules and runs nothing. A drawing or a summary shows it like any scope.
    With ``containers=False`` the tree leaves containers out and hangs their scopes on
    the scope around them, which runs them: the PyTorch backend's modules, whose
    ``forward`` calls ``self.convs[0]``. The verifier checks what this relies on: every
    scope comes after its parent, and every node's scope is a scope or the network.
    """

    def __init__(self, ir: IR, containers: bool = True):
        scopes = ir.graph.get("scopes", {})
        self._left_out: set[str] = set() if containers else {p for p, s in scopes.items() if s.kind == "container"}
        self.scopes: dict[str, Scope] = {p: s for p, s in scopes.items() if p not in self._left_out}
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = {"": []}
        self.depth: dict[str, int] = {"": 0}
        for path in self.scopes:  # a parent before its children
            up = self.scope_of(path.rpartition(".")[0])
            self.parent[path] = up
            self.children[path] = []
            self.children[up].append(path)
            self.depth[path] = self.depth[up] + 1

    def scope_of(self, path: str) -> str:
        """The scope of the tree that stands for ``path`` (a scope's path or a node's
        ``scope``): ``path`` itself, or for a container left out the scope around it."""
        while path in self._left_out:
            path = path.rpartition(".")[0]
        return path

    def enclosing(self, path: str) -> list[str]:
        """The scope of ``path`` and every scope around it, innermost first; not the network."""
        out = []
        path = self.scope_of(path)
        while path:
            out.append(path)
            path = self.parent[path]
        return out


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
