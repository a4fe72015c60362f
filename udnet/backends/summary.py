"""``udnet summary``: per-block shapes, parameters, MACs and activation memory, from the IR alone.

Nothing here imports torch: every figure follows from the IR's static shapes.

Definitions (docs/language.md, "udnet summary", says the same for users)
    parameters   the ``params`` of every node in a row's scope: exactly the
                 ``numel()`` of the parameters of the emitted module's submodule of
                 the same dotted path.
    MACs         multiply-accumulates per sample (conv and linear; everything else
                 counts zero), the papers' convention.
    activations  the bytes of every tensor one forward pass of the emitted module
                 creates, for the batch and dtype, nothing freed or reused: the network
                 input, and for each IR node the tensors its op or connection counts
                 (``OpSpec.activation``, ``Connection.activation`` in ``udnet.ops``):
                 one of its output shape for most; ``a + b + c`` makes two partial
                 sums, a gate four tensors (``t * h``, ``1 - t``, ``(1 - t) * x``, the
                 sum), a join of n inputs n + 1 (``torch.stack``, then the mean), a
                 layernorm over [C, H, W] three (two permutations), drop_path none (in
                 eval it returns its input), views such as slices one each.

                 tests/test_summary.py measures the same thing on the module compiled
                 with ``--no-share-concat``: it interprets the module with torch.fx and
                 sums ``numel() * element_size()`` of every tensor result. It is an
                 upper bound of what a training step keeps for backward.

Before and after passes: the passes run on a copy of the IR (``udnet.pipeline.optimize``).
Pruning changes the node set; the concat-buffer pass changes no node but how concat
chains are stored, so its figure replaces the chains' naive part by the pass's own
estimate (``udnet.passes.share_concat.estimate_activation_bytes``: one shared buffer and
its gradient per chain instead of every x_l and the BN-ReLU outputs of its fused readers).
The rows of the table describe the compiled IR with plain ``torch.cat`` storage, so they
match ``udnet compile --no-share-concat``; parameters and MACs do not depend on it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from udnet import ops as opdefs
from udnet.ir.analysis import ScopeTree
from udnet.ir.graph import IR
from udnet.spectext import spec_text

#: Bytes per element of each supported dtype.
DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
#: Rows shown by default: scopes and ops nested at most this deep (``--depth N``).
DEFAULT_DEPTH = 2

def activation_elements(ir: IR, n: int) -> int:
    """Elements per sample of the tensors the emitted forward creates for node ``n``:
    the op's or connection's own count (``udnet.ops``); the input is the batch itself."""
    d = ir.nodes[n]
    op = d["op"]
    if op == "output":
        return 0
    if op == "input":
        return opdefs.numel(d["shape"])
    shapes = [ir.nodes[u]["shape"] for u in ir.inputs(n)]
    if op in opdefs.OPS:
        return opdefs.OPS[op].activation(shapes[0], d["shape"], d["attrs"])
    return opdefs.CONNECTIONS[op].activation(shapes, d["shape"])


@dataclass
class Row:
    scope: str  # dotted path (the emitted module's attribute path for blocks, groups and ops)
    level: int  # 1 for the network's direct children
    kind: str  # input, block, group, op, connection
    call: str  # DenseBlock(n=6, k=32), conv(64, 7, stride=2, pad=3), ++ of 2, ...
    output: list[int]
    params: int
    macs: int  # per sample
    activation_bytes: int  # for the batch and dtype
    nodes: int


@dataclass
class Figures:
    nodes: int
    params: int
    macs: int  # per sample
    activation_bytes: int  # for the batch and dtype


@dataclass
class Summary:
    spec: str
    network: str
    arguments: dict[str, Any]
    input: list[int]
    output: list[int]  # the first output's shape
    batch: int
    dtype: str
    depth: int | None
    rows: list[Row]
    total: Figures  # the compiled IR (after passes), plain torch.cat storage: the sum of the rows
    stages: list[tuple[str, Figures]]  # elaborated, after prune, after share-concat
    passes: list[str] = field(default_factory=list)  # what each pass reported
    outputs: dict[str, list[int]] = field(default_factory=dict)  # named outputs, in order (none: one tensor)

    def to_json(self) -> str:
        data = asdict(replace(self, arguments={}))  # asdict would recurse into deep lists
        data["arguments"] = self.arguments
        data["stages"] = [{"stage": name, **asdict(f)} for name, f in self.stages]
        data["bytes_per_element"] = DTYPES[self.dtype]
        return json_text(data)


def json_text(value: Any, indent: int = 2) -> str:
    """``json.dumps(value, indent=indent)``, byte for byte, without recursion: argument
    values nest as deep as --max-nesting allows, far deeper than Python's recursion limit."""
    out: list[str] = []
    stack: list[list] = []  # [items left, is a dict, level, first item still to come]

    def start(v: Any, level: int) -> None:
        if isinstance(v, dict):
            items, is_dict, empty = iter(v.items()), True, not v
        elif isinstance(v, (list, tuple, range)):
            items, is_dict, empty = iter(v), False, not len(v)
        else:
            out.append(json.dumps(v))
            return
        if empty:
            out.append("{}" if is_dict else "[]")
            return
        out.append("{" if is_dict else "[")
        stack.append([items, is_dict, level, True])

    done = object()
    start(value, 0)
    while stack:
        top = stack[-1]
        items, is_dict, level, first = top
        item = next(items, done)
        if item is done:
            out.append("\n" + " " * (indent * level) + ("}" if is_dict else "]"))
            stack.pop()
            continue
        out.append(("\n" if first else ",\n") + " " * (indent * (level + 1)))
        top[3] = False
        if is_dict:
            key, item = item
            out.append(json.dumps(str(key)) + ": ")
        start(item, level + 1)
    return "".join(out)


