"""From the flat IR back to a module hierarchy: one ``Instance`` per scope, with its
submodules and forward statements; repeats folded into loops.

Values are IR node ids. A scope's inputs are the outside values its nodes read
(the tensor it was applied to first); its outputs are the inside values read
outside it (one for an ordinary block; a FractalNet block whose final join was
merged into its caller's join returns all of its columns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from udnet.backends.pytorch.names import Namespace
from udnet.ir.analysis import ScopeTree, join_columns
from udnet.ir.graph import IR, leaf
from udnet.ops import CONNECTIONS, OPS


@dataclass
class Child:
    label: str
    kind: str  # op, scope, join
    desc: tuple  # what to construct; numbers in it may differ between instances of a class
    instance: "Instance | None" = None


@dataclass
class Stmt:
    kind: str  # call, add, concat, gate, slice; start, append, bn_relu_conv (shared buffers)
    ins: list[int]
    outs: list[int]
    child: int | None = None  # index into Instance.children for calls
    nums: tuple = ()  # slice bounds; buffer widths and offsets
    extra: tuple = ()  # further children a fused statement stands for


@dataclass
class Loop:
    """``count`` repetitions of ``body``; the carried value flows from one window to the next."""

    count: int
    body: list[Stmt]  # the first window; the others differ only in numbers and children
    children: list[list[int]]  # per body position: child index of each iteration (or [])
    carry_in: int | None  # value entering the first window
    carry_pos: tuple[int, int] | None  # (statement, output) in a window that carries on
    out: int | None  # the last window's carried value
    nums: list[list[tuple]]  # per body position: slice numbers of each iteration
    stmts: list[Stmt] = field(default_factory=list)  # every window, to unfold again


@dataclass
class Instance:
    path: str
    kind: str  # network, block, group
    name: str
    args: dict
    inputs: list[int]
    outputs: list[int]
    children: list[Child] = field(default_factory=list)
    body: list[Any] = field(default_factory=list)  # Stmt and Loop
    var_names: dict[int, str] = field(default_factory=dict)
    output_names: tuple = ()  # the network's named outputs: forward returns them as a dict


def build_instances(ir: IR) -> Instance:
    """The module tree of the IR, innermost scopes first resolved."""
    columns = join_columns(ir)
    buffers = ir.graph.get("buffers", [])
    # Nodes with no statement of their own: the ReLU and conv of a fused reader, and the
    # slices that drop a link's head (the next link's append drops it).
    absorbed: set[int] = set()
    for n, d in ir.nodes(data=True):
        if d.get("fuse") is not None:
            relu = ir.consumers(n)[0]
            absorbed.update((relu, ir.consumers(relu)[0]))
        if d.get("tail_of") is not None:
            absorbed.add(n)
    # Containers (module lists) hold modules but run nothing: their modules' statements
    # belong to the nearest scope around them that runs, under dotted labels (convs.0).
    tree = ScopeTree(ir, containers=False)
    scopes, parent, depth, running = tree.scopes, tree.parent, tree.depth, tree.scope_of

    def local(path: str, scope: str) -> str:
        """``path`` relative to the running scope ``scope``: a label, dotted inside containers."""
        return path[len(scope) + 1:] if scope else path

    # Every pass below is linear in nodes and edges (times the nesting an edge crosses):
    # a scope never walks the nodes of the scopes nested in it.
    order = ir.topo()
    topo = {n: i for i, n in enumerate(order)}
    outside = {ir.input_node, *ir.graph["outputs"]}  # outside every scope, the root's included
    own: dict[str, list[int]] = {"": []}
    for p in scopes:
        own[p] = []
    first: dict[str, int] = {}  # scope -> earliest node inside it (nested scopes included)
    for n in order:
        if n in outside:
            continue
        s = running(ir.nodes[n]["scope"])
        own[s].append(n)
        while s not in first:
            first[s] = topo[n]
            if not s:
                break
            s = parent[s]
    # The child scopes that hold a node (a block that returns x holds none), in creation order.
    child_scopes = {p: [c for c in tree.children[p] if c in first] for p in own}
    # For every edge u -> v: the scopes v is in and u is not read u (inputs), the scopes
    # u is in and v is not export it (outputs), and the innermost scope holding both
    # orders the two items (own node or child scope) u and v belong to.
    reads: dict[str, list[tuple[int, int, int]]] = {p: [] for p in own}
    exports: dict[str, set[int]] = {p: set() for p in own}
    deps: dict[str, list[tuple]] = {p: [] for p in own}
    for v in order:
        for port, u in enumerate(ir.inputs(v)):
            su = None if u in outside else running(ir.nodes[u]["scope"])
            sv = None if v in outside else running(ir.nodes[v]["scope"])
            up_u: list[str] = []
            up_v: list[str] = []
            a, b = su, sv
            if a is None or b is None:  # the input or an output: outside the root too
                up_u = [] if a is None else [*tree.enclosing(a), ""]
                up_v = [] if b is None else [*tree.enclosing(b), ""]
            else:
                while depth[a] > depth[b]:
                    up_u.append(a)
                    a = parent[a]
                while depth[b] > depth[a]:
                    up_v.append(b)
                    b = parent[b]
                while a != b:
                    up_u.append(a)
                    up_v.append(b)
                    a, b = parent[a], parent[b]
                deps[a].append((up_u[-1] if up_u else u, up_v[-1] if up_v else v))
            for p in up_v:
                reads[p].append((topo[v], port, u))
            for p in up_u:
                exports[p].add(u)

    def make(path: str) -> Instance:
        if path:
            sc = scopes[path]
            kind, name, args = sc.kind, sc.block or leaf(path), sc.args
        else:
            kind, name, args = "network", ir.graph["network"], ir.graph["params"]
        inputs: list[int] = []
        seen: set[int] = set()
        for _, _, u in sorted(reads[path]):
            if u not in seen:
                seen.add(u)
                inputs.append(u)
        outputs = sorted(exports[path], key=topo.__getitem__)
        if not path:  # the network reads its input and returns its outputs, even when they are one value
            inputs = [ir.input_node]
            outputs = [ir.inputs(n)[0] for n in ir.graph["outputs"]]
        if path:  # the tensors the scope was applied to come first, in order (x, skip)
            declared = [u for u in (scopes[path].inputs or [scopes[path].input]) if u in inputs]
            inputs = list(dict.fromkeys(declared)) + [u for u in inputs if u not in declared]
        if not path and not inputs:  # a network with no op (or only pruned ones) still takes x
            inputs.append(ir.graph["input"])
        inst = Instance(path, kind, name, args, inputs, outputs)
        if not path and ir.named_outputs():
            inst.output_names = tuple(name for name, _ in ir.outputs())
        # Items: own nodes, and direct child scopes collapsed to one call each.
        label_of = {p: local(p, path) for p in child_scopes[path]}
        names = {n: local(ir.path(n), path) for n in own[path] if ir.nodes[n]["name"]}
        # Generated submodule names (joins) yield to every user label of the scope.
        labels = Namespace((lbl.split(".")[0] for lbl in label_of.values()),
                           (lbl.split(".")[0] for lbl in names.values()))
        dag = nx.DiGraph()
        dag.add_nodes_from(own[path])
        dag.add_nodes_from(child_scopes[path])
        dag.add_edges_from(deps[path])
        key = {n: topo[n] for n in own[path]}
        key.update((p, first[p]) for p in child_scopes[path])
        order = list(nx.lexicographical_topological_sort(dag, key=key.__getitem__))
        for it in order:
            if isinstance(it, int):
                if it not in absorbed:
                    _node_stmt(ir, inst, it, columns, labels, names)
                    if ir.nodes[it].get("var"):
                        inst.var_names[it] = ir.nodes[it]["var"]
            else:
                sub = make(it)
                inst.children.append(Child(label_of[it], "scope", (), sub))
                inst.body.append(Stmt("call", list(sub.inputs), list(sub.outputs), len(inst.children) - 1))
                for v in sub.outputs:
                    if ir.nodes[v].get("var"):
                        inst.var_names[v] = ir.nodes[v]["var"]
        _start_buffers(inst, buffers)
        return inst

    return make("")


def _start_buffers(inst: Instance, buffers) -> None:
    """Start each buffer in its chain's scope, where its base is first a value there.
    Every value, link or not, crosses module boundaries as a tensor."""
    for b in buffers:
        if b.scope != inst.path:
            continue
        start = Stmt("start", [b.base], [b.base], None, (b.channels,))
        if b.base in inst.inputs:
            inst.body.insert(0, start)
        else:
            at = next(i for i, st in enumerate(inst.body) if b.base in st.outs)
            inst.body.insert(at + 1, start)


def _node_stmt(ir: IR, inst: Instance, n: int, columns: dict[int, list[int]], labels: Namespace,
               names: dict[int, str]) -> None:
    """The statement of node ``n``; ``names`` holds each op's label in the instance."""
    d = ir.nodes[n]
    op = d["op"]
    ins = ir.inputs(n)
    if d.get("fuse") is not None:
        relu = ir.consumers(n)[0]
        conv = ir.consumers(relu)[0]
        first = len(inst.children)
        for node in (n, relu, conv):
            nd = ir.nodes[node]
            in_shape = ir.nodes[ir.inputs(node)[0]]["shape"]
            inst.children.append(Child(names[node], "op", OPS[nd["op"]].torch.describe(in_shape, nd["attrs"])))
        inst.body.append(Stmt("bn_relu_conv", ins, [conv], first, (), (first + 1, first + 2)))
        return
    if op == "concat" and d.get("buffer") is not None:
        # [head ++] tail ++ new: the tail is the buffer so far; where it is the previous
        # link less its head, the append takes that link and drops the head itself.
        head, tail, new = ([None] + ins if len(ins) == 2 else ins)
        stored, drop = ir.nodes[tail]["shape"][0], None
        if ir.nodes[tail].get("tail_of") is not None:
            tail = ir.inputs(tail)[0]
            drop = ir.nodes[tail]["head"]
        ins = [tail, new] + ([head] if head is not None else [])
        inst.body.append(Stmt("append", ins, [n], None, (stored, drop)))
        return
    if op in OPS:
        spec = OPS[op]
        inplace = spec.torch.inplace is not None and _in_place(ir, n)
        desc = spec.torch.describe(ir.nodes[ins[0]]["shape"], d["attrs"], inplace)
        inst.children.append(Child(names[n], "op", desc))
        inst.body.append(Stmt("call", ins, [n], len(inst.children) - 1))
    elif op == "join":
        a = d["attrs"]
        desc = ("join", len(ins), a["drop_local"], a["drop_global"], tuple(columns[n]))
        inst.children.append(Child(labels.fresh("join", numbered=True), "join", desc))
        inst.body.append(Stmt("call", ins, [n], len(inst.children) - 1))
    elif op == "slice":
        lo, hi = d["attrs"]["lo"], d["attrs"]["hi"]
        # Omitted bounds read better and need no constructor parameter: x[:, 64:].
        full = ir.nodes[ins[0]]["shape"][0]
        inst.body.append(Stmt("slice", ins, [n], None, (None if lo == 0 else lo, None if hi == full else hi)))
    else:
        # A connection printed as an expression; its form (which operands broadcast) is structure.
        form = CONNECTIONS[op].form([ir.nodes[u]["shape"] for u in ins])
        inst.body.append(Stmt((op, form) if form else op, ins, [n]))


