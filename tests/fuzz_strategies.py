"""Fuzz strategies aimed at the emitted module and at value semantics (hardening).

tests/programs.py damages specs and checks that udnet only ever answers with a located
``UdnetError``. The generators here write specs that udnet accepts and then check what
it made of them:

* ``NameClashGen``: generated programs whose labels, block names, block parameters and
  variables are drawn from the emitter's own vocabulary (``emitter_vocabulary``: the
  identifiers the PyTorch emitter writes for the specs in specs/ and for a few generated
  programs, and, per program, those it writes for that very program), so that user names
  land on the names the emitter invents (``self.join``, a slot parameter ``conv1_out``, a
  loop count ``self.n``, ``relu_1``, ...).
* ``ExtremeArgGen``: one op (every op of ``udnet.ops.OPS`` and the join) with one or
  more arguments at a numeric extreme of its kind (zero, negative, 1e308, 5e-324, 2**62, ...).
* ``IdentityGen``: networks whose output is their input (``identity``, an empty body,
  ``join(x)``, empty groups and blocks, dead branches that the passes prune).
* ``MembershipGen``: assertions that ``==`` and ``in`` agree, for numbers, booleans,
  strings, lists and ranges (huge ones included).
* ``LabelGen``: labels made of many ``{...}`` interpolations, long lines and many lines of
  interpolated labels.

The oracles: ``check_runs`` (build, then emit with and without the passes, import,
instantiate: the parameter count is the IR's, and a forward pass on a tiny input gives the
IR's output shape, with finite values, in eval and in training mode), ``check_membership``
(the spec elaborates: every assertion holds) and ``parse_work`` (characters handed to the
parser, a measure of work that does not depend on timing).
"""

from __future__ import annotations

import ast as pyast
import contextlib
import copy
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from hypothesis import strategies as st
from programs import (
    FUZZ_LIMITS,
    SPEC_FILES,
    HypothesisChoices,
    ProgramGen,
    RandomChoices,
    check_program,
    spec_text,
    tokenize,
)

from udnet.reserved import CONNECTIONS, FUNCTIONS, INTROSPECTION, MODULE_ATTRS
from udnet.errors import Source, UdnetError
from udnet.ops import OPS, REQUIRED

# ---------------------------------------------------------------------------
# The emitter's vocabulary.

#: Words a spec cannot use as a variable, parameter or block name.
DSL_WORDS = frozenset(
    "block network for in if then else return assert and or not true false x none".split()
    + list(INTROSPECTION) + list(FUNCTIONS) + list(CONNECTIONS) + list(OPS)
)  # fmt: skip


def emitted_names(code: str) -> set[str]:
    """Every identifier the emitted source binds: classes, functions and their parameters,
    ``self.<name> =`` attributes, local names, and ``add_module`` names."""
    found: set[str] = set()
    for node in pyast.walk(pyast.parse(code)):
        if isinstance(node, (pyast.ClassDef, pyast.FunctionDef)):
            found.add(node.name)
        if isinstance(node, pyast.FunctionDef):
            found.update(a.arg for a in node.args.args + node.args.kwonlyargs)
        elif isinstance(node, pyast.Attribute) and isinstance(node.ctx, pyast.Store):
            found.add(node.attr)
        elif isinstance(node, pyast.Name) and isinstance(node.ctx, pyast.Store):
            found.add(node.id)
        elif isinstance(node, pyast.Call) and getattr(node.func, "attr", None) == "add_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, pyast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, pyast.JoinedStr):  # f"layer{i + 1}": the constant parts
                found.update(p.value + "1" for p in arg.values if isinstance(p, pyast.Constant) and p.value)
    return {n for n in found if n.isidentifier() and n.isascii()}


def user_names(text: str) -> set[str]:
    """The identifiers a spec itself writes."""
    return {t for t in tokenize(text) if t.isidentifier()}


def emit_source(ir, passes: bool) -> str:
    """The emitted module of ``ir``; with ``passes`` the optimisation passes run first (on ``ir``)."""
    from udnet.backends.pytorch.codegen import emit_module
    from udnet.pipeline import optimize

    if passes:  # in place, as `udnet compile` does
        optimize(ir)
    return emit_module(ir, "fuzz.ud")


@dataclass(frozen=True)
class Vocabulary:
    generated: tuple[str, ...]  # names the emitter invents (not written in the spec it compiled)
    every: tuple[str, ...]  # everything the emitted sources bind

    def labels(self) -> tuple[str, ...]:
        return tuple(n for n in self.every if label_ok(n))

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in self.every if name_ok(n))


