"""Hardening of the language's semantics.

* Every numeric op argument has a declared range (finite, bounded so that the model stays
  finite; eps > 0; momentum in [0, 1]; ...), checked when the op is called, with the
  error at the argument and the range in the hint.
* Membership in a range takes constant time for every kind of value, and comparing or
  searching lists costs steps at every depth.
* One equality serves ==, !=, in and list comparison: true is not 1, at any depth, and
  nothing keyed on values confuses true with 1, 1 with 1.0 or 0.0 with -0.0.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from udnet.cli import main
from udnet.elaborate.build import _JOIN
from udnet.errors import Source, UdnetError
from udnet.limits import Limits
from udnet.ops import MAX_DIM, OPS, REQUIRED, ArgError
from udnet.pipeline import build_ir

ROOT = Path(__file__).resolve().parent.parent
NET = "network N(input = [3, 8, 8]) {{\n    {}\n}}\n"
HALF_MAX = 65504.0  # the largest float16: no number an op holds is larger in magnitude


def error_of(text: str, **kw) -> UdnetError:
    with pytest.raises(UdnetError) as info:
        build_ir(Source("t.ud", text), **kw)
    return info.value


# ---------------------------------------------------------------------------
# 7. Op arguments have declared ranges


RANGE_CASES = [
    # (statement, column of the argument, message, text in the hint)
    ("conv(4, 3, bias = true, bias_init = 1e308)", 29,
     "conv argument 'bias_init' must be a number in [-65504, 65504], got 1e+308", "[-65504, 65504]"),
    ("conv(4, 3, bias = true, bias_init = -65505)", 29,
     "conv argument 'bias_init' must be a number in [-65504, 65504], got -65505", "largest float16"),
    ("elu(alpha = 1e308)", 9, "elu argument 'alpha' must be a number in [0, 65504], got 1e+308", "[0, 65504]"),
    ("elu(-1)", 9, "elu argument 'alpha' must be a number in [0, 65504], got -1", "saturates"),
    ("bn(eps = 0)", 8, "bn argument 'eps' must be a number in [1e-37, 65504], got 0", "[1e-37, 65504]"),
    ("bn(eps = -1e-5)", 8, "bn argument 'eps' must be a number in [1e-37, 65504], got -1e-05", "positive"),
    ("bn(1e-300)", 8, "bn argument 'eps' must be a number in [1e-37, 65504], got 1e-300", "float32"),
    ("bn(momentum = -0.1)", 8, "bn argument 'momentum' must be a number in [0, 1], got -0.1", "[0, 1]"),
    ("bn(1e-5, 1.5)", 14, "bn argument 'momentum' must be a number in [0, 1], got 1.5", "[0, 1]"),
    ("dropout(1)", 13, "dropout argument 'p' must be a probability in [0, 1), got 1", "[0, 1)"),
    ("y = join(x, x, drop_global = 2)", 20,
     "join argument 'drop_global' must be a probability in [0, 1), got 2", "[0, 1)"),
    ("conv(4, 3.0)", 13, "conv argument 'kernel' must be an integer or a list of two integers, got 3.0",
     "3.0 is a number, not an integer: write 3"),
    ("conv(4.0, 3)", 10, "conv argument 'out' must be an integer, got 4.0", "write 4"),
    ("conv(4, [3, 2.5])", 13, "conv argument 'kernel' must be an integer or a list of two integers",
     "2.5 is a number, not an integer: convert it with int(...)"),
    ("upsample(size = [4, 2.0])", 14, "upsample argument 'size' must be an integer or a list of two integers",
     "2.0 is a number, not an integer: write 2"),
    ("conv(4, 1, dilation = 2 ** 40)", 16, "conv argument 'dilation' must be at most 2**31", "1 to 2**31"),
    ("maxpool(2, stride = [1, 2 ** 32])", 16, "maxpool argument 'stride' must be at most 2**31", "1 to 2**31"),
    ("conv(4, 3, pad = -1)", 16, "conv argument 'pad' must be non-negative, got -1", "0 to 2**31"),
]


@pytest.mark.parametrize("stmt,col,message,hint", RANGE_CASES, ids=[c[0] for c in RANGE_CASES])
def test_out_of_range_arguments_are_located_errors(stmt, col, message, hint):
    err = error_of(NET.format(stmt))
    assert (err.span.line, err.span.col) == (2, col), err.format()
    assert message in err.message, err.format()
    assert err.hint and hint in err.hint, err.format()


def test_out_of_range_argument_through_the_command_line(tmp_path, capsys):
    """A -D value that breaks an op's range is reported where the op uses it."""
    spec = tmp_path / "net.ud"
    spec.write_text("network N(input = [4], b = 0.0) {\n    linear(2, bias_init = b)\n}\n")
    rc = main(["check", str(spec), "-D", "b=1e300"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"{spec}:2:15: error: linear argument 'bias_init' must be a number in [-65504, 65504]")
    assert "hint: the valid range is [-65504, 65504]" in err
    assert "Traceback" not in err


def _all_args():
    for spec in list(OPS.values()) + [_JOIN]:
        for pos, a in enumerate(spec.args):
            yield spec, pos, a


NUMBER_ARGS = [(s, p, a) for s, p, a in _all_args() if a.kind in ("float", "prob", "opt_number")]
INTEGER_ARGS = [(s, p, a) for s, p, a in _all_args() if a.kind in ("int", "pos_int")
                or a.kind.endswith("pair")]


def _required(spec, but: str) -> dict:
    return {a.name: 8 for a in spec.args if a.default is REQUIRED and a.name != but}


@pytest.mark.parametrize("spec,pos,arg", NUMBER_ARGS, ids=[f"{s.name}-{a.name}" for s, _, a in NUMBER_ARGS])
def test_every_number_argument_is_finite_and_bounded(spec, pos, arg):
    lo, hi, hi_open = arg.bounds()
    assert -HALF_MAX <= lo and hi <= HALF_MAX
    required = _required(spec, arg.name)
    earlier = [8 if b.default is REQUIRED else b.default for b in spec.args[:pos]]
    for bad in (math.inf, -math.inf, math.nan, 1e308, -1e308, 2**62, HALF_MAX * 2, -HALF_MAX * 2,
                lo - 1e-3 * max(1.0, abs(lo)), hi + 1e-3 * max(1.0, abs(hi))) + ((hi,) if hi_open else ()):
        with pytest.raises(ArgError) as info:
            spec.bind([], {**required, arg.name: bad})
        assert info.value.arg == arg.name
        assert arg.valid() in info.value.hint, (bad, info.value.hint)
        with pytest.raises(ArgError) as info:  # positionally too
            spec.bind(earlier + [bad], {})
        assert info.value.arg == pos
    for good in (lo, (lo + hi) / 2) + (() if hi_open else (hi,)):
        assert spec.bind([], {**required, arg.name: good})[arg.name] == good
    if arg.default is not REQUIRED and arg.default is not None:  # the default is in range
        assert spec.bind([], required)[arg.name] == arg.default


@pytest.mark.parametrize("spec,pos,arg", INTEGER_ARGS, ids=[f"{s.name}-{a.name}" for s, _, a in INTEGER_ARGS])
def test_every_integer_argument_is_an_integer_at_most_2_31(spec, pos, arg):
    required = _required(spec, arg.name)
    for bad in (3.0, 2.5, [3, 3.0], MAX_DIM + 1, [1, MAX_DIM + 1], True, math.inf):
        with pytest.raises(ArgError) as info:
            spec.bind([], {**required, arg.name: bad})
        assert info.value.arg == arg.name, bad
    assert spec.bind([], {**required, arg.name: MAX_DIM})[arg.name] in (MAX_DIM, (MAX_DIM, MAX_DIM))


def test_every_range_is_documented():
    """docs/language.md lists the range of every number argument narrower than the default."""
    text = (ROOT / "docs" / "language.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for spec, _, arg in NUMBER_ARGS:
        assert any(f"`{arg.name}`" in r and spec.name in r and arg.valid() in r for r in rows), (
            f"docs/language.md lacks the range {arg.valid()} of {spec.name} {arg.name}"
        )
    assert "at most 2**31" in text and "65504" in text


def test_valid_edges_are_accepted():
    ir = build_ir(Source("t.ud", NET.format(
        "conv(4, 3, bias = true, bias_init = -65504)\n    bn(eps = 1e-37, momentum = 0)\n    bn(65504, 1)\n"
        "    elu(0)\n    elu(65504)\n    dropout(0)\n    dropout(0.999)\n    y = join(x, x, drop_local = 0.5)\n"
        "    conv(4, 1, stride = [1, 2 ** 31])"
    )))
    assert ir.number_of_nodes() > 8


# ---------------------------------------------------------------------------
# 8. Membership in a range is constant-time; scans cost steps


RANGE_MEMBERSHIP = """
network N(input = [3, 8, 8]) {
    big = 1..10**18
    assert not (0.5 in big) and not (-0.5 in -10**18..10**18) and not (1e300 in big)
    assert not ("a" in big) and not ([1] in big) and not ([] in big) and not ((1..2) in big)
    assert not (true in 0..10**18) and not (false in 0..10**18)
    assert 2.0 in big and 10.0 ** 17 in big and 10**18 in big and not (10**18 + 1 in big)
    assert -0.0 in 0..0 and not (0 in 1..0)
}
"""


def test_membership_in_a_huge_range_is_immediate(tmp_path):
    """Each lookup costs no more than a step: a linear scan of 10**18 numbers would never
    finish, so the subprocess's timeout only guards against a hang."""
    spec = tmp_path / "net.ud"
    spec.write_text(RANGE_MEMBERSHIP)
    cmd = [sys.executable, "-m", "udnet", "check", str(spec), "--max-steps", "20"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_range_membership_agrees_with_list_membership():
    values = ["0", "1", "2", "-1", "1.0", "0.5", "-0.0", "true", "false", '"1"', "[1]", "[]", "0..1", "[0..1]"]
    ranges = {"0..1": "[0, 1]", "1..1": "[1]", "1..0": "[]", "-1..2": "[-1, 0, 1, 2]"}
    lines = [f"assert ({v} in {r}) == ({v} in {items})" for v in values for r, items in ranges.items()]
    build_ir(Source("t.ud", NET.format("\n    ".join(lines))), limits=Limits(max_steps=1000))


def _scan_spec(test: str, rounds: int) -> str:
    return NET.format(
        "l = [] ++ (1..20000)\n"
        "    m = l[:19999] ++ [0]\n"
        f"    for i in 1..{rounds} {{ assert {test} }}"
    )


@pytest.mark.parametrize("test", ["[m, m] != [l, l]", "[[m]] != [[l]]", "not ([m] in [[l], [l]])"])
def test_scans_of_nested_lists_count_steps(test):
    """Each round compares 20,000 items or more inside nested lists: about 1,250 steps,
    not the 0 that the top-level lengths (1 to 3) would count."""
    err = error_of(_scan_spec(test, 10), limits=Limits(max_steps=10_000))
    assert "exceeds the limit of 10,000 steps" in err.message
    assert err.span.line == 4
    build_ir(Source("t.ud", _scan_spec(test, 10)))  # within the default limit


# ---------------------------------------------------------------------------
# 15. One equality for ==, !=, in and list comparison

TRUTHS = [
    ("true == 1", False), ("1 == true", False), ("true in [1]", False), ("1 in [true]", False),
    ("[true] == [1]", False), ("[1] == [true]", False), ("[[true]] == [[1]]", False), ("[1] != [true]", True),
    ("false in [0]", False), ("0 in [false]", False), ("[false, 0] == [0, false]", False),
    ("[1] in [[true]]", False), ("[true] in [[true]]", True), ("true in [true]", True),
    ("1 == 1.0", True), ("[1, [2]] == [1.0, [2.0]]", True), ("1.0 in [1]", True), ("-0.0 in [0]", True),
    ('"1" in [1]', False), ('1 in ["1"]', False), ('["a", [true]] == ["a", [true]]', True),
    ("0..2 == 0..2", True), ("0..2 != [0, 1, 2]", True), ("[0..1] == [0..1]", True), ("[0, 1] in [0..1]", False),
    ("1 in 0..1", True), ("true in 0..1", False), ("[true] in [0..1]", False),
]


def test_equality_and_membership_truths():
    lines = [f"assert ({e}) == {'true' if want else 'false'}" for e, want in TRUTHS]
    build_ir(Source("t.ud", NET.format("\n    ".join(lines))))


@pytest.mark.parametrize("expr,want", TRUTHS, ids=[e for e, _ in TRUTHS])
def test_each_truth(expr, want):
    stmt = f"assert {expr}" if want else f"assert not ({expr})"
    build_ir(Source("t.ud", NET.format(stmt)))


def test_equality_and_membership_agree_everywhere():
    """For every pair of sample values, a == b decides a != b, a in [b], [a] == [b],
    nested lists, and membership among other items, all alike."""
    pool = ["0", "1", "-1", "0.0", "-0.0", "1.0", "0.5", "true", "false", '""', '"1"', '"true"',
            "[]", "[1]", "[true]", "[1.0]", "[[1]]", "[[true]]", "[0, 1]", "0..1", "1..0", "[0..1]"]
    check = """
block Check(a, b) {
    e = a == b
    assert (a != b) == (not e) and (b == a) == e
    assert (a in [b]) == e and (a in [2, b, 3]) == e and ([a] in [[b]]) == e
    assert ([a] == [b]) == e and ([[a], 7] == [[b], 7]) == e
}
"""
    calls = "\n".join(f"    Check({a}, {b})" for a in pool for b in pool)
    build_ir(Source("t.ud", check + f"network N(input = [3, 8, 8]) {{\n{calls}\n}}\n"))
    # and a == b itself: true exactly for the same value, numbers compared by value
    same = {("0", "0.0"), ("0", "-0.0"), ("0.0", "-0.0"), ("1", "1.0"), ("[1]", "[1.0]")}
    lines = [f"assert ({a} == {b}) == {'true' if a == b or (a, b) in same or (b, a) in same else 'false'}"
             for a in pool for b in pool]
    build_ir(Source("t.ud", NET.format("\n    ".join(lines))))


def test_tensors_and_stages_are_never_compared():
    for stmt in ("assert [relu] == [relu]", "assert 1 in [2, relu]", "y = x\n    assert [y] == [1]"):
        err = error_of(NET.format(stmt))
        assert "cannot be compared" in err.message, err.format()


def test_op_binding_cache_tells_true_from_1():
    """Bindings are cached per argument list: bias = 1 must not reuse bias = true's."""
    err = error_of(NET.format("conv(4, 3, bias = true)\n    conv(4, 3, bias = 1)"))
    assert err.message == "conv argument 'bias' must be true or false, got 1"
    ir = build_ir(Source("t.ud", NET.format("elu(1)\n    elu(1.0)\n    elu(if true == 1 then 1.0 else 2.0)")))
    assert [d["attrs"]["alpha"] for _, d in ir.nodes(data=True) if d["op"] == "elu"] == [1.0, 1.0, 2.0]


def test_emitted_constructor_parameters_keep_int_and_float_apart():
    """Two slots of one class whose values are equal as numbers but not as values (3 and
    3.0) must not share a constructor parameter: the ELU's alpha stays a float."""
    from udnet.backends.pytorch.codegen import emit_module

    ir = build_ir(Source("t.ud", (
        "block U(a) {\n    linear(a)\n    elu(alpha = float(a))\n}\n"
        "network N(input = [4]) {\n    U(3)\n    U(5)\n}\n"
    )))
    text = emit_module(ir, "t.ud", mirror=False)  # the instance path: numbers become parameters
    assert "nn.ELU(a)" not in text
    assert "=3.0" in text and "=5.0" in text, text
    mirrored = emit_module(ir, "t.ud")  # the spec's own expression, a float at run time
    assert "nn.ELU(float(a))" in mirrored, mirrored


def test_summary_shows_a_negative_zero_bias():
    from udnet.backends.summary import op_call

    ir = build_ir(Source("t.ud", NET.format("conv(4, 3, bias = true, bias_init = -0.0)")))
    (attrs,) = [d["attrs"] for _, d in ir.nodes(data=True) if d["op"] == "conv"]
    assert op_call("conv", attrs) == "conv(4, 3, bias=true, bias_init=-0.0)"


FOLD = """
block U(c, a_long_parameter_name = "padding the call text out well beyond the width of a label", flags = [1]) {
    assert len(flags) == 1
    conv(c, 3, pad = 1)
}
network N(input = [3, 8, 8]) {
    U(3, flags = FIRST)
    U(3, flags = [1])
}
"""


@pytest.mark.parametrize("first,folded", [("[1]", True), ("[true]", False), ("[1.0]", False)])
def test_drawing_folds_only_calls_with_the_same_arguments(first, folded):
    """Repeated block calls fold into one "x2" box only when their arguments are the same
    values (the labels are cut short, so they cannot tell)."""
    from udnet.backends.graphviz import to_dot

    dot = to_dot(build_ir(Source("t.ud", FOLD.replace("FIRST", first))))
    assert ("x2" in dot) == folded


def test_drawing_shows_a_recursive_argument_changing_from_true_to_1():
    from udnet.backends.drawing.labels import call_text
    from udnet.ir.graph import Scope

    outer = Scope("f", "block", "F", {"depth": 2, "flag": True})
    inner = Scope("f.f", "block", "F", {"depth": 2, "flag": 1})
    assert call_text(inner, outer) == "F(flag=1, ...)"


def test_a_range_slices_like_a_list_without_making_its_items():
    """docs/language.md: a range behaves like a list in slicing; a huge one stays cheap."""
    from udnet.pipeline import build_ir

    ir = build_ir(
        "network N(input = [3, 8, 8]) {\n"
        "    r = (1..10**18)[-3:]\n"
        "    assert len(r) == 3 and r[0] == 10**18 - 2 and r[2] == 10**18\n"
        "    assert (1..5)[1:3] == 2..3 and (1..5)[:-4] == 1..1 and len((1..5)[4:2]) == 0\n"
        "    conv(len((1..5)[1:3]), 3)\n"
        "}\n"
    )
    assert ir.output_shape[0] == 2