def figures(ir: IR, batch: int, dtype_bytes: int) -> Figures:
    elements = sum(activation_elements(ir, n) for n in ir.nodes)
    return Figures(ir.number_of_nodes(), ir.param_count(), ir.mac_count(), elements * batch * dtype_bytes)


def summarize(ir: IR, spec: str = "<spec>", batch: int = 1, dtype: str = "float32", depth: int | None = DEFAULT_DEPTH,
              disabled=(), fractal_column: int | None = None) -> Summary:
    """Summarise ``ir`` (left unchanged) and a copy of it run through the passes."""
    from udnet.passes.share_concat import estimate_activation_bytes
    from udnet.pipeline import optimize

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    nbytes = DTYPES[dtype]
    before = figures(ir, batch, nbytes)
    # Argument values are never changed, and lists among them may nest thousands deep,
    # too deep for deepcopy's recursion: the copy shares them.
    memo: dict[int, Any] = {id(v): v for v in ir.graph.get("params", {}).values()}
    for scope in ir.graph.get("scopes", {}).values():
        memo.update((id(v), v) for v in scope.args.values())
    compiled = copy.deepcopy(ir, memo)
    reports = optimize(compiled, disabled, fractal_column)
    lines = [f"{r.name}: {line}" for r in reports for line in r.lines]
    plain = figures(compiled, batch, nbytes)
    stages = [("elaborated", before)]
    ran = [r.name for r in reports]
    if "prune" in ran:
        stages.append(("after prune", plain))
    if "share-concat" in ran:
        naive, shared = estimate_activation_bytes(compiled, compiled.graph.get("buffers", []), nbytes)
        stages.append((
            "after share-concat",
            Figures(plain.nodes, plain.params, plain.macs, plain.activation_bytes + (shared - naive) * batch),
        ))
    return Summary(
        spec=spec,
        network=ir.graph["network"],
        arguments=dict(ir.graph.get("params", {})),
        input=list(ir.nodes[ir.input_node]["shape"]),
        output=list(ir.nodes[ir.graph["outputs"][0]]["shape"]),
        outputs={name: list(ir.nodes[n]["shape"]) for name, n in ir.outputs() if name is not None},
        batch=batch,
        dtype=dtype,
        depth=depth,
        rows=rows(compiled, batch, nbytes, depth),
        total=plain,
        stages=stages,
        passes=lines,
    )


# ---------------------------------------------------------------------------
# Rows


