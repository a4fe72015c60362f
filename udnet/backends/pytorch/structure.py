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

from udnet.ir.analysis import join_columns
from udnet.ir.graph import IR, within
from udnet.ir.ops import OPS


@dataclass
class Child:
    label: str
    kind: str  # op, scope, join
    desc: tuple  # what to construct; numbers in it may differ between instances of a class
    instance: "Instance | None" = None


@dataclass
class Stmt:
    kind: str  # call, add, concat, gate, slice; start, append, head, bn_relu_conv (shared buffers)
    ins: list[int]
    outs: list[int]
    child: int | None = None  # index into Instance.children for calls
    nums: tuple = ()  # slice bounds; buffer widths and offsets
    extra: tuple = ()  # further children a fused statement stands for
    reads: tuple = ()  # per input: the width to read from a shared buffer, or None


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
    handle_inputs: tuple = ()  # per input: is it a shared concat buffer
    handle_outputs: tuple = ()


def build_instances(ir: IR) -> Instance:
    """The module tree of the IR, innermost scopes first resolved."""
    columns = join_columns(ir)
    topo = {n: i for i, n in enumerate(ir.topo())}
    buffers = ir.graph.get("buffers", [])
    # Nodes with no statement of their own: the ReLU and conv of a fused reader, and the
    # slices that drop a link's head (the buffer handle stands for them).
    absorbed: set[int] = set()
    for n, d in ir.nodes(data=True):
        if d.get("fuse") is not None:
            relu = ir.consumers(n)[0]
            absorbed.update((relu, ir.consumers(relu)[0]))
        if d.get("tail_of") is not None:
            absorbed.add(n)

    def is_handle(v: int, path: str) -> bool:
        """Is ``v`` a buffer handle in scope ``path``? Links always are; a base is from
        where its chain starts the buffer on, but not inside a scope that produces it."""
        if ir.nodes[v].get("buffer") is not None:
            return True
        return any(b.base == v and within(path, b.scope)
                   and (path == b.scope or not within(ir.nodes[v]["scope"], path)) for b in buffers)
    scopes = ir.graph["scopes"]
    nodes_in: dict[str, list[int]] = {"": []}
    for p in scopes:
        nodes_in[p] = []
    for n, d in ir.nodes(data=True):
        if d["op"] in ("input", "output"):  # outside every scope, the root's included
            continue
        s = d["scope"]
        while True:
            nodes_in[s].append(n)
            if not s:
                break
            s = s.rpartition(".")[0]

    def child_label(path: str, inner: str) -> str:
        rest = inner[len(path) + 1 :] if path else inner
        return rest.split(".")[0]

    def make(path: str) -> Instance:
        members = set(nodes_in[path])
        if path:
            sc = scopes[path]
            kind, name, args = sc.kind, sc.block or path.rpartition(".")[2], sc.args
        else:
            kind, name, args = "network", ir.graph["network"], ir.graph["params"]
        inputs: list[int] = []
        outputs: list[int] = []
        for n in sorted(members, key=topo.get):
            for u in ir.inputs(n):
                if u not in members and u not in inputs:
                    inputs.append(u)
            if any(v not in members for v in ir.consumers(n)):
                outputs.append(n)
        if path and scopes[path].input in inputs:
            inputs.remove(scopes[path].input)
            inputs.insert(0, scopes[path].input)
        if not path and not inputs:  # a network with no op (or only pruned ones) still takes x
            inputs.append(ir.graph["input"])
        inst = Instance(path, kind, name, args, inputs, outputs)
        # Items: own nodes, and direct child scopes collapsed to one call each.
        item_of: dict[int, str | int] = {}
        for n in members:
            d = ir.nodes[n]
            if d["op"] in ("input", "output"):
                continue
            if d["scope"] == path:
                item_of[n] = n
            else:
                item_of[n] = child_label(path, f"{d['scope']}.{d['name']}" if d["name"] else d["scope"])
        items: dict[Any, list[int]] = {}
        for n, it in item_of.items():
            items.setdefault(it, []).append(n)
        dag = nx.DiGraph()
        for it in items:
            dag.add_node(it)
        for n, it in item_of.items():
            for u in ir.inputs(n):
                ut = item_of.get(u)
                if ut is not None and ut != it:
                    dag.add_edge(ut, it)
        first = {it: min(topo[n] for n in ns) for it, ns in items.items()}
        order = list(nx.lexicographical_topological_sort(dag, key=lambda it: first[it]))
        for it in order:
            if isinstance(it, int):
                if it not in absorbed:
                    _node_stmt(ir, inst, it, columns)
            else:
                full = f"{path}.{it}" if path else it
                if full in scopes:
                    sub = make(full)
                    inst.children.append(Child(it, "scope", (), sub))
                    inst.body.append(Stmt("call", list(sub.inputs), list(sub.outputs), len(inst.children) - 1))
                else:  # an op leaf inside a child path that is not a scope cannot happen
                    raise AssertionError(f"no scope {full}")
        for n in members:
            var = ir.nodes[n].get("var")
            if var:
                inst.var_names[n] = var
        _plan_buffers(ir, inst, buffers, is_handle)
        return inst

    return make("")