def label_ok(n: str) -> bool:
    return n.isidentifier() and n not in MODULE_ATTRS and not (n.startswith("__") and n.endswith("__"))


def name_ok(n: str) -> bool:
    """Usable as a spec variable, parameter or block name."""
    return label_ok(n) and n not in DSL_WORDS


@lru_cache(maxsize=None)
def emitter_vocabulary() -> Vocabulary:
    """Harvested, not hard-coded: compile every network of specs/ (and a few generated
    programs), with and without the passes, and collect what the emitted source binds."""
    from programs import sample

    from udnet.frontend.parser import parse
    from udnet.pipeline import build_ir

    generated: set[str] = set()
    every: set[str] = set()
    texts = [(str(p), spec_text(p)) for p in SPEC_FILES]
    texts += [(f"generated{k}.ud", t) for k, t in enumerate(sample(ok=True, n=12, start=1000))]
    for name, text in texts:
        src = Source(name, text)
        try:
            nets = [d.name for d in parse(src).definitions if d.kind == "network"]
        except UdnetError:
            continue
        mine = user_names(text)
        for net in nets:
            try:
                ir = build_ir(src, net)
            except UdnetError:
                continue
            for passes in (False, True):  # the same IR: first as elaborated, then after the passes
                try:
                    names = emitted_names(emit_source(ir, passes))
                except Exception:  # noqa: BLE001 - the vocabulary is best effort; fuzzing finds the failures
                    break
                every |= names
                generated |= names - mine
    return Vocabulary(tuple(sorted(generated)), tuple(sorted(every)))


# ---------------------------------------------------------------------------
# Generated-name collisions.


