"""Random udnet programs, shared by the property tests and the fuzzing suite.

``ProgramGen`` writes random spec source text: blocks that call earlier blocks, recursive
(fractal) blocks, blocks with two tensor inputs and blocks with named outputs, ``for``
loops, ``if``/``else``, labelled groups, dotted labels (module lists), residual sums (with
a projection where the shape changes), channel concats, highway gates, fractal joins and
channel slices, networks that return named outputs, with random widths, strides and
input sizes.

* The well-formed generator (``ok=True``) guards every shape-dependent step (``if height >= 2``,
  projections, widths read from ``channels``), so almost all of its programs elaborate.
* The ill-formed generator (``ok=False``) drops those guards and projections, picks arbitrary
  slice bounds, kernels, labels and argument counts; ``mutated_programs`` damages well-formed text.

For the fuzzing suite (tests/test_fuzz.py) there are more sources of damaged input:
``Mutator`` edits spec text by token and by line (every spec in specs/ is mutated),
``TokenStream`` strings random grammar tokens together, and ``HostileGen`` writes specs
meant to run away (deep nesting, exponential recursion, growing values, huge sizes).

Choices come from Hypothesis draws (``HypothesisChoices``, shrinkable) or a seeded RNG
(``RandomChoices``: fixed samples, and the long fuzz run in benchmarks/fuzz_long.py).

``check_program`` is the property every generated or mutated input must satisfy:
``build_ir`` either returns a verified IR or raises a located ``UdnetError``; never any other
exception. With ``emit=True`` a successful IR also goes through the PyTorch source emitter,
whose output must compile as Python.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from hypothesis import strategies as st

from udnet.errors import Source, UdnetError, UsageError
from udnet.ir.verify import verify
from udnet.limits import Limits
from udnet.pipeline import build_ir

# ---------------------------------------------------------------------------
# Choice sources: Hypothesis draws (shrinkable) or a seeded RNG (a fixed sample).


class HypothesisChoices:
    def __init__(self, draw):
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def chance(self, p: float) -> bool:
        # integers shrink towards lo, so "no" (the simpler program) is the shrink target
        return self.draw(st.integers(0, 99)) < int(p * 100)


class RandomChoices:
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
        self.blocks: list[tuple[str, str]] = []  # (name, kind): "plain", "fractal", "pair" or "taps"
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
        if self.c.chance(0.2):  # into a module list: l5.0, l5.{i0}, l5.n{i0}_{i1}
            if len(self.loop_vars) == 1:
                return f"{base}.{{{self.loop_vars[0]}}}: "
            return f"{base}.n" + "_".join(f"{{{v}}}" for v in self.loop_vars) + ": "
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
        kinds = ["op", "op", "residual", "projection", "concat", "gate", "join", "slice", "pool", "assign", "product"]
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
                "relu6",
                "silu",
                'gelu(approximate = "tanh")',
                "hardswish",
                "hardsigmoid",
                "leaky_relu(0.1)",
                "softmax",
                "frozen_bn",
                "groupnorm(1)",
                "layernorm(eps = 1e-6)",
                "drop_path(0.2)",
                "channel_shuffle(1)",
                f"conv_transpose({self.width()}, 3, pad = 1)",
            ]
        )
        return [self.label() + op]

    def s_pool(self, depth):
        pool = self.c.pick(["maxpool(2)", "avgpool(2, stride = 2)", "maxpool(3, stride = 2, pad = 1)", "upsample(2)",
                            "upsample(1.5)", 'upsample(size = [4, 6], mode = "bilinear", align_corners = true)',
                            "adaptive_avgpool(2)", "adaptive_maxpool([1, 2])",
                            f"conv_transpose({self.width()}, 2, stride = 2)"])
        grows = pool.startswith(("upsample", "conv_transpose"))
        guard = "height <= 16" if grows else "height >= 2 and width >= 2"
        stmt = self.label() + pool
        if self.ok or self.c.chance(0.5):
            return [f"if {guard} {{ {stmt} }}"]
        return [stmt]

    def s_residual(self, depth):
        return [f"x = x + (x |> {self.same_chain()})"]

    def s_product(self, depth):
        """Channel or spatial attention: the tensor times a gate that broadcasts over it."""
        gate = self.c.pick(["gap(keep = true) |> conv(channels, 1) |> sigmoid", "gap |> linear(channels) |> hardsigmoid",
                            "conv(1, 1) |> sigmoid", "relu"])
        if not self.ok and self.c.chance(0.3):
            gate = self.c.pick(["gap |> linear(max(1, channels // 2))", "conv(2, 1)", "maxpool(2)"])
        return [f"x = x * (x |> {gate})"]

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
        if kind == "pair":  # two tensor inputs
            tensors = self.c.pick(["(x, x)", f"(x, x |> conv({self.width()}, 1))", "(x, x |> relu)"])
            if not self.ok and self.c.chance(0.3):
                tensors = self.c.pick(["x", "(x, x, x)", "(x, 2)"])
            return [f"x = {tensors} |> {self.label()}{name}({self.width()})"]
        if kind == "taps":  # named outputs
            o = self.fresh("o")
            pick = self.c.pick([f"{o}.a ++ {o}.b", f'{o}["a"]', f"{o}.b", f"{o}.a + {o}.a"])
            if not self.ok and self.c.chance(0.3):
                pick = self.c.pick([f"{o}.c", f"{o}", "x.a", f"{o}[0]"])
            return [f"{o} = x |> {self.label()}{name}({self.width()})", f"x = {pick}"]
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
                    "x = (x, x) |> relu",
                    "x = x.a",
                    "return {a: x, a: x}",
                    "return {a: 3}",
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
        if self.c.chance(0.2):  # two tensor inputs, concatenated at the end
            self.blocks.append((name, "pair"))
            join = "++" if self.ok or self.c.chance(0.5) else "+"
            return (f"block {name}(w)(x, skip) {{\n    y = x |> {self.any_chain()}\n"
                    f"    return (y {join} skip) |> {self.same_chain()}\n}}\n")
        if self.c.chance(0.15):  # named outputs
            self.blocks.append((name, "taps"))
            return f"block {name}(w) {{\n    a = x |> conv(w, 3, pad = 1) |> relu\n    return {{a: a, b: x}}\n}}\n"
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
        named = self.c.chance(0.2)  # named outputs: the features before the head, and its result
        if named:
            body.append("features = x")
        if head:
            body += head.split("\n")
        if named:
            body.append(self.c.pick(["return {features: features, out: x}", "return {0: x, 1: features, 2: x}"]))
        parts.append(f"network Net(classes = 10, input = {shape}) {{\n" + "\n".join(self.indent(body)) + "\n}\n")
        return "\n".join(parts)


@st.composite
def wellformed_programs(draw) -> str:
    return ProgramGen(HypothesisChoices(draw), ok=True).program()


@st.composite
def illformed_programs(draw) -> str:
    return ProgramGen(HypothesisChoices(draw), ok=False).program()


TOKENS = [
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
    text = ProgramGen(HypothesisChoices(draw), ok=True).program()
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = min(len(text), i + draw(st.integers(0, 8)))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "swap-lines", "digit"]))
        if edit == "delete":
            text = text[:i] + text[j:]
        elif edit == "insert":
            text = text[:i] + " " + draw(st.sampled_from(TOKENS)) + " " + text[i:]
        elif edit == "replace":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[j:]
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
# Spec mutation and random token streams (the fuzzing suite).

#: The specs in specs/, mutated by the fuzzers.
SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
SPEC_FILES = sorted(SPECS_DIR.glob("*.ud"))

#: A lexer good enough to mutate by token: every character lands in exactly one token.
TOKEN_RE = re.compile(
    r"""(?P<ws>[ \t]+)|(?P<nl>\r?\n)|(?P<comment>\#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*")"""
    r"""|(?P<number>\d+(?:_\d+)*(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<op>\|>|\+\+|\.\.|//|\*\*|==|!=|<=|>=|[-+*/%<>=()\[\]{}:,;.])|(?P<other>.)""",
    re.DOTALL,
)