def _plan_buffers(ir: IR, inst: Instance, buffers, is_handle) -> None:
    """Start buffers where their chain begins and read them where a plain tensor is needed."""
    # The chain's own scope receives its base as a tensor and starts the buffer itself.
    own_bases = {b.base for b in buffers if b.scope == inst.path}
    inst.handle_inputs = tuple(is_handle(v, inst.path) and v not in own_bases for v in inst.inputs)
    inst.handle_outputs = tuple(is_handle(v, inst.path) for v in inst.outputs)
    for b in buffers:
        if b.scope != inst.path:
            continue
        start = Stmt("start", [b.base], [b.base], None, (b.channels,))
        if b.base in inst.inputs:
            inst.body.insert(0, start)
        else:
            at = next(i for i, st in enumerate(inst.body) if b.base in st.outs)
            inst.body.insert(at + 1, start)
    aware = {"start", "head", "bn_relu_conv"}
    for st in inst.body:
        if st.kind in aware or (st.kind == "call" and inst.children[st.child].kind == "scope"):
            continue
        # An append takes its chain's handle first; what it appends (or a head) may be a
        # handle too (even the same one: x ++ x) and is then read as a tensor.
        reads = tuple(ir.nodes[v]["shape"][0] if is_handle(v, inst.path) and (k or st.kind != "append") else None
                      for k, v in enumerate(st.ins))
        if any(r is not None for r in reads):
            st.reads = reads


def _node_stmt(ir: IR, inst: Instance, n: int, columns: dict[int, list[int]]) -> None:
    d = ir.nodes[n]
    op = d["op"]
    ins = ir.inputs(n)
    if d.get("fuse") is not None:
        relu = ir.consumers(n)[0]
        conv = ir.consumers(relu)[0]
        first = len(inst.children)
        for node in (n, relu, conv):
            nd = ir.nodes[node]
            inst.children.append(Child(nd["name"], "op", op_desc(nd["op"], ir.nodes[ir.inputs(node)[0]]["shape"],
                                                                  nd["attrs"])))
        width = ir.nodes[ins[0]]["shape"][0]
        inst.body.append(Stmt("bn_relu_conv", ins, [conv], first, (width,), (first + 1, first + 2)))
        return
    if op == "concat" and d.get("buffer") is not None:
        # [head ++] tail ++ new: the tail is the buffer so far (a dropped head's slice is
        # read through to the previous link's handle), new goes in at its end.
        head, tail, new = ([None] + ins if len(ins) == 2 else ins)
        stored = ir.nodes[tail]["shape"][0]
        if ir.nodes[tail].get("tail_of") is not None:
            tail = ir.inputs(tail)[0]
        inst.body.append(Stmt("append", [tail, new] + ([head] if head is not None else []), [n], None, (stored,)))
        return
    if op == "slice" and ir.nodes[ins[0]].get("head") and (d["attrs"]["lo"], d["attrs"]["hi"]) == (
            0, ir.nodes[ins[0]]["head"]):
        inst.body.append(Stmt("head", ins, [n]))
        return
    if op in OPS:
        in_shape = ir.nodes[ins[0]]["shape"]
        desc = op_desc(op, in_shape, d["attrs"])
        if op == "relu" and _relu_in_place(ir, n):
            desc = ("relu", "inplace")
        inst.children.append(Child(d["name"], "op", desc))
        inst.body.append(Stmt("call", ins, [n], len(inst.children) - 1))
    elif op == "join":
        a = d["attrs"]
        desc = ("join", len(ins), a["drop_local"], a["drop_global"], tuple(columns[n]))
        taken = {c.label for c in inst.children}
        label = "join"
        k = 1
        while label in taken:
            k += 1
            label = f"join{k}"
        inst.children.append(Child(label, "join", desc))
        inst.body.append(Stmt("call", ins, [n], len(inst.children) - 1))
    elif op == "slice":
        lo, hi = d["attrs"]["lo"], d["attrs"]["hi"]
        # Omitted bounds read better and need no constructor parameter: x[:, 64:].
        full = ir.nodes[ins[0]]["shape"][0]
        inst.body.append(Stmt("slice", ins, [n], None, (None if lo == 0 else lo, None if hi == full else hi)))
    else:
        inst.body.append(Stmt(op, ins, [n]))