class NameClashGen(ProgramGen):
    """Well-formed generated programs whose names come from the emitter's vocabulary.

    Labels are drawn from the vocabulary while the program is written; then the program
    is compiled, the names its own emitted module binds are harvested, and block names,
    block parameters and variables are renamed to some of them (consistently, so the
    program stays the same network). Blocks get loops whose count and channel slices whose
    bounds come from a parameter, so that instances of one class differ in numbers that
    the emitter keeps on ``self``.
    """

    def __init__(self, choices, vocab: Vocabulary | None = None):
        super().__init__(choices, ok=True)
        self.vocab = vocab or emitter_vocabulary()
        self.used: set[str] = set()

    def word(self, pool: tuple[str, ...]) -> str:
        return self.c.pick(pool) if pool else self.fresh("l")

    def label(self) -> str:
        if not self.c.chance(0.6):
            return ""
        gen = tuple(n for n in self.vocab.generated if label_ok(n))
        base = self.word(gen if self.c.chance(0.7) else self.vocab.labels())
        if base in self.used:
            base = self.fresh(base + "_")
        self.used.add(base)
        return base + "".join(f"_{{{v}}}" for v in self.loop_vars) + ": "

    def block(self) -> str:
        self.used = set()
        return super().block()

    def stmt(self, depth: int) -> list[str]:
        if self.in_block and self.c.chance(0.25):
            return self.s_param_loop(depth) if self.c.chance(0.5) else self.s_param_slice(depth)
        return super().stmt(depth)

    def s_param_loop(self, depth):
        """A loop whose count depends on the block's parameter: a constructor argument."""
        v = f"i{len(self.loop_vars)}"
        self.loop_vars.append(v)
        try:
            lab = self.label()
        finally:
            self.loop_vars.pop()
        op = self.c.pick(["conv(channels, 1)", "bn", "relu", "conv(channels, 3, pad = 1)"])
        body = self.c.pick([f"x = x + (x |> {lab}{op})", f"{lab}{op}", f"x = x ++ (x |> {lab}conv(2, 1))"])
        return [f"for {v} in 1..(w % 3 + 2) {{", f"    {body}", "}"]

    def s_param_slice(self, depth):
        """Channel slices whose bounds depend on the parameter (read in forward)."""
        return [
            "if channels >= 2 {",
            "    k = 1 + w % (channels - 1)",
            "    x = x[k:] ++ x[:k]",
            "}",
        ]

    def program(self) -> str:
        self.used = set()
        text = super().program()
        # every block used at least twice, with different numbers: instances of one class
        # that differ in numbers get constructor parameters (loop counts, slice bounds)
        calls = []
        for name, kind in self.blocks:
            for _ in range(self.c.int(0, 2)):
                args = f"{self.c.int(1, 3)}, {self.c.int(1, 8)}" if kind == "fractal" else str(self.c.int(1, 8))
                calls.append(f"    {name}({args})")
        text = (
            text.replace("\n    stem: ", "\n" + "".join(c + "\n" for c in calls) + "    stem: ", 1) if calls else text
        )
        # a small input: the module is run, and the names do not depend on the sizes
        h, w = self.c.int(4, 8), self.c.int(4, 8)
        text = re.sub(r"input = \[(\d+), \d+, \d+\]", lambda m: f"input = [{m.group(1)}, {h}, {w}]", text)
        if self.c.chance(0.9):
            text = self.aim(text)
        return self.rename(text)

    def _module(self, text: str) -> str | None:
        from udnet.pipeline import build_ir

        try:
            return emit_source(build_ir(Source("clash.ud", text), limits=FUZZ_LIMITS), self.c.chance(0.5))
        except Exception:  # noqa: BLE001 - an ill-formed program is still a fuzz case, left as it is
            return None

    def aim(self, text: str) -> str:
        """Feedback from the emitted module: per class, the names it binds. Then a label
        with one of them goes into the block or network the class was emitted for, or a
        block that the class instantiates is renamed after one of its constructor parameters."""
        code = self._module(text)
        if code is None:
            return text
        classes = class_names_by_definition(code)
        defs = sorted(classes)
        for _ in range(self.c.int(1, 3)):
            if not defs:
                break
            d = self.c.pick(defs)
            info = classes[d]
            if info["instantiates"] and info["params"] and self.c.chance(0.4):
                block = self.c.pick(sorted(info["instantiates"]))
                new = self.c.pick(sorted(info["params"]))
                if name_ok(new) and new not in user_names(text) and block in user_names(text):
                    text = "".join(new if t == block else t for t in tokenize(text))
                continue
            bound = info["params"] | info["attrs"]
            names = sorted(n for n in bound - user_names(text) if label_ok(n)) or sorted(filter(label_ok, bound))
            if names:
                text = insert_label(text, d, self.c.pick(names), self.c.chance(0.7))
        return text

    def rename(self, text: str) -> str:
        """Rename labels, blocks, parameters and variables to names the emitter invents for
        this very program (or, less often, for the specs), consistently and injectively."""
        code = self._module(text)
        own = emitted_names(code) if code else set()
        mine = user_names(text)
        invented = sorted(own - mine)
        mapping: dict[str, str] = {}
        taken = set(mine)
        for n in sorted(mine):
            kind = _renamable(n)
            if kind is None or not self.c.chance(0.3):
                continue
            ok = label_ok if kind == "label" else name_ok
            pool = [m for m in (invented if self.c.chance(0.8) else self.vocab.generated) if ok(m)]
            if pool:
                new = self.c.pick(pool)
                if new not in taken:
                    mapping[n] = new
                    taken.add(new)
        return "".join(mapping.get(t, t) for t in tokenize(text))


_DOC = re.compile(r"(?:Block (\w+)|The network (\w+))")


def class_names_by_definition(code: str) -> dict[str, dict[str, set[str]]]:
    """For each block or network of the spec (found through the class docstrings), what its
    classes bind: constructor parameters, ``self`` attributes, and the block names whose
    classes their constructors instantiate."""
    tree = pyast.parse(code)
    block_of: dict[str, str] = {}
    out: dict[str, dict[str, set[str]]] = {}
    for node in tree.body:
        if not isinstance(node, pyast.ClassDef):
            continue
        m = _DOC.match(pyast.get_docstring(node) or "")
        if not m:
            continue
        name = m.group(1) or m.group(2)
        block_of[node.name] = name
        info = out.setdefault(name, {"params": set(), "attrs": set(), "instantiates": set()})
        for fn in node.body:
            if isinstance(fn, pyast.FunctionDef):
                if fn.name == "__init__":
                    info["params"].update(a.arg for a in fn.args.args[1:])
                for sub in pyast.walk(fn):
                    if isinstance(sub, pyast.Attribute) and isinstance(sub.ctx, pyast.Store):
                        info["attrs"].add(sub.attr)
                    if fn.name == "__init__" and isinstance(sub, pyast.Call) and isinstance(sub.func, pyast.Name):
                        info.setdefault("calls", set()).add(sub.func.id)
    for info in out.values():
        info["instantiates"] = {block_of[c] for c in info.pop("calls", set()) if c in block_of}
    return out


