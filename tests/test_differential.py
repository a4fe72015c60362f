"""Differential tests: every emitted module against the reference interpreter of the IR.

The interpreter (tests/reference_interpreter.py) evaluates each IR node from its op and
attributes with torch.nn.functional; the emitted module runs the code generator's
output, with the passes on (shared concat buffers, fused readers, pruning) and with
each pass off. They share only the weights (the module's state_dict, keyed by the spec's
labels). Compared (tests/differential.py): eval outputs; the IR shape of every node;
every module's inputs and outputs, scopes included, through forward hooks (with shared
buffers too: every module takes and returns tensors); training-mode gradients of the
input and of every parameter, and BN running statistics. All in float64.

Programs: small variants of every spec in specs/, and generated programs
(tests/strategies.py) that reach shared buffers, fused readers, replaced heads, pruning
and drop-path. A generated program that does not elaborate fails the test.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings, target

import udnet
from differential import check_against_interpreter, check_eval, model_for
from programs import check_program
from reference_interpreter import ShapeMismatch, interpret
from strategies import invalid_programs, reached, valid_programs
from udnet.backends.pytorch.codegen import emit_module
from udnet.errors import UdnetError
from udnet.pipeline import build_ir, optimize

SPECS = Path(__file__).resolve().parents[1] / "specs"
CONFIGS = [(), ("prune",), ("share-concat",)]  # the default passes, and each pass off
HYPOTHESIS = dict(deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


pytestmark = pytest.mark.usefixtures("one_thread")


# Small variants of every spec (-D defines): every network of every file.
SPEC_CASES = {
    "densenet": ("densenet.ud", None, dict(blocks=[2, 3], k=4, init=8, input=[3, 16, 16], classes=5)),
    "densenet-bc": ("densenet.ud", "DenseNetBC", dict(depth=10, k=3, input=[3, 12, 12], classes=5)),
    "resnet-basic": ("resnet.ud", None, dict(layers=[1, 1, 1, 1], kind='"basic"', input=[3, 16, 16], classes=5)),
    "resnet-bottleneck": ("resnet.ud", None, dict(layers=[1, 1, 1, 1], kind='"bottleneck"', input=[3, 16, 16],
                                                  classes=5)),
    "dpn68": ("dpn.ud", None, dict(variant=68, input=[3, 32, 32], classes=5)),
    "fractal": ("fractal.ud", None, dict(C=3, widths=[4, 6], drop=[0.0, 0.1], input=[3, 8, 8])),
    "highway": ("highway.ud", None, dict(widths=[3, 4, 5], highways=[1, 2, 1])),
    "highway-mlp": ("highway.ud", "HighwayMLP", dict(depth=4, units=6, input=[12])),
    "rir": ("rir.ud", None, dict(widths=[2, 4, 6], blocks=[1, 2, 1], input=[3, 8, 8])),
    "mobilenet": ("mobilenet.ud", None, dict(input=[3, 16, 16], classes=5)),
    # Drop-path (stochastic depth 0.2) is turned off in training like dropout. At 16x16 four
    # stages run at 1x1, where each batch norm sees 3 values (batch 3) and the input
    # gradient amplifies float64 rounding past the tolerance; at 32x32 two do.
    "efficientnet": ("efficientnet.ud", None, dict(input=[3, 32, 32], classes=5)),
    "fpn": ("fpn.ud", None, dict(layers=[1, 1, 1, 1], out=4, input=[3, 32, 32])),
    "unet": ("unet.ud", None, dict(widths=[2, 4, 6], input=[1, 8, 8])),
    "unet-bilinear": ("unet.ud", None, dict(widths=[2, 4, 6], bilinear="true", align_corners="true", input=[1, 8, 8])),
}


def _spec_ir(case, disabled):
    spec, network, params = SPEC_CASES[case]
    ir = build_ir(str(SPECS / spec), network, [f"{k}={v}" for k, v in params.items()])
    optimize(ir, disabled)
    return ir


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_spec_variants_match_the_interpreter(case):
    checked: set[str] = set()
    for disabled in CONFIGS:
        ir = _spec_ir(case, disabled)
        source = emit_module(ir, "test.ud")
        if source in checked:
            continue  # this pass changes nothing here: the very same code was checked
        checked.add(source)
        check_against_interpreter(ir)


def test_every_spec_network_is_covered():
    import re

    for path in sorted(SPECS.glob("*.ud")):
        networks = re.findall(r"^network (\w+)", path.read_text(), re.M)
        covered = {net or networks[0] for spec, net, _ in SPEC_CASES.values() if spec == path.name}
        assert covered == set(networks), path.name


@settings(max_examples=18, **HYPOTHESIS)
@given(valid_programs())
def test_generated_programs_match_the_interpreter(text):
    plain = build_ir(text)  # a valid program must elaborate: a UdnetError fails the test
    for disabled in CONFIGS:
        ir = copy.deepcopy(plain)
        reports = optimize(ir, disabled)
        if not disabled:
            features = reached(ir, reports)
            for f in sorted(features):
                event(f)
            target(float(len(features)), label="features reached")
        check_against_interpreter(ir)


@settings(max_examples=60, **HYPOTHESIS)
@given(invalid_programs())
def test_invalid_programs_fail_at_the_planted_statement(case):
    text, wrong = case
    err = check_program(text)
    assert isinstance(err, UdnetError), f"{wrong!r} was accepted"
    line = text.split("\n")[err.span.line - 1]
    assert line.strip() == wrong, (err.format(), wrong)


def test_generated_programs_reach_buffers_fused_readers_and_pruning():
    """At least 30% of the valid programs get a shared buffer, a fused reader and a
    pruned node each (measured on the IR after the default passes)."""
    seen: list[set[str]] = []

    @settings(max_examples=60, **HYPOTHESIS)
    @given(valid_programs())
    def sample(text):
        ir = build_ir(text)
        seen.append(reached(ir, optimize(ir)))

    sample()
    share = {f: sum(f in s for s in seen) / len(seen) for f in
             ("shared buffer", "fused reader", "pruned", "replaced head", "drop-path")}
    for f in ("shared buffer", "fused reader", "pruned"):
        assert share[f] >= 0.3, share
    assert share["replaced head"] >= 0.15 and share["drop-path"] >= 0.1, share
    many = {f: sum(f in s for s in seen) / len(seen) for f in ("named outputs", "several inputs")}
    assert min(many.values()) >= 0.15, many


# ---- drop-path: the one random part, tested for its distribution ----

JOIN_SPEC = """
network J(input = [1, 1, 1]) {
    x = join(x |> a: conv(1, 1), x |> b: conv(1, 1), drop_local = 0.3, drop_global = 0.0)
}
"""


def _join_module(model):
    (join,) = [m for m in model.modules() if type(m).__name__ == "Join"]
    return join


def test_drop_path_keeps_each_input_with_probability_one_minus_p():
    """Local drop-path drops each input with probability drop_local (keeping at least one)
    and averages the kept ones: with inputs 0 and 1 and p = 0.3, both are kept (mean 0.5)
    with probability 0.7^2, only the second (1) with 0.3 * 0.7 + 0.3^2 / 2."""
    torch.manual_seed(0)
    join = _join_module(udnet.load(JOIN_SPEC)).train()
    n, p = 4000, 0.3
    zeros, ones = torch.zeros(n, 1, 1, 1), torch.ones(n, 1, 1, 1)
    out = join(zeros, ones).flatten()
    assert set(out.unique().tolist()) <= {0.0, 0.5, 1.0}
    both = (out == 0.5).float().mean().item()
    second = (out == 1.0).float().mean().item()
    assert abs(both - (1 - p) ** 2) < 0.04, both
    assert abs(second - (p * (1 - p) + p * p / 2)) < 0.04, second
    join.eval()
    torch.testing.assert_close(join(zeros, ones), torch.full_like(zeros, 0.5))  # eval: the mean


def test_global_drop_path_keeps_the_chosen_column():
    """Columns are numbered from the right: column 1 is the last operand of a flat join."""
    model = udnet.load(JOIN_SPEC).double().train()
    join = _join_module(model)
    join.drop_local = 0.0
    x = torch.randn(3, 1, 1, 1, dtype=torch.float64)
    ir = build_ir(JOIN_SPEC)
    values = interpret(ir, x, {k: v.detach() for k, v in model.state_dict().items()})
    operands = ir.inputs(next(n for n, d in ir.nodes(data=True) if d["op"] == "join"))
    for column, operand in ((1, operands[-1]), (2, operands[0])):
        join.global_columns = torch.full((3,), column)
        torch.testing.assert_close(join(values[operands[0]], values[operands[1]]), values[operand])


def test_interpreter_rejects_a_wrong_ir_shape():
    """The shape check itself: an IR whose stated shape torch does not produce fails."""
    ir = build_ir("network N(input = [2, 7, 9]) { maxpool(2, ceil = true) }")
    pool = next(n for n, d in ir.nodes(data=True) if d["op"] == "maxpool")
    assert ir.nodes[pool]["shape"] == (2, 4, 5)
    ir.nodes[pool]["shape"] = (2, 4, 4)
    with pytest.raises(ShapeMismatch, match=r"the IR says \[2, 4, 4\], torch computes \[2, 4, 5\]"):
        check_eval(ir, model_for(build_ir("network N(input = [2, 7, 9]) { maxpool(2, ceil = true) }")))


def _axes():
    """(size, kernel, stride, pad, dilation) per axis: every small combination."""
    return [(n, k, s, p, d) for n in range(1, 9) for k in range(1, 5) for s in range(1, 4)
            for p in range(0, 3) for d in (1, 2)]


@pytest.mark.parametrize("op", ["conv", "maxpool", "avgpool"])
def test_window_shape_rules_agree_with_torch(op):
    """The IR's spatial shape rule for every small size, kernel, stride, padding, dilation
    (conv) and ceil mode (pools), against the shape torch computes; each combination on
    the height axis with a different one on the width axis, so a swap of the two shows."""
    from udnet.ops import OPS, ShapeError, infer_op

    axes = [a for a in _axes() if op == "conv" or (a[4] == 1 and 2 * a[3] <= a[1])]
    bad = []
    for i, (h, kh, sh, ph, dh) in enumerate(axes):
        w, kw, sw, pw, dw = axes[(i * 7 + 3) % len(axes)]
        for ceil in ((False,) if op == "conv" else (False, True)):
            x = torch.zeros(1, 2, h, w)
            try:
                if op == "conv":
                    attrs = OPS[op].bind([2, [kh, kw]], dict(stride=[sh, sw], pad=[ph, pw], dilation=[dh, dw]))
                    got = torch.nn.functional.conv2d(x, torch.zeros(2, 2, kh, kw), None, (sh, sw), (ph, pw), (dh, dw))
                else:
                    attrs = OPS[op].bind([[kh, kw]], dict(stride=[sh, sw], pad=[ph, pw], ceil=ceil))
                    f = torch.nn.functional.max_pool2d if op == "maxpool" else torch.nn.functional.avg_pool2d
                    got = f(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil)
                want = tuple(got.shape[1:]) if got.numel() else None
            except RuntimeError:
                want = None
            try:
                mine = infer_op(OPS[op], (2, h, w), attrs)
            except ShapeError:
                mine = None
            if mine != want:
                bad.append(f"{op} {h}x{w} kernel {kh}x{kw} stride {sh}x{sw} pad {ph}x{pw} dilation {dh}x{dw} "
                           f"ceil {ceil}: IR {mine}, torch {want}")
    assert not bad, f"{len(bad)} disagreements, e.g.\n" + "\n".join(bad[:8])