def rows(ir: IR, batch: int = 1, dtype_bytes: int = 4, depth: int | None = None) -> list[Row]:
    """One row per scope, op and connection nested at most ``depth`` levels deep (all if
    None), in creation order; each row's figures include everything inside it. The
    rows of level 1, with the input row, add up to the network's totals."""
    tree = ScopeTree(ir)
    scopes = tree.scopes
    # Every node belongs to one item: an op to its own path, a connection to the
    # scope it was written in (its row is its own, one level further in).
    children: dict[str, list[tuple[int, str, Any]]] = {}  # parent path -> (first node id, kind, key)
    members: dict[str, list[int]] = {}  # item path -> nodes inside it, nested items included
    first: dict[str, int] = {}
    for n, d in ir.nodes(data=True):
        if d["op"] in ("input", "output"):
            continue
        if d["name"]:  # an op: an item of its own in its scope
            members[ir.path(n)] = [n]
            children.setdefault(d["scope"], []).append((n, "item", ir.path(n)))
        else:  # a connection: an item of its own inside its scope
            children.setdefault(d["scope"], []).append((n, "connection", n))
        for p in tree.enclosing(d["scope"]):
            members.setdefault(p, []).append(n)
            first[p] = min(first.get(p, n), n)
    for p in first:
        children.setdefault(tree.parent[p], []).append((first[p], "item", p))
    out: list[Row] = []
    inp = ir.input_node
    out.append(Row("input", 1, "input", "input", list(ir.nodes[inp]["shape"]), 0, 0,
                   activation_elements(ir, inp) * batch * dtype_bytes, 1))

    order: dict[int, int] | None = None

    def items(parent: str):
        return iter(sorted(children.get(parent, []), key=lambda c: c[0]))

    # Depth first, in creation order, with a stack of its own: the module tree may nest
    # as deep as --max-depth allows, beyond Python's recursion limit.
    stack = [(items(""), 1)]
    while stack:
        level = stack[-1][1]
        if depth is not None and level > depth:
            stack.pop()
            continue
        for _, kind, key in stack[-1][0]:
            if kind == "connection":
                out.append(_connection_row(ir, key, level, batch, dtype_bytes))
                continue
            nodes = members[key]
            scope = scopes.get(key)
            if scope is not None:
                call = _scope_call(scope)
                if order is None:
                    order = {n: i for i, n in enumerate(ir.topo())}
                shape = _scope_output(ir, scope, nodes, order)
                kind_ = scope.kind
            else:
                (n,) = nodes
                call = op_call(ir.nodes[n]["op"], ir.nodes[n]["attrs"])
                shape = ir.nodes[n]["shape"]
                kind_ = "op"
            out.append(Row(
                key, level, kind_, call, list(shape),
                sum(ir.nodes[m]["params"] for m in nodes),
                sum(ir.nodes[m]["macs"] for m in nodes),
                sum(activation_elements(ir, m) for m in nodes) * batch * dtype_bytes,
                len(nodes),
            ))
            if scope is not None:
                stack.append((items(key), level + 1))
                break
        else:
            stack.pop()
    return out


def _scope_output(ir: IR, scope, nodes: list[int], order: dict[int, int]) -> tuple:
    if scope.output is not None and scope.output in ir:
        return ir.nodes[scope.output]["shape"]
    if scope.outputs and scope.outputs[0][1] in ir:  # named outputs: the first one's
        return ir.nodes[scope.outputs[0][1]]["shape"]
    # The scope's result was merged away (a FractalNet join flattened into its caller's):
    # show the last thing computed inside it.
    return ir.nodes[max(nodes, key=order.__getitem__)]["shape"]


def _connection_row(ir: IR, n: int, level: int, batch: int, dtype_bytes: int) -> Row:
    d = ir.nodes[n]
    name = d.get("var") or f"({opdefs.CONNECTIONS[d['op']].symbol})"
    path = f"{d['scope']}.{name}" if d["scope"] else name
    k = ir.in_degree(n)
    op = d["op"]
    if op == "add":
        call = f"+ of {k} (residual sum)"
    elif op == "concat":
        call = f"++ of {k} (channel concat)"
    elif op == "gate":
        call = "gate(h, x, t)"
    elif op == "mul":
        call = "* (element-wise product)"
    elif op == "join":
        a = d["attrs"]
        call = f"join of {k}"
        rates = [f"{key}={spec_text(a[key])}" for key in ("drop_local", "drop_global") if a.get(key)]
        if rates:
            call += f" ({', '.join(rates)})"
    else:
        call = f"[{d['attrs']['lo']}:{d['attrs']['hi']}] (channel slice)"
    return Row(path, level, "connection", call, list(d["shape"]), d["params"], d["macs"],
               activation_elements(ir, n) * batch * dtype_bytes, 1)


def _scope_call(scope) -> str:
    if scope.kind == "container":
        return "(module list)"
    if scope.kind != "block":
        return "{ ... }"
    return f"{scope.block}({', '.join(f'{k}={spec_text(v)}' for k, v in scope.args.items())})"