def _saves_output(op: str) -> bool:
    """Does the node's backward keep its output, or may its output alias its input?"""
    if op == "input":
        return True
    return (OPS[op] if op in OPS else CONNECTIONS[op]).saves_output


def _in_place(ir: IR, n: int) -> bool:
    """An op (a ReLU) may overwrite its input when nothing else reads it and no backward needs it."""
    (src,) = ir.inputs(n)
    d = ir.nodes[src]
    return len(ir.consumers(src)) == 1 and not _saves_output(d["op"]) and d.get("buffer") is None


# ---- folding repeats into loops ----

_MAX_PERIOD = 8


def fold_loops(inst: Instance, class_of) -> None:
    """Replace runs of >= 2 isomorphic statement windows by Loops (recursively bottom-up
    the caller handles children first). ``class_of(child)`` names a child's class key."""
    body = inst.body
    used_after = _uses(inst)
    # Each statement's key once: every start tries every period against it.
    stmt_keys = [_stmt_key(inst, s, class_of) if isinstance(s, Stmt) else None for s in body]
    out: list[Any] = []
    i = 0
    while i < len(body):
        best = None
        for p in range(1, min(_MAX_PERIOD, (len(body) - i) // 2) + 1):
            if stmt_keys[i : i + p] != stmt_keys[i + p : i + 2 * p]:
                continue  # not even two equal windows
            loop = _try_loop(inst, body, i, p, class_of, used_after, stmt_keys)
            if loop is not None and (best is None or loop.count * p > best.count * len(best.body)):
                best = loop
        if best is None:
            out.append(body[i])
            i += 1
        else:
            out.append(best)
            i += best.count * len(best.body)
    inst.body = out


def _uses(inst: Instance) -> dict[int, list[int]]:
    """value -> indices of statements that read it (len(body) for the scope's outputs)."""
    uses: dict[int, list[int]] = {}
    for k, s in enumerate(inst.body):
        for v in s.ins:
            uses.setdefault(v, []).append(k)
    for v in inst.outputs:
        uses.setdefault(v, []).append(len(inst.body))
    return uses


def _stmt_key(inst: Instance, s: Stmt, class_of) -> tuple:
    if s.child is None:
        # Which slice bounds are omitted is structure: x[:, :a] and x[:, a:b] are different code.
        return (s.kind, len(s.ins), len(s.outs), tuple(n is None for n in s.nums))
    return (s.kind, len(s.ins), len(s.outs), class_of(inst.children[s.child]))


def _try_loop(inst, body, start, p, class_of, uses, stmt_keys) -> Loop | None:
    def window(w):
        return body[start + w * p : start + (w + 1) * p]

    if start + 2 * p > len(body) or not all(isinstance(s, Stmt) for s in body[start : start + 2 * p]):
        return None
    if any(s.extra or s.kind == "start" for s in body[start : start + 2 * p]):
        return None
    w0, w1 = window(0), window(1)
    keys = stmt_keys[start : start + p]
    if stmt_keys[start + p : start + 2 * p] != keys:
        return None
    produced0 = {v: (j, k) for j, s in enumerate(w0) for k, v in enumerate(s.outs)}
    # The carried value: what window 1 reads from window 0.
    carry_pos = None
    for s in w1:
        for v in s.ins:
            if v in produced0:
                if carry_pos not in (None, produced0[v]):
                    return None
                carry_pos = produced0[v]
    carry_in = None
    if carry_pos is not None:
        # In window 0 the same input slots must read one outside value.
        for s0, s1 in zip(w0, w1):
            for v0, v1 in zip(s0.ins, s1.ins):
                if v1 in produced0:
                    if v0 in produced0 or carry_in not in (None, v0):
                        return None
                    carry_in = v0
        if carry_in is None:
            return None

    def refs(win, cin):
        local = {v: (j, k) for j, s in enumerate(win) for k, v in enumerate(s.outs)}
        return [
            tuple(("w",) + local[v] if v in local else ("c",) if v == cin else ("o", v) for v in s.ins)
            for s in win
        ]

    sig = refs(w0, carry_in)
    # Labels must follow one pattern over the whole run (see below): a run whose labels
    # break it is given up at once, so trying every start stays linear in the body.
    first_labels = {j: (inst.children[s.child].label, inst.children[w1[j].child].label)
                    for j, s in enumerate(w0) if s.child is not None}
    label_pats = {j: label_pattern(list(pair)) for j, pair in first_labels.items()}
    if any(pat is None for pat in label_pats.values()):
        return None
    count = 1
    while start + (count + 1) * p <= len(body):
        prev, win = window(count - 1), window(count)
        if not all(isinstance(s, Stmt) for s in win):
            break
        if stmt_keys[start + count * p : start + (count + 1) * p] != keys:
            break
        nxt = prev[carry_pos[0]].outs[carry_pos[1]] if carry_pos else None
        if refs(win, nxt) != sig:
            break
        if count >= 2 and not all(_continues(inst.children[win[j].child].label, pat, count)
                                  for j, pat in label_pats.items()):
            return None  # the whole run's labels follow no pattern
        count += 1
    # Short runs read better unrolled, and so do runs whose labels follow no pattern.
    if count < 3:
        return None
    for j, s in enumerate(w0):
        labels = [inst.children[window(w)[j].child].label for w in range(count)] if s.child is not None else []
        if labels and label_pattern(labels) is None:
            return None
    # Nothing but the last carried value may be read after the loop or across windows.
    end = start + count * p
    last = window(count - 1)
    out = last[carry_pos[0]].outs[carry_pos[1]] if carry_pos else None
    for w in range(count):
        for j, s in enumerate(window(w)):
            for v in s.outs:
                for k in uses.get(v, []):
                    inside = start + w * p <= k < start + (w + 1) * p
                    next_window = carry_pos is not None and (j, s.outs.index(v)) == carry_pos and (
                        start + (w + 1) * p <= k < start + (w + 2) * p
                    )
                    after = k >= end and v == out
                    if not (inside or next_window or after):
                        return None
    children = [[window(w)[j].child for w in range(count)] if s.child is not None else [] for j, s in enumerate(w0)]
    nums = [[window(w)[j].nums for w in range(count)] for j in range(p)]
    return Loop(count, list(w0), children, carry_in, carry_pos, out, nums, body[start:end])


_TAIL_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


def _continues(label: str, pat: tuple[str, int, int, str], w: int) -> bool:
    """Is ``label`` the ``w``-th (from 0) of ``pat``, as ``label_pattern`` reads it?"""
    m = _TAIL_NUMBER.match(label)
    prefix, start, step, suffix = pat
    return bool(m) and m.group(1) == prefix and m.group(3) == suffix and m.group(2) == str(start + w * step)


def label_pattern(labels: list[str]) -> tuple[str, int, int, str] | None:
    """``denselayer1, denselayer2, ...`` -> ("denselayer", 1, 1, ""): prefix, start, step, suffix."""
    parts = [_TAIL_NUMBER.match(lbl) for lbl in labels]
    if not all(parts):
        return None
    prefix, suffix = parts[0].group(1), parts[0].group(3)
    nums = [int(m.group(2)) for m in parts]
    if any(m.group(1) != prefix or m.group(3) != suffix or str(int(m.group(2))) != m.group(2) for m in parts):
        return None
    step = nums[1] - nums[0]
    if step == 0 or any(b - a != step for a, b in zip(nums, nums[1:])):
        return None
    if "." in suffix:  # blocks.0.conv, blocks.1.conv: one container per label, not one list
        return None
    return prefix, nums[0], step, suffix