#: Every terminal of the grammar and then some: keywords, operators, ops, built-ins, literals.
GRAMMAR_TOKENS = (
    "block network for in if then else return assert and or not true false x channels height width shape "
    "conv bn relu sigmoid tanh elu maxpool avgpool gap linear dropout flatten identity upsample gate join "
    "len min max abs int float round sum { } ( ) [ ] : , ; = == != < <= > >= + ++ - * / // % ** |> .. . "
    "0 1 2 3 7 16 64 -1 0.5 2.5 1e3 1e308 99999999 4611686018427387904 "
    '"s" "nearest" "" "\\"" a: l{i}: {1}: features: # \\ \' @ $ ` ? ! & ^ ~ |'
).split(" ") + ["\n", "\t", "x |> conv(4, 3)", "x = x + x", "x = x ++ x", "return x", "{ relu }"]

#: Replacement values for a number: zero, negative, huge, non-integer.
NUMBERS = (
    "0", "-1", "-64", "0.0", "0.5", "2.5", "1e-9", "1e308", "1e309", "31", "4096", "65536", "1048577",
    str(2**31 - 1), str(2**31), str(2**40), str(2**62), str(2**62 + 1), "1" + "0" * 30, "9" * 400,
    "007", "1_000", "1.", ".5",
)  # fmt: skip