def insert_label(text: str, definition: str, label: str, at_end: bool) -> str:
    """A statement ``label: relu`` at the start or the end (before a final return) of the body
    of ``definition``; bodies are as ProgramGen writes them (closing brace in column 0)."""
    lines = text.split("\n")
    head = next((k for k, line in enumerate(lines) if re.match(rf"(block|network) {definition}\(", line)), None)
    if head is None or not lines[head].rstrip().endswith("{"):
        return text
    end = next((k for k in range(head + 1, len(lines)) if lines[k] == "}"), None)
    if end is None:
        return text
    at = head + 1
    if at_end:
        at = end
        last = lines[end - 1].lstrip()
        if last.startswith("return ") and lines[end - 1].startswith("    return"):
            at = end - 1
    lines.insert(at, f"    {label}: relu")
    return "\n".join(lines)


_GEN_LABEL = re.compile(r"[lg]\d+_?")
_GEN_NAME = re.compile(r"B\d+|[yhtv]\d+|[wsCk]")


def _renamable(name: str) -> str | None:
    """'label' or 'name' for the labels, blocks, parameters and variables ProgramGen and
    NameClashGen write (never loop variables, nor words drawn from the vocabulary)."""
    if _GEN_LABEL.fullmatch(name):
        return "label"
    if _GEN_NAME.fullmatch(name):
        return "name"
    return None


# ---------------------------------------------------------------------------
# Numeric extremes of every op argument.

#: Extreme values by argument kind (spec text).
EXTREME_INTS = (
    "0", "-1", "1", "2", "-(2 ** 62)", "2 ** 62", "2 ** 62 - 1", "2 ** 31", "2 ** 31 - 1", "2 ** 20", "2 ** 40",
    "65536", "4096",
)  # fmt: skip
EXTREME_FLOATS = (
    "0.0", "-0.0", "1e308", "-1e308", "1.7976931348623157e308", "3.4028234e38", "3.5e38", "-3.5e38", "1e39",
    "1e-308", "5e-324", "-5e-324", "1e-45", "1e-50", "-1.0", "1.0", "2.0", "1e10", "-1e10", "2 ** 62",
    "-(2 ** 62)", "float(2 ** 62)", "0.9999999999999999", "1e-16", "-1e-300",
)  # fmt: skip
EXTREME_PROBS = ("0.0", "-0.0", "0.9999999999999999", "0.999999", "1 - 1e-16", "1.0", "5e-324", "0.5", "-5e-324")
EXTREME_BOOLS = ("true", "false", "0", "1")


class ExtremeArgGen:
    """A tiny network applying one op whose arguments sit at numeric extremes."""

    def __init__(self, choices):
        self.c = choices

    def value(self, kind: str, choices: tuple[str, ...]) -> str:
        c = self.c
        if kind in ("int", "pos_int"):
            return c.pick(EXTREME_INTS)
        if kind in ("pair", "pos_pair", "opt_pair"):
            if c.chance(0.5):
                return c.pick(EXTREME_INTS)
            return f"[{c.pick(EXTREME_INTS)}, {c.pick(('1', '2', '3') + EXTREME_INTS)}]"
        if kind == "float":
            return c.pick(EXTREME_FLOATS)
        if kind == "opt_number":  # an integer or a number (or none)
            return c.pick(EXTREME_FLOATS + EXTREME_INTS + ("none",))
        if kind == "prob":
            return c.pick(EXTREME_PROBS)
        if kind == "bool":
            return c.pick(EXTREME_BOOLS)
        if kind == "choice":
            return '"' + c.pick(choices + ("",)) + '"'
        return c.pick(EXTREME_FLOATS)

    def sane(self, op: str, name: str) -> str | None:
        """A small valid value for a required argument that is not being pushed."""
        return {"out": str(self.c.int(1, 4)), "kernel": str(self.c.int(1, 3)), "p": "0.5",
                "size": str(self.c.int(1, 3))}.get(name)

    def call(self) -> tuple[str, str]:
        """(op call text, the op's name); joins are written as connections."""
        c = self.c
        name = c.pick(sorted(OPS) + ["join"])
        if name == "join":
            k = c.int(1, 3)
            args = ["x |> conv(channels, 1)" for _ in range(k - 1)] + ["x"]
            for kw in ("drop_local", "drop_global"):
                if c.chance(0.6):
                    args.append(f"{kw} = {c.pick(EXTREME_PROBS + EXTREME_FLOATS[:8])}")
            return f"x = join({', '.join(args)})", name
        spec = OPS[name]
        pushed = [a for a in spec.args if c.chance(0.5)] or ([c.pick(spec.args)] if spec.args else [])
        parts = []
        for a in spec.args:
            if a in pushed:
                parts.append(f"{a.name} = {self.value(a.kind, a.choices)}")
            elif a.default is REQUIRED:
                parts.append(f"{a.name} = {self.sane(name, a.name) or '1'}")
        if name == "conv" and not any(a.name == "bias" for a in pushed) and c.chance(0.8):
            parts.append("bias = true")
        return f"{name}({', '.join(parts)})" if parts else name, name

    def program(self) -> str:
        c = self.c
        text, name = self.call()
        ch = c.int(1, 4)
        h, w = c.int(1, 6), c.int(1, 6)
        pre = []
        if name == "linear" or (name in ("bn", "dropout", "elu", "identity") and c.chance(0.3)):
            pre.append("gap")
        elif c.chance(0.5):
            pre.append(f"conv({ch}, 1)")
        post = ["gap"] if c.chance(0.2) and name not in ("linear", "gap", "flatten") and not pre[:1] == ["gap"] else []
        body = pre + [text] + post
        return f"network Extreme(input = [{ch}, {h}, {w}]) {{\n" + "".join(f"    {s}\n" for s in body) + "}\n"