#: Ops whose backward keeps their own output, or whose output may alias their input
#: (views; dropout in eval): a ReLU after them must not overwrite it.
_SAVES_OUTPUT = {"relu", "sigmoid", "tanh", "elu", "input", "slice", "identity", "gap", "flatten", "dropout"}


def _relu_in_place(ir: IR, n: int) -> bool:
    """A ReLU may overwrite its input when nothing else reads it and no backward needs it."""
    (src,) = ir.inputs(n)
    d = ir.nodes[src]
    return len(ir.consumers(src)) == 1 and d["op"] not in _SAVES_OUTPUT and d.get("buffer") is None


def _sq(pair: tuple[int, int]) -> int | tuple[int, int]:
    return pair[0] if pair[0] == pair[1] else pair


def op_desc(op: str, shape: tuple, a: dict) -> tuple:
    """What constructs the op's module; numbers are the parts a shared class may vary."""
    if op == "conv":
        return ("conv", shape[0], a["out"], _sq(a["kernel"]), _sq(a["stride"]), _sq(a["pad"]),
                _sq(a["dilation"]), a["groups"], a["bias"], a["weight_init"], a["bias_init"])
    if op == "bn":
        return ("bn", "2d" if len(shape) == 3 else "1d", shape[0], a["eps"], a["momentum"], a["affine"])
    if op == "linear":
        return ("linear", shape[0], a["out"], a["bias"], a["weight_init"], a["bias_init"])
    if op in ("maxpool", "avgpool"):
        stride = a["stride"] if a["stride"] is not None else a["kernel"]
        extra = (a["count_pad"],) if op == "avgpool" else ()
        return (op, _sq(a["kernel"]), _sq(stride), _sq(a["pad"]), a["ceil"]) + extra
    if op == "dropout":
        return ("dropout", a["p"])
    if op == "elu":
        return ("elu", a["alpha"])
    if op == "gap":
        return ("gap", a["keep"])
    if op == "upsample":
        return ("upsample", a["scale"], a["mode"])
    return (op,)


# ---- folding repeats into loops ----

_MAX_PERIOD = 8


def fold_loops(inst: Instance, class_of) -> None:
    """Replace runs of >= 2 isomorphic statement windows by Loops (recursively bottom-up
    the caller handles children first). ``class_of(child)`` names a child's class key."""
    body = inst.body
    used_after = _uses(inst)
    out: list[Any] = []
    i = 0
    while i < len(body):
        best = None
        for p in range(1, min(_MAX_PERIOD, (len(body) - i) // 2) + 1):
            loop = _try_loop(inst, body, i, p, class_of, used_after)
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


def _try_loop(inst, body, start, p, class_of, uses) -> Loop | None:
    def window(w):
        return body[start + w * p : start + (w + 1) * p]

    if start + 2 * p > len(body) or not all(isinstance(s, Stmt) for s in body[start : start + 2 * p]):
        return None
    if any(s.reads or s.extra or s.kind == "start" for s in body[start : start + 2 * p]):
        return None
    w0, w1 = window(0), window(1)
    keys = [_stmt_key(inst, s, class_of) for s in w0]
    if [_stmt_key(inst, s, class_of) for s in w1] != keys:
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
    count = 1
    while start + (count + 1) * p <= len(body):
        prev, win = window(count - 1), window(count)
        if not all(isinstance(s, Stmt) for s in win):
            break
        if [_stmt_key(inst, s, class_of) for s in win] != keys:
            break
        nxt = prev[carry_pos[0]].outs[carry_pos[1]] if carry_pos else None
        if refs(win, nxt) != sig:
            break
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
    return prefix, nums[0], step, suffix