#: Characters that break naive lexers and line counting: controls, line separators other
#: than \n, bidi overrides, zero-width, BOM, non-BMP, combining marks, a lone surrogate.
NASTY_CHARS = (
    "\x00", "\x07", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x1c", "\x7f", "\x85", "\xa0", "\u00e9", "e\u0301",
    "\u2028", "\u2029", "\u200b", "\u200d", "\u202e", "\ufeff", "\uffff", "\u210c", "\U0001d538", "\U0001f600",
    "\ud800", "\udcff", "\u0430", "\u3000", "\uff5b", "\uff1a",
)  # fmt: skip

#: Raw bytes for the file path (decoding happens in udnet): invalid UTF-8 among them.
NASTY_BYTES = (
    b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf",
    b"\x80", b"\x00", b"\xef\xbb\xbf", b"\r", b"\x1a", b"\xf4\x90\x80\x80",
)  # fmt: skip

MUTATIONS = (
    "delete-token", "duplicate-token", "swap-tokens", "delete-line", "duplicate-line", "swap-lines",
    "number", "insert-token", "replace-name", "insert-char", "insert-random-char", "truncate",
)  # fmt: skip
GENTLE_MUTATIONS = ("number", "number", "replace-name", "duplicate-line", "delete-line", "swap-lines")


def tokenize(text: str) -> list[str]:
    return [m.group(0) for m in TOKEN_RE.finditer(text)]


class Mutator:
    """Damages spec text by token and by line. ``choices`` is HypothesisChoices or RandomChoices."""

    def __init__(self, choices):
        self.c = choices

    def mutate(self, text: str, n_min: int = 1, n_max: int = 4) -> str:
        # Half the time only edits that tend to keep the text parsable, so that the
        # elaborator and the emitter see damaged programs, not just the parser.
        kinds = GENTLE_MUTATIONS if self.c.chance(0.5) else MUTATIONS
        for _ in range(self.c.int(n_min, n_max)):
            text = self.once(text, self.c.pick(kinds))
        return text

    def once(self, text: str, kind: str) -> str:
        if kind.endswith("line") or kind.endswith("lines"):
            lines = text.split("\n")
            a, b = self.c.int(0, len(lines) - 1), self.c.int(0, len(lines) - 1)
            if kind == "delete-line":
                del lines[a]
            elif kind == "duplicate-line":
                lines.insert(a, lines[a])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            return "\n".join(lines)
        toks = tokenize(text)
        if not toks:
            return self.c.pick(GRAMMAR_TOKENS)
        # Mostly pick meaningful tokens: whitespace edits rarely matter.
        solid = [k for k, t in enumerate(toks) if not t.isspace() and t[0] != "#"] or [0]
        i = solid[self.c.int(0, len(solid) - 1)]
        j = solid[self.c.int(0, len(solid) - 1)]
        if kind == "delete-token":
            del toks[i]
        elif kind == "duplicate-token":
            toks.insert(i, toks[i])
        elif kind == "swap-tokens":
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "number":
            numbers = [k for k, t in enumerate(toks) if t[:1].isdigit()]
            if numbers:
                k = numbers[self.c.int(0, len(numbers) - 1)]
                toks[k] = self.c.pick(NUMBERS)
        elif kind == "insert-token":
            toks.insert(i, " " + self.c.pick(GRAMMAR_TOKENS) + " ")
        elif kind == "replace-name":
            names = [k for k, t in enumerate(toks) if t[:1].isalpha() or t[:1] == "_"]
            if names:
                k = names[self.c.int(0, len(names) - 1)]
                pool = sorted({t for t in toks if t[:1].isalpha()}) + ["x", "if", "for", "block", "conv", "nn"]
                toks[k] = self.c.pick(pool)
        elif kind == "insert-char":
            toks.insert(i, self.c.pick(NASTY_CHARS))
        elif kind == "insert-random-char":
            toks.insert(i, chr(self.c.int(0, 0x10FFFF)))
        elif kind == "truncate":
            return "".join(toks[:i])
        return "".join(toks)

    def mutate_bytes(self, data: bytes) -> bytes:
        for _ in range(self.c.int(1, 3)):
            i = self.c.int(0, len(data))
            if self.c.chance(0.5):
                data = data[:i] + self.c.pick(NASTY_BYTES) + data[i:]
            else:
                data = data[:i] + bytes([self.c.int(0, 255)]) + data[i + 1 :]
        return data