# ---------------------------------------------------------------------------
# Identity networks.


class IdentityGen:
    """Networks whose output is their input, in every way the language allows."""

    FORMS = (
        "", "identity", "identity |> identity", "x = join(x)", "x = join(x, drop_local = 0.5)",
        "x = join(x, drop_local = 0.2, drop_global = 0.5)", "return x", "x = x |> identity", "x = x[0:channels]",
        "x = x[:]", "y = x |> conv(4, 1)", "y = x |> relu\n    return x", "g: { }", "g: { identity }",
        "x = x |> { identity }", "E", "e: E", "E |> E", "x = join(x |> E)", "dropout(0.0)",
        "x = join(join(x))", "assert true", "for i in 1..0 { relu }", "if false { relu }", "{ }", "y = x",
        "z = x |> identity |> relu\n    x = x",
    )  # fmt: skip

    def __init__(self, choices):
        self.c = choices

    def program(self) -> str:
        c = self.c
        shape = c.pick(["[3, 4, 4]", "[1, 1, 1]", "[5]", "[2, 3, 1]", "[1]"])
        body = [c.pick(self.FORMS) for _ in range(c.int(0, 3))]
        if "[5]" in shape or shape == "[1]":
            body = [b for b in body if "conv" not in b] or [""]
        blocks = "block E() { }\n" if c.chance(0.5) else "block E() { identity }\n"
        return blocks + f"network Same(input = {shape}) {{\n" + "".join(f"    {b}\n" for b in body) + "}\n"


# ---------------------------------------------------------------------------
# == and `in` agree.

MEMBER_VALUES = (
    "0", "1", "2", "-1", "3", "10", "0.5", "1.0", "2.0", "-0.0", "0.0", "1.5", "1e17", "1e18", "1e19", "2 ** 62",
    "-(2 ** 62)", "float(2 ** 62)", "10 ** 18", "true", "false", '"a"', '""', '"1"', "[]", "[1]", "[true]",
    "[1.0]", "[[1]]", "[1, 2]", "1..2", "1..0", "[false]", "[0]",
)  # fmt: skip
#: (lo, hi) of ranges; the huge ones must be searched without walking them.
RANGES = ((1, 3), (0, 1), (1, 10), (-2, 2), (1, 0), (1, 10**18), (-(10**18), 10**18), (1, 2**62), (5, 5))


def _py(v: str):
    """The Python value of a MEMBER_VALUES entry (numbers, booleans, strings, lists)."""
    v = v.replace("true", "True").replace("false", "False")
    if ".." in v:
        lo, hi = v.split("..")
        return range(int(lo), int(hi) + 1)
    return eval(v, {"float": float})  # noqa: S307 - our own constant table


