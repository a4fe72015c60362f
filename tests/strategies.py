"""Program strategies that reach what the passes and the PyTorch backend do.

``ProgramGen`` (tests/programs.py) writes small random programs; across hundreds of
them almost none gets a shared concat buffer, a fused reader or a pruned node. ``RichGen``
adds the structures those depend on, mixed into the same random programs:

* dense chains ``x = x ++ f(x)`` whose layers start with BN-ReLU-conv1x1 (in a block or
  inline, optionally in a labelled group, optionally followed by a 1x1 transition), so
  share-concat plans a buffer and fuses its readers;
* DPN-style links that replace a head, ``x = (r + y[:bw]) ++ x[bw:] ++ y[bw:]``;
* dead branches (an unused binding, a dead reader of a dense chain), so prune removes something;
* fractal blocks whose joins have drop-path;
* convs and pools with per-axis kernels, strides and padding, ceil mode and count_pad;
* a block with two tensor inputs (``(x, skip) |> Merge(w)``), a block with named outputs
  (``o = x |> Taps(w)``, read as ``o.a``, ``o["b"]``), and networks that return named
  outputs (``return {features: f, logits: x}``), where a dense chain may be an output.

The contract: ``valid_programs()`` are well-formed by construction, and a property test
that draws one FAILS if it does not elaborate (a UdnetError there is a bug in udnet or in
the generator, never a reason to skip). ``invalid_programs()`` are valid programs with
one statement that is always an error; they must raise a located UdnetError.
``reached(ir, reports)`` names what a program exercised after the passes (for
``hypothesis.event`` and the coverage test).
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from programs import HypothesisChoices, ProgramGen

#: Blocks every rich program may call (not in ProgramGen.blocks: their signatures differ).
HELPERS = """\
block DenseLayer(k, bottleneck = true) {
    if bottleneck {
        bn
        relu
        conv(2 * k, 1)
    }
    bn
    relu
    conv(k, 3, pad = 1)
}

block DenseBlock(n, k) {
    for i in 1..n { x = x ++ (x |> layer{i}: DenseLayer(k)) }
}

block Dual(bw, inc) {
    res = x[:bw]
    y = x |> bn |> relu |> conv(bw + inc, 1) |> bn |> relu |> conv(bw + inc, 3, pad = 1)
    return (res + y[:bw]) ++ x[bw:] ++ y[bw:]
}

block Merge(w)(x, skip) {
    y = x |> conv(w, 1) |> bn
    return (y ++ skip) |> relu
}

block Taps(w) {
    a = x |> conv(w, 3, pad = 1) |> relu
    return {a: a, b: x |> bn}
}

