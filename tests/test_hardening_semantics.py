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
from pathlib import Path

import pytest

from udnet.cli import main
from udnet.elaborate.elaborator import _JOIN
from udnet.errors import Source, UdnetError
from udnet.ir.ops import MAX_DIM, OPS, REQUIRED, ArgError
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
    ("upsample(scale = 2.0)", 14, "upsample argument 'scale' must be an integer, got 2.0", "write 2"),
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


NUMBER_ARGS = [(s, p, a) for s, p, a in _all_args() if a.kind in ("float", "prob")]
INTEGER_ARGS = [(s, p, a) for s, p, a in _all_args() if a.kind in ("int", "pos_int", "nonneg_int")
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
    assert spec.bind([], required)[arg.name] == arg.default  # the default is in range


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