class MembershipGen:
    """A network whose assertions state that ``in`` agrees with ``==``.

    * ``a in [b, c]`` is ``a == b or a == c``;
    * ``[a] == [b]`` and ``[a, c] == [b, c]`` are ``a == b``;
    * ``a in lo..hi`` is ``a in W``, W the integers of the range next to ``a`` (a list).
    """

    def __init__(self, choices, huge: bool = True):
        self.c = choices
        self.huge = huge

    def window(self, a: str, lo: int, hi: int) -> str:
        v = _py(a)
        near: list[int] = []
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            k = int(v)
            near = [k - 1, k, k + 1]
        near += [lo, hi]
        return "[" + ", ".join(str(n) for n in sorted({n for n in near if lo <= n <= hi and abs(n) <= 2**62})) + "]"

    def assertion(self) -> str:
        c = self.c
        a, b, d = c.pick(MEMBER_VALUES), c.pick(MEMBER_VALUES), c.pick(MEMBER_VALUES)
        form = c.int(0, 3)
        if form == 0:
            return f"assert ({a} in [{b}, {d}]) == ({a} == {b} or {a} == {d})"
        if form == 1:
            return f"assert ([{a}] == [{b}]) == ({a} == {b}) and ([{a}, {d}] == [{b}, {d}]) == ({a} == {b})"
        if form == 2:
            return f"assert ({a} == {b}) == ({b} == {a}) and ({a} in [{b}]) == ({b} in [{a}])"
        ranges = RANGES if self.huge else tuple(r for r in RANGES if r[1] - r[0] <= 100)
        lo, hi = c.pick(ranges)
        return f"assert ({a} in {lo}..{hi}) == ({a} in {self.window(a, lo, hi)})"

    def program(self) -> str:
        lines = [self.assertion() for _ in range(self.c.int(1, 4))]
        return "network Member(input = [3, 4, 4]) {\n" + "".join(f"    {s}\n" for s in lines) + "    relu\n}\n"


# ---------------------------------------------------------------------------
# Pathological label interpolation.


class LabelGen:
    """Labels with many interpolations, far to the right, on many lines."""

    def __init__(self, choices):
        self.c = choices

    def program(self) -> str:
        c = self.c
        piece = c.pick(["{1}", "{i}", '{"a"}', "a{1}", "{ 1 }", "{1}_", "{2 ** 3}", "{s}"])
        form = c.int(0, 3)
        n = c.int(1, 400)
        if form == 0:  # one label of n interpolations
            body = [f"{piece * n}: relu"]
        elif form == 1:  # n lines of interpolated labels
            body = [f"l{k}{piece}: relu" for k in range(n)]
        elif form == 2:  # an interpolated label far to the right
            body = [" " * (n * 8) + f"{piece * c.int(1, 20)}: relu"]
        else:  # in a loop: each iteration formats the label again
            body = [f"for i in 1..{c.int(1, 20)} {{ l{{i}}{piece * min(n, 60)}: relu }}"]
        return (
            'network Labels(input = [3, 4, 4]) {\n    s = "b"\n    i = 7\n'
            + "".join(f"    {b}\n" for b in body)
            + "}\n"
        )


# ---------------------------------------------------------------------------
# Oracles.

#: The emitted module is only run when the network is this small (parameters and
#: elements of every node); anything larger is accepted unrun.
RUN_BUDGET = 2**18


def small_enough(ir) -> bool:
    if ir.param_count() > RUN_BUDGET:
        return False
    return all(math.prod(d["shape"]) <= RUN_BUDGET for _, d in ir.nodes(data=True) if d.get("shape"))


def run_emitted(ir, code: str, *, train: bool) -> None:
    """Import the emitted module, check its parameter count and run it on a tiny input."""
    import torch

    from udnet.backends.pytorch.loader import import_source

    module = import_source(code)
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and the fuzzers share the cores)
    torch.manual_seed(0)
    model = module.__dict__[module.ROOT]()
    params = sum(p.numel() for p in model.parameters())
    assert params == ir.param_count(), f"the module has {params} parameters, the IR {ir.param_count()}"
    shape_in = tuple(ir.nodes[ir.input_node]["shape"])
    wants = {name: (2,) + tuple(ir.nodes[n]["shape"]) for name, n in ir.outputs()}

    def forward(x, mode: str):
        model.train(mode == "train")
        with torch.no_grad():
            y = model(x)
        ys = y if ir.named_outputs() else {None: y}  # named outputs: a dict in the IR's order
        assert list(ys) == list(wants), f"{mode} forward gives the outputs {list(ys)}, the IR {list(wants)}"
        for name, v in ys.items():
            assert tuple(v.shape) == wants[name], f"{mode} forward gives {tuple(v.shape)}, the IR says {wants[name]}"
            assert bool(torch.isfinite(v).all()), f"{mode} forward gives non-finite values"

    forward(torch.randn(2, *shape_in), "eval")
    if train:  # running statistics after a constant batch and after a wide one must stay usable
        forward(torch.zeros(2, *shape_in), "train")
        forward(torch.randn(2, *shape_in), "eval")
        forward(10 * torch.randn(2, *shape_in), "train")
        forward(torch.randn(2, *shape_in), "eval")