block Frac(C, w, dl = 0.15, dg = 0.5) {
    if C <= 1 { return x |> conv(w, 3, pad = 1) |> bn |> relu }
    return join(x |> Frac(C - 1, w, dl, dg) |> Frac(C - 1, w, dl, dg),
                x |> conv(w, 3, pad = 1) |> bn |> relu, drop_local = dl, drop_global = dg)
}
"""


class RichGen(ProgramGen):
    """ProgramGen (well-formed) with dense chains, DPN links, dead code and drop-path."""

    def __init__(self, choices):
        super().__init__(choices, ok=True)

    def loop_suffix(self) -> str:
        return "".join(f"_{{{v}}}" for v in self.loop_vars)

    def inner_var(self) -> str:
        return f"j{len(self.loop_vars)}"

    def stmt(self, depth: int) -> list[str]:
        if self.c.chance(0.25):
            return getattr(self, "s_" + self.c.pick(["dense", "dense", "dpn", "dead", "fractal", "window", "streams"]))(
                depth)
        return super().stmt(depth)

    def s_dense(self, depth):
        n, k = self.c.int(2, 4), self.c.int(1, 4)
        form = self.c.int(0, 3)
        if form == 0:  # the block, called
            lines = [f"{self.fresh('dense')}{self.loop_suffix()}: DenseBlock({n}, {k})"]
        else:
            j = self.inner_var()
            layer = "bn |> relu |> conv({}, 1) |> bn |> relu |> conv({}, 3, pad = 1)".format(2 * k, k)
            if form == 1:  # layers as block instances
                layer = f"{self.fresh('layer')}{self.loop_suffix()}_{{{j}}}: DenseLayer({k}, {self.pick_bool()})"
            elif self.c.chance(0.3):  # a plain 3x3 reader: the buffer is read as a tensor
                layer = f"conv({k}, 3, pad = 1)"
            lines = [f"for {j} in 1..{n} {{ x = x ++ (x |> {layer}) }}"]
            if form == 3:  # in its own labelled group
                lines = [f"{self.fresh('g')}{self.loop_suffix()}: {{"] + self.indent(lines) + ["}"]
        if self.c.chance(0.5):  # a transition: a fused reader of the last link
            lines.append("x = x |> bn |> relu |> conv(max(1, channels // 2), 1)")
        return lines

    def pick_bool(self) -> str:
        return self.c.pick(["true", "false"])

    def s_dpn(self, depth):
        bw, inc, n = self.c.int(1, 4), self.c.int(1, 3), self.c.int(2, 3)
        j = self.inner_var()
        label = f"{self.fresh('dp')}{self.loop_suffix()}_{{{j}}}: "
        return [
            f"x = x |> bn |> relu |> conv({bw + 2 * inc}, 1)",
            f"for {j} in 1..{n} {{ x = x |> {label}Dual({bw}, {inc}) }}",
        ]

    def s_dead(self, depth):
        v = self.fresh("unused")
        kind = self.c.int(0, 2)
        if kind == 0:
            return [f"{v} = x |> conv({self.width()}, 3, pad = 1) |> relu"]
        if kind == 1:  # a dead reader of a dense chain (a fusable one)
            return ["x = x ++ (x |> conv(2, 1))", "x = x ++ (x |> conv(2, 1))",
                    f"{v} = x |> bn |> relu |> conv(3, 1)"]
        w = self.width()
        return [f"{v} = join(x |> conv({w}, 1), x |> conv({w}, 1))"]

    def s_fractal(self, depth):
        c, w = self.c.int(1, 3), self.c.int(1, 6)
        drop = self.c.pick(["", ", 0.0, 0.0", ", 0.3, 0.0", ", 0.15, 0.5"])
        return [f"x = x |> {self.label()}Frac({c}, {w}{drop})"]

    def s_streams(self, depth):
        """Several tensors into one block, and several out of one."""
        w, k = self.c.int(1, 6), self.c.int(1, 4)
        if self.c.chance(0.5):
            skip = self.c.pick(["x", f"x |> conv({k}, 1)", f"x |> bn |> relu |> conv({k}, 3, pad = 1)"])
            return [f"x = (x, {skip}) |> {self.label()}Merge({w})"]
        o = self.fresh("o")
        pick = self.c.pick([f"{o}.a ++ {o}.b", f'{o}["a"]', f"{o}.b + {o}.b", f"{o}.a"])
        return [f"{o} = x |> {self.label()}Taps({w})", f"x = {pick}"]

    def s_window(self, depth):
        """A conv or pool with its own kernel, stride and padding per axis, ceil mode and
        count_pad: the spatial shape rules, exercised where height and width differ."""
        kh, kw = self.c.int(1, 3), self.c.int(1, 3)
        sh, sw = self.c.int(1, 3), self.c.int(1, 3)
        op = self.c.pick(["conv", "maxpool", "avgpool"])
        if op == "conv":
            ph, pw = self.c.int(0, kh), self.c.int(0, kw)
            stmt = f"conv({self.width()}, [{kh}, {kw}], stride = [{sh}, {sw}], pad = [{ph}, {pw}])"
        else:
            ph, pw = self.c.int(0, kh // 2), self.c.int(0, kw // 2)
            ceil = "true" if self.c.chance(0.7) else "false"
            stmt = f"{op}([{kh}, {kw}], stride = [{sh}, {sw}], pad = [{ph}, {pw}], ceil = {ceil}"
            stmt += f", count_pad = {self.pick_bool()})" if op == "avgpool" else ")"
        return [f"if height >= {kh} and width >= {kw} {{ {self.label()}{stmt} }}"]

    def program(self) -> str:
        self.in_block = False
        parts = [self.block() for _ in range(self.c.int(0, 2))]
        self.in_block = False
        self.loop_vars = []
        c = self.c.int(1, 4)
        h, w = self.c.int(4, 9), self.c.int(4, 9)
        stmts = [self.stmt(1) for _ in range(self.c.int(1, 4))]
        # Make each structure likely in every program, not just somewhere in the sample.
        for kind, p in (("dense", 0.45), ("dpn", 0.3), ("dead", 0.4), ("fractal", 0.25), ("window", 0.6),
                        ("streams", 0.3)):
            if self.c.chance(p):
                stmts.insert(self.c.int(0, len(stmts)), getattr(self, "s_" + kind)(1))
        body = [f"stem: conv({self.c.int(1, 8)}, 3, pad = 1)"] + [line for s in stmts for line in s]
        head = self.c.pick(["gap\nclassifier: linear(classes)", "flatten\nlinear(classes)", "relu", ""])
        named = self.c.chance(0.3)  # named outputs: the features before the head, and the head's result
        if named:
            body.append("features = x")
        if head:
            body += head.split("\n")
        if named:
            body.append(self.c.pick(["return {features: features, logits: x}", "return {0: x, 1: features}"]))
        parts.append(f"network Net(classes = 5, input = [{c}, {h}, {w}]) {{\n" + "\n".join(self.indent(body)) + "\n}\n")
        return HELPERS + "\n" + "\n".join(parts)


def _statement_starts(body: list[str]) -> list[int]:
    """Indices of body lines that start a top-level statement (not inside braces)."""
    starts, depth = [], 0
    for i, line in enumerate(body):
        if depth == 0:
            starts.append(i)
        depth += line.count("{") - line.count("}")
    return starts


@st.composite
def valid_programs(draw) -> str:
    """A well-formed program (must elaborate) reaching buffers, fused readers, pruning, drop-path."""
    return RichGen(HypothesisChoices(draw)).program()


#: Statements that are an error wherever they stand in a network body.
ALWAYS_WRONG = (
    "cnov(4, 3)",
    "conv(4)",
    "conv(4, 3, padding = 1)",
    "gate(x, x)",
    "relu(1)",
    "w = nothing_here",
    'assert false, "planted"',
    "x = x[3:1]",
    "conv(0, 1)",
    "dropout(1.0)",
    "join()",
)


@st.composite
def invalid_programs(draw) -> tuple[str, str]:
    """(program, the planted statement): a valid program with one statement that is always an error."""
    text = draw(valid_programs())
    wrong = draw(st.sampled_from(ALWAYS_WRONG))
    head, _, net = text.rpartition("network Net(")
    lines = net.split("\n")
    body = lines[1:-2]  # between the header and the closing brace
    ends = [] if body and body[-1].strip().startswith("return") else [len(body)]  # never after a return
    at = draw(st.sampled_from(_statement_starts(body) + ends))
    body[at:at] = ["    " + wrong]
    return head + "network Net(" + "\n".join(lines[:1] + body + lines[-2:]), wrong


def reached(ir, reports) -> set[str]:
    """What the optimised IR exercises: shared buffers, heads, fused readers, pruning, drop-path."""
    out = set()
    buffers = ir.graph.get("buffers", [])
    if buffers:
        out.add("shared buffer")
    if any(ir.nodes[b.links[0]].get("head") for b in buffers):
        out.add("replaced head")
    if any(d.get("fuse") is not None for _, d in ir.nodes(data=True)):
        out.add("fused reader")
    for r in reports:
        for line in r.lines:
            m = re.match(r"removed (\d+) node", line)
            if m and int(m.group(1)):
                out.add("pruned")
    if any(d["op"] == "join" and (d["attrs"]["drop_local"] or d["attrs"]["drop_global"]) for _, d in ir.nodes(data=True)):
        out.add("drop-path")
    if ir.named_outputs():
        out.add("named outputs")
    if any(scope.inputs for scope in ir.graph["scopes"].values()):
        out.add("several inputs")
    return out