def op_call(op: str, attrs: dict) -> str:
    """``conv(64, 7, stride=2, pad=3)``: required arguments by position, the others by
    name where they differ from the default, as a spec would write the call."""
    spec = opdefs.OPS[op]
    parts = []
    for a in spec.args:
        v = attrs.get(a.name)
        if a.default is opdefs.REQUIRED:
            parts.append(spec_text(_unpair(v)))
            continue
        default = a.default if a.default is None else opdefs.check_arg(op, a, a.default, a.name)
        if spec_text(v) != spec_text(default):  # not !=: it takes -0.0 for 0.0
            parts.append(f"{a.name}={spec_text(_unpair(v))}")
    return f"{op}({', '.join(parts)})" if parts else op


def _unpair(v: Any) -> Any:
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return v


# ---------------------------------------------------------------------------
# Text


# A figure that would round up to the next unit's size is shown in the next unit:
# a mebibyte less one byte is "1.0 MiB" (not "1,024.0 KiB"), 999,999 is "1 M" (not "1e+03 K").


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < (1024 if unit == "B" else 1023.95):
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def si(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 999.5:
            return f"{n:.3g} {unit}" if unit else f"{n:.0f}"
        n /= 1000
    return f"{n:.3g} P" if abs(n) < 999.5 else f"{n:,.0f} P"


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _safe(text: str) -> str:
    """Text for a terminal: control characters (escape sequences, BEL, NUL), bidi controls
    and other unprintable characters shown escaped, never raw. Values are shown escaped
    already (``spec_text``); this covers the rest, such as the spec's file name."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 3)] + "..." if width >= 4 else text[:width]


def format_text(s: Summary, width: int = 100) -> str:
    """The summary as aligned columns for a terminal ``width`` characters wide; only the
    call column (block and arguments) is cut short to fit."""
    # The network's call, wrapped between its arguments (never inside a list) to fit the width.
    head = [f"{_safe(s.spec)}: network {s.network}("]
    items = [f"{k}={spec_text(v)}" for k, v in s.arguments.items()]
    for i, item in enumerate(items):
        # (A network always has an argument: its input.) The closing parenthesis must fit too.
        item += ", " if i < len(items) - 1 else ")"
        if len(head[-1]) + len(item.rstrip()) > width and head[-1].strip():
            head[-1] = head[-1].rstrip()
            head.append("    ")
        head[-1] += item
    outs = ", ".join(f"{_safe(k)} {_shape(v)}" for k, v in s.outputs.items())
    head.append(f"input {_shape(s.input)} -> " + (f"outputs {outs}" if outs else f"output {_shape(s.output)}")
                + f"; activations for batch {s.batch} in {s.dtype}, MACs per sample")
    cols = ["scope", "block / op", "output", "params", "MACs", "activations"]
    body = [[_safe(r.scope), _safe(r.call), _shape(r.output), f"{r.params:,}", si(r.macs),
             human_bytes(r.activation_bytes)] for r in s.rows]
    t = s.total
    total = ["total", f"{t.nodes:,} nodes", f"{len(s.outputs)} outputs" if s.outputs else _shape(s.output),
             f"{t.params:,}", si(t.macs),
             human_bytes(t.activation_bytes)]
    table = [cols] + body + [total]
    w = [max(len(r[i]) for r in table) for i in range(len(cols))]
    gap = 2
    fixed = sum(w) - w[1] + gap * (len(cols) - 1)
    w[1] = max(min(w[1], width - fixed), min(w[1], 12))
    right = {3, 4, 5}

    def line(cells: list[str]) -> str:
        parts = []
        for i, c in enumerate(cells):
            c = _cut(c, w[i]) if i == 1 else c
            parts.append(c.rjust(w[i]) if i in right else c.ljust(w[i]))
        return (" " * gap).join(parts).rstrip()

    rule = "-" * min(width, sum(w) + gap * (len(cols) - 1))
    out = head + [""] + [line(cols), rule] + [line(r) for r in body] + [rule, line(total)]
    if s.depth is not None and any(r.level >= s.depth and r.kind in ("block", "group") for r in s.rows):
        out.append(f"(rows to depth {s.depth}; --depth N shows more)")
    out += ["", "before and after the passes:"]
    stage_rows = [["stage", "nodes", "params", "MACs", "activations"]]
    for name, f in s.stages:
        stage_rows.append([name, f"{f.nodes:,}", f"{f.params:,}", si(f.macs), human_bytes(f.activation_bytes)])
    sw = [max(len(r[i]) for r in stage_rows) for i in range(5)]
    for r in stage_rows:
        out.append("  " + (" " * gap).join(c.ljust(sw[i]) if i == 0 else c.rjust(sw[i]) for i, c in enumerate(r)))
    for p in s.passes:
        out.append("  " + _cut(_safe(p), max(20, width - 2)))
    return "\n".join(out) + "\n"
