"""Property tests over generated programs.

A generator writes random spec source text: blocks that call earlier blocks, recursive
(fractal) blocks, ``for`` loops, ``if``/``else``, labelled groups, residual sums (with a
projection where the shape changes), channel concats, highway gates, fractal joins and
channel slices, with random widths, strides and input sizes.

* The well-formed generator guards every shape-dependent step (``if height >= 2``,
  projections, widths read from ``channels``), so almost all of its programs elaborate.
* The ill-formed generator drops those guards and projections, picks arbitrary slice
  bounds, kernels, labels and argument counts; the mutator damages well-formed text.

The property for every program: ``build_ir(text)`` either returns an IR that passes
``verify`` or raises ``UdnetError``; never any other exception.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from udnet.elaborate.elaborator import Limits
from udnet.errors import UdnetError
from udnet.ir.verify import verify
from udnet.pipeline import build_ir

# ---------------------------------------------------------------------------
# Choice sources: Hypothesis draws (shrinkable) or a seeded RNG (a fixed sample).


class _HypothesisChoices:
    def __init__(self, draw):
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def chance(self, p: float) -> bool:
        # integers shrink towards lo, so "no" (the simpler program) is the shrink target
        return self.draw(st.integers(0, 99)) < int(p * 100)


class _RandomChoices:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def pick(self, options):
        return self.rng.choice(list(options))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


# ---------------------------------------------------------------------------
# The program generator.


class ProgramGen:
    """Writes one random spec. ``ok=False`` leaves out guards and projections."""

    MAX_DEPTH = 3  # statement nesting (loops, ifs, groups)

    def __init__(self, choices, ok: bool = True):
        self.c = choices
        self.ok = ok
        self.n = 0  # fresh names and labels
        self.blocks: list[tuple[str, str]] = []  # (name, kind): kind "plain" or "fractal"
        self.loop_vars: list[str] = []  # loop variables of the definition being written

    # -- helpers --

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def width(self) -> str:
        """A channel count: a literal 1..16, a parameter, or one read from the tensor."""
        if not self.ok and self.c.chance(0.1):
            return self.c.pick(["0", "-1", "2.5", "true", '"w"', "[4]", "channels - channels"])
        kind = self.c.int(0, 3)
        if kind == 0 or not self.in_block:
            return str(self.c.int(1, 16))
        if kind == 1:
            return "w"
        if kind == 2:
            return "channels"
        return "min(16, max(1, channels // 2 + w))"

    def stride(self) -> str:
        if not self.ok and self.c.chance(0.1):
            return self.c.pick(["0", "3", "[1, 2]", "[2]"])
        if self.in_block and self.c.chance(0.3):
            return "s"
        return str(self.c.int(1, 2))

    def label(self) -> str:
        """A label unique in its scope: loop variables of this definition are interpolated."""
        if not self.ok and self.c.chance(0.05):
            return self.c.pick(["dup: ", "forward: ", "__call__: ", "1x: ", "l{1.5}: ", "l{none}: "])
        if not self.c.chance(0.5):
            return ""
        base = self.fresh("l")
        return base + "".join(f"_{{{v}}}" for v in self.loop_vars) + ": "

    def indent(self, lines: list[str]) -> list[str]:
        return ["    " + line for line in lines]

    # -- shape-preserving stage chains (for residual branches, gates) --

    def same_chain(self) -> str:
        parts = []
        for _ in range(self.c.int(1, 3)):
            parts.append(
                self.c.pick(
                    ["conv(channels, 3, pad = 1)", "conv(channels, 1)", "bn", "relu", "tanh", "elu", "identity"]
                )
            )
        return " |> ".join(parts)

    def any_chain(self) -> str:
        """Stages that may change the width (never the spatial size in ok mode)."""
        w = self.width()
        parts = [self.c.pick([f"conv({w}, 3, pad = 1)", f"conv({w}, 1)", f"conv({w}, [1, 3], pad = [0, 1])"])]
        if not self.ok and self.c.chance(0.3):
            parts = [self.c.pick([f"conv({w}, 3)", f"conv({w}, 5, stride = 2)", "maxpool(2)", "gap", "linear(4)"])]
        for _ in range(self.c.int(0, 2)):
            parts.append(self.c.pick(["bn", "relu", "sigmoid", "dropout(0.1)"]))
        return " |> ".join(parts)

    # -- statements --

    def body(self, depth: int, n_min: int = 1, n_max: int = 3) -> list[str]:
        lines = []
        for _ in range(self.c.int(n_min, n_max)):
            lines += self.stmt(depth)
        return lines

    def stmt(self, depth: int) -> list[str]:
        kinds = ["op", "op", "residual", "projection", "concat", "gate", "join", "slice", "pool", "assign"]
        if self.blocks:
            kinds += ["call", "call"]
        if depth < self.MAX_DEPTH:
            kinds += ["for", "if", "group"]
        if not self.ok:
            kinds += ["bad"]
        return getattr(self, "s_" + self.c.pick(kinds))(depth)

    def s_op(self, depth):
        op = self.c.pick(
            [
                f"conv({self.width()}, 3, stride = {self.stride()}, pad = 1)",
                f"conv({self.width()}, 1)",
                f"conv({self.width()}, 3, pad = 2, dilation = 2)",
                "bn",
                "relu",
                "sigmoid",
                "tanh",
                "elu(alpha = 0.5)",
                "dropout(0.2)",
                "identity",
            ]
        )
        return [self.label() + op]

    def s_pool(self, depth):
        pool = self.c.pick(["maxpool(2)", "avgpool(2, stride = 2)", "maxpool(3, stride = 2, pad = 1)", "upsample(2)"])
        guard = "height <= 16" if pool.startswith("upsample") else "height >= 2 and width >= 2"
        stmt = self.label() + pool
        if self.ok or self.c.chance(0.5):
            return [f"if {guard} {{ {stmt} }}"]
        return [stmt]

    def s_residual(self, depth):
        return [f"x = x + (x |> {self.same_chain()})"]

    def s_projection(self, depth):
        y, w, s = self.fresh("y"), self.width(), self.stride()
        lines = [f"{y} = x |> conv({w}, 3, stride = {s}, pad = 1) |> bn |> relu"]
        if self.ok or self.c.chance(0.5):
            lines.append(f"x = {y} + (x |> conv({w}, 1, stride = {s}) |> bn)")
        else:  # deliberately no projection: fails unless the shapes happen to agree
            lines.append(f"x = x + {y}")
        return lines

    def s_concat(self, depth):
        k = self.c.int(1, 3)
        branches = " ++ ".join(f"(x |> {self.any_chain()})" for _ in range(k))
        return [f"x = x ++ {branches}"]

    def s_gate(self, depth):
        h, t = self.fresh("h"), self.fresh("t")
        w = "channels" if self.ok else self.width()
        return [
            f"{h} = x |> conv({w}, 3, pad = 1, bias = true) |> relu",
            f"{t} = x |> conv(channels, 3, pad = 1, bias = true, bias_init = -2) |> sigmoid",
            f"x = gate({h}, x, {t})",
        ]

    def s_join(self, depth):
        w = self.width()
        cols = []
        for _ in range(self.c.int(1, 3)):
            col = self.c.pick([f"conv({w}, 3, pad = 1) |> relu", f"conv({w}, 1)", f"conv({w}, 3, pad = 1) |> bn"])
            if not self.ok and self.c.chance(0.2):
                col = f"conv({self.width()}, 1)"
            cols.append(f"x |> {col}")
        drop = self.c.pick(["", ", drop_local = 0.15", ", drop_local = 0.1, drop_global = 0.5"])
        return [f"x = join({', '.join(cols)}{drop})"]

    def s_slice(self, depth):
        if self.ok:
            form = self.c.pick(
                [
                    "x = x[:max(1, channels // 2)]",
                    "x = x[channels // 2:]",
                    "x = x[0:channels]",
                    "x = x[-max(1, channels // 3):]",
                    # DPN-style split: residual part summed, dense part concatenated
                    (
                        "x = (x[:max(1, channels // 2)] + (x[:max(1, channels // 2)] |> conv(max(1, channels // 2), 1)))"
                        " ++ x[max(1, channels // 2):]"
                    ),
                ]
            )
            return [form]
        a, b = self.c.int(-20, 20), self.c.int(-20, 20)
        return [self.c.pick([f"x = x[{a}:{b}]", f"x = x[:{b}]", f"x = x[{a}:]", f"x = x[{a}]"])]

    def s_assign(self, depth):
        v = self.fresh("v")
        expr = self.c.pick(["channels * 2", "len([1, 2, 3])", "max(1, channels // 2)", "(1..4)[2]", "int(2.7)"])
        if not self.ok and self.c.chance(0.3):
            expr = self.c.pick(["1 // 0", "undefined_name", "channels + true", '"a" * 2', "[1][5]", "2 ** 100"])
        return [f"{v} = {expr}", f'assert {v} >= 0, "{v} is negative"']

    def s_call(self, depth):
        name, kind = self.c.pick(self.blocks)
        if kind == "fractal":
            args = f"{self.c.int(1, 3)}, {self.width()}"
        else:
            args = self.width()
            if self.c.chance(0.5):
                args += f", s = {self.stride()}"
        if not self.ok and self.c.chance(0.2):
            args = self.c.pick(["", "1, 2, 3, 4", "q = 1", "x"])
        if self.c.chance(0.5):
            return [f"{self.label()}{name}({args})"]
        return [f"x = x |> {self.label()}{name}({args})"]

    def s_for(self, depth):
        v = f"i{len(self.loop_vars)}"
        hi = self.c.int(0, 3)
        self.loop_vars.append(v)
        try:
            inner = self.body(depth + 1)
        finally:
            self.loop_vars.pop()
        if self.c.chance(0.7):
            it = f"1..{hi}"
        else:  # a list of distinct values, so interpolated labels stay unique
            values, val = [], 0
            for _ in range(hi):
                val += self.c.int(1, 3)
                values.append(str(val))
            it = "[" + ", ".join(values) + "]"
        if not self.ok and self.c.chance(0.1):
            inner = [line.replace("_{" + v + "}", "") for line in inner]  # duplicate labels
        return [f"for {v} in {it} {{"] + self.indent(inner) + ["}"]

    def s_if(self, depth):
        cond = self.c.pick(["channels > 4", "height >= 4", "channels % 2 == 0", "true", "not (width < 3)"])
        if not self.ok and self.c.chance(0.2):
            cond = self.c.pick(["channels", "1", '"yes"'])
        lines = [f"if {cond} {{"] + self.indent(self.body(depth + 1)) + ["}"]
        if self.c.chance(0.5):
            lines[-1] = "} else {"
            lines += self.indent(self.body(depth + 1)) + ["}"]
        return lines

    def s_group(self, depth):
        label = self.label()
        if not label:
            label = self.fresh("g") + "".join(f"_{{{v}}}" for v in self.loop_vars) + ": "
        inner = self.body(depth + 1)
        if self.c.chance(0.5):
            return [f"{label}{{"] + self.indent(inner) + ["}"]
        # a group applied with |> and assigned
        return [f"x = x |> {label}{{"] + self.indent(inner) + ["}"]

    def s_bad(self, depth):
        return [
            self.c.pick(
                [
                    "linear(10)",
                    "conv(4, 99)",
                    "cnov(4, 3)",
                    "conv(4)",
                    "conv(4, 3, padding = 1)",
                    "gate(x, x)",
                    "x = x * x",
                    "x |> relu",
                    "x = x + 1",
                    "x = 3",
                    "relu(1)",
                    "maxpool(2, pad = 2)",
                    "conv(4, 3, groups = 3)",
                    "return join()",
                    "w = nothing_here",
                    "assert false",
                ]
            )
        ]

    # -- definitions --

    def block(self) -> str:
        name = self.fresh("B")
        self.in_block = True
        self.loop_vars = []
        if self.blocks and self.c.chance(0.25) or (not self.blocks and self.c.chance(0.15)):
            # FractalNet: f1 = conv, f_{C+1} = join(f_C(f_C(z)), conv(z)); nested joins merge
            text = (
                f"block {name}(C, w) {{\n"
                f"    if C <= 1 {{ return x |> conv(w, 3, pad = 1) |> bn |> relu }}\n"
                f"    return join(x |> {name}(C - 1, w) |> {name}(C - 1, w),\n"
                f"                x |> conv(w, 3, pad = 1) |> bn |> relu)\n"
                f"}}\n"
            )
            if not self.ok and self.c.chance(0.3):
                text = text.replace("C <= 1", "C <= 0 - 100")  # no reachable base case
            self.blocks.append((name, "fractal"))
            return text
        lines = self.body(1, 1, 4)
        if self.c.chance(0.3):
            lines.append(f"return x |> {self.same_chain()}")
        self.blocks.append((name, "plain"))
        return f"block {name}(w, s = 1) {{\n" + "\n".join(self.indent(lines)) + "\n}\n"

    def program(self) -> str:
        self.in_block = False
        parts = [self.block() for _ in range(self.c.int(0, 3))]
        self.in_block = False
        self.loop_vars = []
        c = self.c.int(1, 4) if self.c.chance(0.3) else 3
        h, w = self.c.int(8, 16), self.c.int(8, 16)
        shape = f"[{c}, {h}, {w}]"
        if not self.ok and self.c.chance(0.1):
            shape = self.c.pick(["[3, 8]", "[0, 8, 8]", "[3, 8, 8.5]", "3", "[16]"])
        body = [f"stem: conv({self.c.int(1, 16)}, 3, pad = 1)"] + self.body(1, 1, 5)
        head = self.c.pick(["gap\nclassifier: linear(classes)", "flatten\nlinear(classes)", "relu", ""])
        if head:
            body += head.split("\n")
        parts.append(f"network Net(classes = 10, input = {shape}) {{\n" + "\n".join(self.indent(body)) + "\n}\n")
        return "\n".join(parts)


@st.composite
def wellformed_programs(draw) -> str:
    return ProgramGen(_HypothesisChoices(draw), ok=True).program()


@st.composite
def illformed_programs(draw) -> str:
    return ProgramGen(_HypothesisChoices(draw), ok=False).program()


_TOKENS = [
    "x",
    "y",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    "=",
    "==",
    "+",
    "++",
    "-",
    "*",
    "//",
    "|>",
    "..",
    "for",
    "in",
    "if",
    "else",
    "return",
    "block",
    "network",
    "conv",
    "relu",
    "gap",
    "join",
    "gate",
    "channels",
    "0",
    "1",
    "-1",
    "99999",
    "2.5",
    "true",
    '"s"',
    "\n",
    "a:",
    "l{i}:",
    "#",
    "\\",
    "'",
]


@st.composite
def mutated_programs(draw) -> str:
    """A well-formed program with a few random edits: deletions, insertions, replacements."""
    text = ProgramGen(_HypothesisChoices(draw), ok=True).program()
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = min(len(text), i + draw(st.integers(0, 8)))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "swap-lines", "digit"]))
        if edit == "delete":
            text = text[:i] + text[j:]
        elif edit == "insert":
            text = text[:i] + " " + draw(st.sampled_from(_TOKENS)) + " " + text[i:]
        elif edit == "replace":
            text = text[:i] + draw(st.sampled_from(_TOKENS)) + text[j:]
        elif edit == "digit":
            k = next((m for m in range(i, len(text)) if text[m].isdigit()), None)
            if k is not None:
                text = text[:k] + str(draw(st.sampled_from([0, 1, 2, 7, 64, 100000, 10**30]))) + text[k + 1 :]
        else:
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


# ---------------------------------------------------------------------------
# The property.

# Keep runaway programs cheap: the limits are part of what is being exercised.
LIMITS = Limits(max_nodes=20_000, max_depth=40, max_steps=200_000)


def check_program(text: str):
    """build_ir either gives a verified IR or raises UdnetError. Returns the IR or the error."""
    try:
        ir = build_ir(text, limits=LIMITS)
    except UdnetError as err:
        # The error must format like a compiler message (no exception from formatting itself).
        assert err.format().split("\n")[0]
        return err
    verify(ir)
    params = ir.param_count()
    assert isinstance(params, int) and not isinstance(params, bool) and params >= 0
    shape = ir.nodes[ir.output_node]["shape"]
    assert isinstance(shape, tuple) and shape and all(isinstance(d, int) and d >= 0 for d in shape)
    assert ir.mac_count() >= 0
    return ir


COMMON = {
    "deadline": None,
    "derandomize": True,  # a fixed sample in CI; run with more examples locally to hunt
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "database": None,
}


@settings(max_examples=250, **COMMON)
@given(wellformed_programs())
def test_wellformed_programs_elaborate_or_fail_cleanly(text):
    check_program(text)


@settings(max_examples=250, **COMMON)
@given(illformed_programs())
def test_illformed_programs_fail_cleanly(text):
    check_program(text)


@settings(max_examples=250, **COMMON)
@given(mutated_programs())
def test_mutated_programs_fail_cleanly(text):
    check_program(text)


def _sample(ok: bool, n: int = 60) -> list[str]:
    return [ProgramGen(_RandomChoices(seed), ok=ok).program() for seed in range(n)]


def test_wellformed_generator_mostly_succeeds():
    """The well-formed generator is not trivially failing: most of a fixed sample elaborates."""
    results = [check_program(t) for t in _sample(ok=True)]
    failures = [r for r in results if isinstance(r, UdnetError)]
    ok = len(results) - len(failures)
    assert ok / len(results) > 0.8, Counter(f.message for f in failures).most_common(5)
    # ... and the sample really exercises the connection kinds the generator writes.
    ops = Counter(d["op"] for ir in results if not isinstance(ir, UdnetError) for _, d in ir.nodes(data=True))
    for op in ("conv", "add", "concat", "gate", "join", "slice"):
        assert ops[op] > 0, ops


def test_illformed_generator_fails_often():
    """The ill-formed generator does produce errors (and still only UdnetError)."""
    results = [check_program(t) for t in _sample(ok=False)]
    assert sum(isinstance(r, UdnetError) for r in results) >= len(results) // 4