class TokenStream:
    """Random sequences of grammar tokens, alone or inside a network (to get past the header)."""

    def __init__(self, choices):
        self.c = choices

    def tokens(self, n_max: int = 40) -> str:
        toks = [self.c.pick(GRAMMAR_TOKENS) for _ in range(self.c.int(0, n_max))]
        return "".join(t + self.c.pick((" ", " ", "", "\n")) for t in toks)

    def program(self) -> str:
        form = self.c.int(0, 3)
        if form == 0:
            return self.tokens()
        body = self.tokens()
        if form == 1:
            return f"network N(input = [3, 8, 8]) {{\n{body}\n}}\n"
        if form == 2:
            return (
                f"block B(c = 4) {{\n{body}\n}}\nnetwork N(input = [3, 8, 8]) {{\n    B(4)\n    {self.tokens(8)}\n}}\n"
            )
        return f"network N(k = {self.tokens(4)}, input = [3, 8, 8]) {{\n    conv(k, 3)\n}}\n"


class HostileGen:
    """Specs built to run away: deep nesting, exponential recursion, growing values, huge
    sizes, recursion through groups, odd labels. Every one must stop at a limit (or work)."""

    SIZES = (0, 1, 2, 3, 7, 40, 99, 100, 101, 255, 256, 257, 1000, 10**5, 2**31, 2**62)

    def __init__(self, choices):
        self.c = choices

    def n(self) -> int:
        return self.c.pick(self.SIZES)

    def program(self) -> str:
        c, n = self.c, self.n
        net = "network N(input = [3, 8, 8]) {{\n    {}\n}}\n"
        d = min(n(), 3000)
        kind = c.int(0, 11)
        if kind == 0:  # brackets and prefix operators
            o, cl = c.pick([("(", ")"), ("[", "]"), ("-", ""), ("not ", ""), ("+", "")])
            return net.format(f"w = {o * d}1{cl * d}\n    relu")
        if kind == 1:  # blocks, groups and ifs inside each other
            o = c.pick(["g: {", "if true {", "{"])
            return net.format(o * min(d, 400) + " relu " + "}" * min(d, 400))
        if kind == 2:  # recursion through labelled groups
            g = min(n(), 80)
            groups = " ".join(f"a{i}: {{" for i in range(g))
            return (
                f"block R(n) {{\n    if n > 0 {{ {groups} conv(3, 1) |> R(n - 1) {'}' * g} }} else {{ relu }}\n}}\n"
                + net.format(f"R({n()})")
            )
        if kind == 3:  # exponential recursion
            return (
                "block F(C) {\n    if C <= 1 { return x |> conv(3, 1) }\n    return join(x |> F(C - 1) |> F(C - 1), x |> conv(3, 1))\n}\n"
                + net.format(f"F({n()})")
            )
        if kind == 4:  # growing lists
            grow = c.pick(["l = [l, l]", "l = l ++ l", "l = [l]", "l = l ++ [i]", "l = l + [l]"])
            return net.format(f"l = [1]\n    for i in 1..{n()} {{ {grow} }}\n    w = len(l)\n    relu")
        if kind == 5:  # growing strings, interpolated into labels
            return net.format(
                f's = "a"\n    for i in 1..{min(n(), 40)} {{ s = s + s }}\n    for i in 1..{n()} {{ {{s}}{{i}}: relu }}'
            )
        if kind == 6:  # huge or degenerate sizes
            op = c.pick(
                [
                    "conv({}, 3)",
                    "conv(4, {})",
                    "conv(4, 3, pad = {})",
                    "conv(4, 3, stride = {})",
                    "conv(4, 1, groups = {})",
                    "upsample({})",
                    "linear({})",
                    "maxpool({})",
                    "dropout({})",
                ]
            )
            pre = "gap\n    " if op.startswith("linear") else ""
            return net.format(pre + op.format(c.pick([str(n()), f"-{n()}", f"{n()}.5", "2**40", "true", "[2, 2**40]"])))
        if kind == 7:  # repeated growth of tensors
            step = c.pick(["upsample(2)", "x = x ++ x", "x = x + x", "conv(channels * 2, 1)", "x = x[:channels // 2]"])
            return net.format(f"for i in 1..{n()} {{ {step} }}")
        if kind == 8:  # loops
            return net.format(f"for i in 1..{n()} {{ layer{{i}}: relu }}")
        if kind == 9:  # ranges and huge numbers as values and block arguments
            v = c.pick([f"1..{n()}", f"{n()} ** {n()}", f"[{n()}] ++ (1..{n()})", f"sum(1..{n()})", f"-{n()}..{n()}"])
            return "block B(r) {\n    conv(len([r]) * 0, 1)\n}\n" + net.format(f"v = {v}\n    B({v})")
        if kind == 10:  # odd labels
            lab = c.pick(["{s}", "l{s}", "{1.5}", "{true}", "{-1}", "{2**62}", "__{s}__", "_{s}", "{s}{s}"])
            val = c.pick(['"a b"', '"class"', '"__init__"', '"é"', '""', '"1"', '"forward"', '"x" + "y"'])
            return net.format(f"s = {val}\n    {lab}: relu")
        # a chain that only the parser sees whole
        op = c.pick([" |> relu", " + 1", " ++ x", " else if false { relu }"])
        head = "x = x" if op != " + 1" else "w = 1"
        if op.startswith(" else"):
            return net.format("if false { relu }" + op * d + " else { relu }")
        return net.format(head + op * d)