def check_runs(text: str, name: str = "fuzz.ud", *, train: bool = False, limits=FUZZ_LIMITS):
    """``check_program``, then: the emitted module (without and with the passes) imports,
    has the IR's parameter count and runs on a tiny input. Returns the IR or the error."""
    result = check_program(Source(name, text), limits)
    if isinstance(result, Exception) or not small_enough(result):
        if not isinstance(result, Exception):
            compile(emit_source(result, False), "<emitted model.py>", "exec")
        return result
    for passes in (False, True):
        ir = copy.deepcopy(result) if passes else result
        code = emit_source(ir, passes)
        try:
            run_emitted(ir, code, train=train)
        except Exception as exc:
            note = f"the emitted module ({'with' if passes else 'without'} passes) fails"
            if hasattr(exc, "add_note"):  # re-raised as it is: Hypothesis tells failures apart by where they arise
                exc.add_note(note)
                raise
            raise AssertionError(f"{note}: {type(exc).__name__}: {exc}") from exc
    return result


def check_membership(text: str):
    """Every assertion of a MembershipGen program holds: the spec elaborates."""
    from udnet.pipeline import build_ir

    try:
        return build_ir(Source("member.ud", text), limits=FUZZ_LIMITS)
    except UdnetError as err:
        raise AssertionError("== and `in` disagree: " + err.format().split("\n")[0]) from None


@contextlib.contextmanager
def parse_work():
    """Counts the characters handed to the Lark parser (``counter[0]``) while active."""
    import lark

    counter = [0]
    original = lark.Lark.parse

    def counting(self, text, *args, **kwargs):
        counter[0] += len(text)
        return original(self, text, *args, **kwargs)

    lark.Lark.parse = counting
    try:
        yield counter
    finally:
        lark.Lark.parse = original


#: Parsing a spec may read its text a couple of times, never once per label part.
PARSE_WORK_FACTOR = 3
PARSE_WORK_SLACK = 300


def check_label_work(text: str):
    """A LabelGen program compiles or fails with a located error, and the parser reads a
    bounded multiple of the source: no re-reading of everything before each interpolation."""
    with parse_work() as work:
        result = check_program(Source("labels.ud", text), FUZZ_LIMITS)
    bound = PARSE_WORK_FACTOR * len(text) + PARSE_WORK_SLACK
    assert work[0] <= bound, f"the parser read {work[0]:,} characters for a {len(text):,}-character spec"
    return result


# ---------------------------------------------------------------------------
# Hypothesis strategies (shrinkable) and seeded cases (the long run).

GENERATORS = {
    "names": lambda c: NameClashGen(c).program(),
    "extremes": lambda c: ExtremeArgGen(c).program(),
    "identity": lambda c: IdentityGen(c).program(),
    "membership": lambda c: MembershipGen(c).program(),
    "labels": lambda c: LabelGen(c).program(),
    "run-generated": lambda c: ProgramGen(c, ok=True).program(),
}


@st.composite
def name_clash_programs(draw) -> str:
    return NameClashGen(HypothesisChoices(draw)).program()


@st.composite
def extreme_arg_programs(draw) -> str:
    return ExtremeArgGen(HypothesisChoices(draw)).program()


@st.composite
def identity_programs(draw) -> str:
    return IdentityGen(HypothesisChoices(draw)).program()


@st.composite
def membership_programs(draw, huge: bool = True) -> str:
    return MembershipGen(HypothesisChoices(draw), huge).program()


@st.composite
def label_programs(draw) -> str:
    return LabelGen(HypothesisChoices(draw)).program()


def seeded(kind: str, seed: int) -> str:
    return GENERATORS[kind](RandomChoices(seed))
