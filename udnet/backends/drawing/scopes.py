"""Which IR node lands in which drawn item: clusters per scope, scopes collapsed by
``--depth``, runs of identical chained blocks folded into one ``xN`` node, fractal blocks
drawn as columns (``columns``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from udnet.ir.graph import IR, Scope, leaf

from udnet.ir.analysis import ScopeTree, join_columns

from .columns import ColumnLayout, column_layout
from .labels import call_text, same_args
from .options import DrawOptions
from .style import CONNECTIONS


@dataclass
class Aggregate:
    """A node of the drawing standing for many IR nodes: a collapsed scope, a fold, or a
    block drawn as columns."""

    id: str
    home: str  # scope path of the cluster it sits in
    label: str
    kind: str  # "collapsed", "fold" or "columns"
    nodes: set[int] = field(default_factory=set)
    tooltip: str = ""
    glue: set[int] = field(default_factory=set)  # a fold's nodes between its instances
    layout: ColumnLayout | None = None  # of a block drawn as columns
    compact: bool = False  # columns of units without text: --depth stops at the block


class Drawing:
    """The quotient of the IR that gets drawn: which IR node lands in which drawn item."""

    def __init__(self, ir: IR, opt: DrawOptions):
        self.ir = ir
        self.opt = opt
        self.tree = ScopeTree(ir)
        self.scopes: dict[str, Scope] = self.tree.scopes
        # nodes of every scope, nested scopes included
        self.members: dict[str, set[int]] = {p: set() for p in self.scopes}
        for n, d in ir.nodes(data=True):
            for s in self.tree.enclosing(d.get("scope") or ""):
                self.members[s].add(n)
        self.aggregates: dict[str, Aggregate] = {}
        self.item: dict[int, str] = {}  # IR node -> aggregate id (absent: drawn as itself)
        self.visible: set[str] = set()  # scopes drawn as clusters
        self._sig: dict[str, tuple] = {}
        self._join_columns: dict[int, list[int]] | None = None  # computed for the first fractal block
        self._order: dict[int, int] = {}  # topological index, with it
        self._walk("")

    def outer(self, path: str) -> Scope | None:
        """The nearest enclosing block instance."""
        p = self.tree.parent[path]
        while p:
            if self.scopes[p].kind == "block":
                return self.scopes[p]
            p = self.tree.parent[p]
        return None

    # -- deciding what is a cluster, what collapses and what folds

    def _walk(self, root: str) -> None:
        # Depth first with a stack of its own: the module tree may nest as deep as
        # --max-depth allows, beyond Python's recursion limit.
        stack = [self._enter(root)]
        while stack:
            c = next(stack[-1], None)
            if c is None:
                stack.pop()
            elif self.opt.depth is not None and self.tree.depth[c] > self.opt.depth:
                self._collapse(c)
            else:
                self.visible.add(c)
                if not self._columns(c):
                    stack.append(self._enter(c))

    def _enter(self, path: str):
        """Fold the runs among the children of ``path``; the other children, in order."""
        kids = self.tree.children[path]
        folded: set[str] = set()
        if not self.opt.expand:
            for run, glue in self._runs(path, kids):
                folded.update(run)
                self._fold(path, run, glue)
        # not folded, and with an op of its own to draw (not a block that returns x)
        return iter([c for c in kids if c not in folded and self.members[c]])

    def _columns(self, path: str) -> bool:
        """Draw block ``path`` as columns if its structure is a fractal expansion."""
        s = self.scopes[path]
        # after --fractal-column a scope's output may be a join that pruning removed
        if s.kind != "block" or s.output not in self.ir or self.ir.nodes[s.output]["op"] != "join":
            return False
        if self._join_columns is None:
            self._join_columns = join_columns(self.ir)
            self._order = {n: i for i, n in enumerate(self.ir.topo())}
        layout = column_layout(self.ir, self.members[path], s.input, s.output, self._join_columns, self._order)
        if layout is None:
            return False
        agg = Aggregate(f"c{len(self.aggregates)}", path, "", "columns", set(self.members[path]), layout=layout)
        agg.compact = self.opt.depth is not None and self.tree.depth[path] >= self.opt.depth
        agg.tooltip = f"{path}: {call_text(s)} ({len(agg.nodes)} ops in {len(layout.numbers)} columns)"
        self._add(agg)
        return True

    def _collapse(self, path: str) -> None:
        s = self.scopes[path]
        agg = Aggregate(f"s{len(self.aggregates)}", self.tree.parent[path], "", "collapsed", set(self.members[path]))
        head = leaf(path)
        call = call_text(s, self.outer(path)) if s.kind == "block" else ""
        kinds = self._inner_kinds(agg.nodes)
        lines = [head] + ([call] if call else []) + ([kinds] if kinds else [])
        agg.label = "\n".join(lines)
        agg.tooltip = f"{path}: {call or 'group'} ({len(agg.nodes)} ops)"
        self._add(agg)

    def _fold(self, parent: str, run: list[str], glue: set[int]) -> None:
        nodes = set(glue)
        for p in run:
            nodes |= self.members[p]
        first, last = leaf(run[0]), leaf(run[-1])
        m1, m2 = re.fullmatch(r"(.*?)(\d+)", first), re.fullmatch(r"(.*?)(\d+)", last)
        if m1 and m2 and m1.group(1) == m2.group(1):
            names = f"{first}..{m2.group(2)}"
        else:
            names = f"{first} .. {last}"
        s = self.scopes[run[0]]
        kinds = self._inner_kinds(nodes)
        lines = [names, call_text(s, self.outer(run[0])), f"x{len(run)}" + (f" ({kinds})" if kinds else "")]
        agg = Aggregate(f"f{len(self.aggregates)}", parent, "\n".join(lines), "fold", nodes, glue=glue)
        agg.tooltip = f"{run[0]} .. {run[-1]}: {len(run)} x {call_text(s)}"
        self._add(agg)

    def _add(self, agg: Aggregate) -> None:
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
        if sa.block != sb.block or call_text(sa) != call_text(sb) or not same_args(sa.args, sb.args):
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