def spec_text(path) -> str:
    return Path(path).read_text(encoding="utf-8")


@st.composite
def mutated_specs(draw, path) -> str:
    """The spec at ``path`` with 1-4 token and line mutations."""
    return Mutator(HypothesisChoices(draw)).mutate(spec_text(path))


@st.composite
def mutated_spec_bytes(draw) -> tuple[str, bytes]:
    """(spec name, its bytes with invalid UTF-8 and random bytes inserted)."""
    path = draw(st.sampled_from(SPEC_FILES))
    c = HypothesisChoices(draw)
    text = Mutator(c).mutate(spec_text(path), 0, 2)
    return path.name, Mutator(c).mutate_bytes(text.encode("utf-8", "surrogatepass"))


@st.composite
def token_streams(draw) -> str:
    return TokenStream(HypothesisChoices(draw)).program()


@st.composite
def hostile_programs(draw) -> str:
    return HostileGen(HypothesisChoices(draw)).program()


@st.composite
def mutated_generated_programs(draw) -> str:
    """A generated program (well- or ill-formed) damaged by the spec mutator."""
    c = HypothesisChoices(draw)
    text = ProgramGen(c, ok=c.chance(0.6)).program()
    return Mutator(c).mutate(text, 0, 3)


# ---------------------------------------------------------------------------
# The property.

# Keep runaway programs cheap: the limits are part of what is being exercised.
LIMITS = Limits(max_nodes=20_000, max_depth=40, max_steps=200_000)
#: Tighter still for the fuzzers (every spec in specs/ fits with room to spare).
FUZZ_LIMITS = Limits(max_nodes=4_000, max_depth=40, max_steps=40_000)

#: The first line of every located error: ``file:line:col: error: message``.
LOCATED = re.compile(r"^.+:\d+:\d+: error: \S")


def check_program(text: str | Source, limits: Limits = LIMITS, *, emit: bool = False, network=None, defines=None):
    """build_ir either gives a verified IR or raises UdnetError. Returns the IR or the error.

    Errors must be located (``file:line:col``) unless they are usage errors (a bad
    ``--network`` or ``-D``). With ``emit``, a successful IR is also emitted as PyTorch
    source, which must compile.
    """
    source = text if isinstance(text, Source) else Source("<fuzz>", text)
    try:
        ir = build_ir(source, network, defines, limits)
    except UdnetError as err:
        # The error must format like a compiler message (no exception from formatting itself).
        first = err.format().split("\n")[0]
        assert first
        if not isinstance(err, UsageError):
            assert err.span is not None and LOCATED.match(first), first
            # ... at a line that exists (the parser counts lines at \n only)
            assert 1 <= err.span.line <= err.span.source.text.count("\n") + 1, first
            assert err.span.col >= 1, first
        return err
    verify(ir)
    params = ir.param_count()
    assert isinstance(params, int) and not isinstance(params, bool) and params >= 0
    for _, out in ir.outputs():
        shape = ir.nodes[out]["shape"]
        assert isinstance(shape, tuple) and shape and all(isinstance(d, int) and d >= 0 for d in shape)
    assert ir.mac_count() >= 0
    if emit:
        from udnet.backends.pytorch.codegen import emit_module

        code = emit_module(ir, "fuzz.ud")
        compile(code, "<emitted model.py>", "exec")  # parses (ast) and passes the symbol table
    return ir


def sample(ok: bool, n: int = 60, start: int = 0) -> list[str]:
    """A fixed sample of ``n`` generated programs (seeds ``start`` .. ``start + n - 1``)."""
    return [ProgramGen(RandomChoices(seed), ok=ok).program() for seed in range(start, start + n)]
