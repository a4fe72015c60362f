"""udnet's semantics against independent references, not against its own helpers.

* Joins: the eval output is the plain mean; in training each input survives local
  drop-path with probability 1 - p (plus the "keep at least one" rescue), and a
  ``drop_global`` fraction of the batch keeps one column, the same for every join, with
  the columns equally likely. Checked by counting survivals over many samples with a
  fixed seed, within a few binomial standard deviations.
* Shapes: every op with a shape rule against the shape ``torch.nn.functional`` gives on a
  real tensor (Hypothesis over kernels, strides, padding, dilation, ceil mode and H != W),
  and against the emitted module run on that tensor.
* MACs: against ``torch.utils.flop_counter.FlopCounterMode`` on the emitted module.
* Memory: the real peak of a training step (allocator events of ``torch.profiler``).
* Pass flags: by their effect on the emitted module.
* Error quotes: the caret under the right character in a windowed long line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import udnet
from udnet.backends.pytorch.codegen import emit_module
from udnet.backends.pytorch.loader import import_source
from udnet.cli import main
from udnet.errors import Source, UdnetError
from udnet.ops import OPS
from udnet.pipeline import build_ir, compile_to_torch, optimize

SPECS = Path(__file__).resolve().parents[1] / "specs"


pytestmark = pytest.mark.usefixtures("one_thread")


def _module(spec: str, **kw):
    """The emitted Python module (its namespace) and the network instance."""
    ir = build_ir(spec)
    optimize(ir, **kw)
    mod = import_source(emit_module(ir, "test.ud"))
    return mod, mod.__dict__[mod.ROOT](), ir


def _within(count: int, n: int, p: float, sds: float = 4.5) -> bool:
    """``count`` successes of ``n`` trials is within ``sds`` binomial standard deviations of ``n * p``."""
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p)) + 1e-9


# ---------------------------------------------------------------------------
# Joins and drop-path

JOIN3 = """
network J(input = [2, 4, 4]) {
    a = x |> conv(2, 1)
    b = x |> conv(2, 1)
    c = x |> conv(2, 1)
    x = join(a, b, c, drop_local = 0.3, drop_global = 0.4)
}"""


def _probe_weights(join, n: int, m: int) -> torch.Tensor:
    """The weight each of the ``m`` inputs gets for each of ``n`` samples: [n, m].
    Input i is the one-hot vector e_i, so output column i is input i's weight."""
    probes = [F.one_hot(torch.full((n,), i), m).double() for i in range(m)]
    return join(*probes)


def test_join_eval_is_the_mean_of_its_inputs():
    mod, net, _ = _module(JOIN3)
    net.eval()
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4)
    a, b, c = (getattr(net, f"conv_{i}")(x) for i in (1, 2, 3))
    torch.testing.assert_close(net(x), (a + b + c) / 3)
    join = mod.Join(0.5, 0.5, (3, 2, 1)).eval()
    w = _probe_weights(join, 5, 3)
    assert torch.equal(w, torch.full((5, 3), 1 / 3, dtype=torch.float64))


@pytest.mark.parametrize("p", [0.15, 0.6, 1.0])
@pytest.mark.parametrize("m", [2, 3])
def test_local_drop_path_keeps_each_input_with_probability_one_minus_p(p, m):
    """Each input survives with probability (1 - p) + p**m / m: dropped with probability
    p independently, and when all are dropped, one chosen uniformly is kept. The kept
    inputs are averaged (equal weights summing to 1). With p = 1 exactly one is kept."""
    mod = import_source(compile_to_torch(JOIN3))
    join = mod.Join(p, 0.0, tuple(range(m, 0, -1))).train()
    torch.manual_seed(1234)
    n = 20_000
    w = _probe_weights(join, n, m)
    kept = w > 0
    assert kept.any(1).all()
    sizes = kept.sum(1, keepdim=True).double()
    torch.testing.assert_close(w, kept.double() / sizes)  # a mean over the kept inputs
    survive = (1 - p) + p**m / m
    for i in range(m):
        assert _within(int(kept[:, i].sum()), n, survive), (i, int(kept[:, i].sum()), n * survive)
    # all kept: every input survived its own draw
    assert _within(int(kept.all(1).sum()), n, (1 - p) ** m)


def test_dropout_keeps_each_element_with_probability_one_minus_p():
    """dropout(p) zeroes each element with probability p in training (and scales the
    rest by 1 / (1 - p)); in eval it is the identity."""
    net = udnet.load("network D(input = [4]) { dropout(0.3) }")
    x = torch.ones(5000, 4)
    torch.manual_seed(7)
    y = net.train()(x)
    kept = y != 0
    assert _within(int(kept.sum()), x.numel(), 0.7)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(net.eval()(x), x)


FRACTAL = dict(C=3, widths=[2], drop=[0.0], input=[3, 2, 2], drop_local=0.15, drop_global=0.3)


def test_global_drop_path_keeps_one_column_per_sample():
    """A drop_global fraction of the batch takes one column, uniform over 1..C, and every
    join on that column's path passes only that column's input."""
    model = udnet.load(str(SPECS / "fractal.ud"), **FRACTAL).train()
    joins = [m for m in model.modules() if type(m).__name__ == "Join"]
    assert joins
    # How many inputs each join takes: a block's join that its caller's join merges never runs.
    inputs = {}
    hooks = [j.register_forward_pre_hook(lambda m, args: inputs.__setitem__(m, len(args))) for j in joins]
    torch.manual_seed(99)
    n = 6000
    model(torch.randn(n, 3, 2, 2))
    for h in hooks:
        h.remove()
    joins = [j for j in joins if j in inputs]
    cols = joins[0].global_columns
    assert cols is not None and cols.shape == (n,)
    for j in joins:  # one choice for the whole network
        assert torch.equal(j.global_columns, cols)
    is_global = cols != -1
    assert _within(int(is_global.sum()), n, FRACTAL["drop_global"])
    for c in range(1, FRACTAL["C"] + 1):
        assert _within(int((cols == c).sum()), n, FRACTAL["drop_global"] / FRACTAL["C"]), c
    seen_columns = set()
    for j in joins:
        m = inputs[j]
        # The inputs' columns: given, or the network's deepest first (a FractalNet block's join).
        columns = j.columns or tuple(range(j.num_columns, j.num_columns - m, -1))
        assert len(columns) == m
        w = _probe_weights(j, n, m)
        for idx, c in enumerate(columns):
            mine = cols == c
            seen_columns.add(c)
            want = F.one_hot(torch.full((int(mine.sum()),), idx), m).double()
            assert torch.equal(w[mine], want), (columns, c)
        # samples on local drop-path: each input kept with probability 1 - p (+ rescue)
        local = ~is_global
        survive = (1 - j.drop_local) + j.drop_local**m / m
        for i in range(m):
            assert _within(int((w[local, i] > 0).sum()), int(local.sum()), survive)
    assert seen_columns == set(range(1, FRACTAL["C"] + 1))


def test_eval_ignores_drop_path():
    model = udnet.load(str(SPECS / "fractal.ud"), **FRACTAL).eval()
    x = torch.randn(4, 3, 2, 2)
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert torch.equal(a, model(x))
    # Like dropout, drop-path draws no random numbers where it does nothing: in eval, and
    # in training with both rates 0, so evaluating or such a run leaves the seed's stream alone.
    off = udnet.load(str(SPECS / "fractal.ud"), **{**FRACTAL, "drop_local": 0.0, "drop_global": 0.0}).train()
    for m in (model, off):
        state = torch.get_rng_state()
        m(x)
        assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------------------
# Shapes against torch.nn.functional

def _pair(v):
    return f"[{v[0]}, {v[1]}]"


@st.composite
def windowed_ops(draw):
    op = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
    c = draw(st.sampled_from([1, 2, 4]))
    h = draw(st.integers(1, 17))
    w = draw(st.integers(1, 17).filter(lambda v: v != h))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if op == "conv" else (1, 1)
    ceil = draw(st.booleans()) if op != "conv" else False
    stride_default = op != "conv" and draw(st.booleans())
    groups = draw(st.sampled_from([g for g in (1, 2, 4) if c % g == 0])) if op == "conv" else 1
    return op, c, h, w, k, None if stride_default else s, p, d, ceil, groups


def _torch_shape(op, x, k, s, p, d, ceil, groups, out=4):
    if op == "conv":
        weight = torch.zeros(out, x.shape[1] // groups, *k)
        return F.conv2d(x, weight, None, s, p, d, groups).shape[1:]
    fn = F.max_pool2d if op == "maxpool" else F.avg_pool2d
    return fn(x, k, s if s is not None else k, p, ceil_mode=ceil).shape[1:]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(windowed_ops())
def test_window_shapes_match_torch(case):
    op, c, h, w, k, s, p, d, ceil, groups = case
    if op == "conv":
        call = f"conv(4, {_pair(k)}, stride = {_pair(s)}, pad = {_pair(p)}, dilation = {_pair(d)}, groups = {groups})"
    else:
        stride = "" if s is None else f", stride = {_pair(s)}"
        call = f"{op}({_pair(k)}{stride}, pad = {_pair(p)}, ceil = {'true' if ceil else 'false'})"
    spec = f"network N(input = [{c}, {h}, {w}]) {{ {call} }}"
    x = torch.randn(1, c, h, w)
    try:
        want = tuple(_torch_shape(op, x, k, s, p, d, ceil, groups))
    except RuntimeError:
        want = None
    if want is not None and 0 in want:
        want = None  # torch returns an empty tensor where udnet refuses a 0-sized output
    try:
        ir = build_ir(spec)
        got = ir.output_shape
    except UdnetError:
        got = None
    assert got == want, (spec, got, want)
    if got is not None:  # and the emitted module computes it
        net = import_source(emit_module(ir, "t.ud")).__dict__["N"]().eval()
        with torch.no_grad():
            assert tuple(net(x).shape[1:]) == got, spec


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.integers(1, 3),
       st.sampled_from(["nearest", "bilinear"]), st.booleans())
def test_other_shape_rules_match_torch(c, h, w, scale, mode, keep):
    assume(h != w)
    x = torch.randn(1, c, h, w)
    cases = {
        f'upsample({scale}, mode = "{mode}")': F.interpolate(x, scale_factor=scale, mode=mode),
        f"gap(keep = {'true' if keep else 'false'})": F.adaptive_avg_pool2d(x, 1) if keep else x.mean((2, 3)),
        "flatten": torch.flatten(x, 1),
        "flatten |> linear(5)": F.linear(torch.flatten(x, 1), torch.zeros(5, c * h * w)),
        "gap |> linear(3, bias = false)": F.linear(x.mean((2, 3)), torch.zeros(3, c)),
    }
    for call, ref in cases.items():
        ir = build_ir(f"network N(input = [{c}, {h}, {w}]) {{ x = x |> {call} }}")
        assert ir.output_shape == tuple(ref.shape[1:]), call


# ---------------------------------------------------------------------------
# MACs against FlopCounterMode

#: One tiny network per op. FlopCounterMode counts 2 FLOPs per multiply-add of matrix
#: products and convolutions (mm, addmm, bmm, baddbmm, convolution) and nothing else; udnet
#: counts the multiply-accumulates of conv and linear and zero for everything else
#: (udnet/ops/conv.py, udnet/backends/summary.py: "the papers' convention"). The two
#: conventions therefore agree op by op: BN, activations, pooling, gap, upsample, dropout
#: and the connections (+, ++, gate, join, slices) are counted by neither, and bias
#: additions (addmm's add, conv's bias) are not multiply-adds in either. So
#: ``ir.mac_count() == FLOPs / 2`` exactly, per sample, for every op and every network,
#: including the fused BN-ReLU-conv1x1 readers of shared buffers (one bmm each).
OP_NETS = {
    "conv": "conv(6, [3, 2], stride = [2, 1], pad = [1, 0], dilation = [1, 2], bias = true)",
    "conv groups": "conv(8, 3, groups = 4, pad = 1)",
    "conv depthwise": "conv(4, 3, groups = 4)",
    "bn": "bn",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "elu": "elu",
    "identity": "identity",
    "dropout": "dropout(0.3)",
    "maxpool": "maxpool(3, stride = 2, pad = 1, ceil = true)",
    "avgpool": "avgpool([2, 3], count_pad = false)",
    "gap": "gap",
    "linear": "gap |> linear(7)",
    "flatten": "flatten |> linear(5, bias = false)",
    "upsample": 'upsample(2, mode = "bilinear")',
    "upsample size": 'upsample(size = [5, 11], mode = "bilinear", align_corners = true)',
    "upsample float": "upsample(1.5)",
    "conv_transpose": "conv_transpose(6, [3, 2], stride = [2, 1], pad = [1, 0], output_pad = [1, 0], bias = true)",
    "conv_transpose groups": "conv_transpose(8, 4, stride = 2, groups = 4, dilation = 2)",
    "frozen_bn": "frozen_bn",
    "groupnorm": "groupnorm(2)",
    "layernorm": "layernorm",
    "relu6": "relu6",
    "silu": "silu",
    "gelu": 'gelu(approximate = "tanh")',
    "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid",
    "leaky_relu": "leaky_relu(0.2)",
    "softmax": "softmax",
    "drop_path": "drop_path(0.2)",
    "channel_shuffle": "channel_shuffle(2)",
    "adaptive_avgpool": "adaptive_avgpool([3, 2])",
    "adaptive_maxpool": "adaptive_maxpool(4)",
    "mul": "x = x * (x |> gap(keep = true) |> conv(4, 1) |> sigmoid)",
    "mul vector": "x = x * (x |> gap |> linear(4) |> sigmoid)",
    "add": "x = x + (x |> conv(4, 1))",
    "concat": "x = x ++ (x |> conv(2, 3, pad = 1))",
    "gate": "x = gate(x |> conv(4, 1), x, x |> conv(4, 1) |> sigmoid)",
    "join": "x = join(x |> conv(4, 1), x |> conv(4, 3, pad = 1))",
    "slice": "x = x[1:3] |> conv(3, 1)",
}


def _flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", list(OP_NETS))
def test_op_macs_match_flop_counter(name):
    spec = f"network N(input = [4, 7, 9]) {{ {OP_NETS[name]} }}"
    _, net, ir = _module(spec)
    for batch in (1, 3):
        assert _flops(net.eval(), torch.randn(batch, 4, 7, 9)) == 2 * ir.mac_count() * batch, name


def test_every_op_has_a_mac_case():
    covered = {re.match(r"[a-z]+", v.split("|>")[-1].strip().removeprefix("x = "))[0] for v in OP_NETS.values()}
    covered |= {k.split()[0] for k in OP_NETS}
    assert set(OPS) <= covered, set(OPS) - covered


MAC_SPECS = [
    ("densenet.ud", None, dict(blocks=[2, 3], input=[3, 32, 32], classes=10)),
    ("densenet.ud", "DenseNetBC", dict(depth=22, k=6)),
    ("resnet.ud", None, dict(input=[3, 32, 32], classes=10)),
    ("resnet.ud", None, dict(depth=50, input=[3, 32, 32], classes=10)),
    ("dpn.ud", None, dict(variant=68, input=[3, 32, 32], classes=10)),
    ("dpn.ud", None, dict(variant=92, input=[3, 32, 32], classes=10)),
    ("fractal.ud", None, dict(C=3, widths=[8, 16], drop=[0.0, 0.1])),
    ("highway.ud", None, {}),
    ("rir.ud", None, dict(widths=[8, 16, 32], blocks=[1, 1, 1])),
    ("mobilenet.ud", None, dict(input=[3, 32, 32], classes=10)),
    ("efficientnet.ud", None, dict(input=[3, 32, 32], classes=10)),
    ("fpn.ud", None, dict(layers=[1, 1, 1, 1], input=[3, 64, 64])),
    ("unet.ud", None, dict(widths=[8, 16, 32], input=[1, 16, 16])),
]


@pytest.mark.parametrize("spec,network,params", MAC_SPECS,
                         ids=[f"{s[:-3]}-{n or ''}-{p.get('variant', p.get('depth', ''))}" for s, n, p in MAC_SPECS])
def test_spec_macs_match_flop_counter(spec, network, params):
    defines = [f"{k}={v}" for k, v in params.items()]
    ir = build_ir(str(SPECS / spec), network, defines)
    optimize(ir)
    model = udnet.load(str(SPECS / spec), network, **params).eval()
    x = torch.randn(1, *ir.nodes[ir.input_node]["shape"])
    assert _flops(model, x) == 2 * ir.mac_count()


#: Published multiply-accumulates at 224x224 (the papers' "FLOPs" for DPN, Table 2 of Chen
#: et al. 2017; torchvision's model docs for ResNet and DenseNet; MobileNetV2's 300M
#: multiply-adds, Sandler et al. 2018, for width 1 at 224x224), in units of 10**9.
PUBLISHED_GMACS = [
    ("dpn.ud", ["variant=92"], 6.5),
    ("dpn.ud", ["variant=98"], 11.7),
    ("dpn.ud", ["variant=131"], 16.0),
    ("resnet.ud", ["depth=18"], 1.81),
    ("resnet.ud", ["depth=50"], 4.09),
    ("densenet.ud", [], 2.83),
    ("mobilenet.ud", [], 0.300),
]


@pytest.mark.parametrize("spec,defines,gmacs", PUBLISHED_GMACS, ids=[f"{s[:-3]}-{'-'.join(d)}" for s, d, _ in PUBLISHED_GMACS])
def test_full_size_macs_match_the_published_figures(spec, defines, gmacs):
    macs = build_ir(str(SPECS / spec), None, defines).mac_count()
    assert abs(macs / 1e9 - gmacs) <= 0.01 * gmacs, macs


# ---------------------------------------------------------------------------
# Real training memory

def _dense_block(n: int) -> str:
    return f"""
block Layer(k) {{ n1: bn; r1: relu; c1: conv(4 * k, 1); n2: bn; r2: relu; c2: conv(k, 3, pad = 1) }}
network Block(n = {n}, input = [8, 16, 16]) {{
    blk: {{ for i in 1..n {{ x = x ++ (x |> l{{i}}: Layer(4)) }} }}
}}"""


def _peak_step_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak bytes the CPU allocator holds during one forward and backward, above what it
    held when the step began: every allocation and free torch makes, in order, as the
    profiler records them (parameters and the input exist before; parameter gradients,
    activations, saved tensors, shared buffers and their gradients are all counted)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x).sum().backward()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    now = peak = 0
    for _, nbytes in events:
        now += nbytes
        peak = max(peak, now)
    return peak


def test_training_peak_memory_grows_linearly_with_shared_buffers():
    """At depths 6, 12 and 18 of one dense block (batch 4, 16x16, growth 4): with shared
    buffers the peak grows by the same amount per 6 layers (second difference near zero);
    with plain torch.cat it grows quadratically (every x_l and its BN-ReLU output kept)."""
    x = torch.randn(4, 8, 16, 16)
    growth = {}
    for name, disabled in (("shared", ()), ("naive", ("share-concat",))):
        peaks = []
        for n in (6, 12, 18):
            torch.manual_seed(0)
            peaks.append(_peak_step_bytes(udnet.load(_dense_block(n), disable=disabled).train(), x))
        first, second = peaks[1] - peaks[0], peaks[2] - 2 * peaks[1] + peaks[0]
        assert first > 0, (name, peaks)
        growth[name] = (second / first, peaks)
    assert abs(growth["shared"][0]) < 0.1, growth
    assert growth["naive"][0] > 0.2, growth
    assert growth["shared"][1][2] < 0.6 * growth["naive"][1][2], growth


# ---------------------------------------------------------------------------
# Pass flags, by their effect on the emitted module

DEAD = """network N(input = [3, 8, 8]) {
    unused = x |> dead: conv(4, 3)
    conv(8, 3)
    gap
}
"""


def _compiled(tmp_path, spec_text_or_path, *flags):
    if isinstance(spec_text_or_path, Path):
        spec = spec_text_or_path
    else:
        spec = tmp_path / "spec.ud"
        spec.write_text(spec_text_or_path)
    out = tmp_path / "model.py"
    assert main(["compile", str(spec), "-o", str(out), *flags]) == 0
    mod = import_source(out.read_text())
    return out.read_text(), mod.__dict__[mod.ROOT]()


def test_no_prune_keeps_the_dead_modules(tmp_path, capsys):
    _, pruned = _compiled(tmp_path, DEAD)
    _, kept = _compiled(tmp_path, DEAD, "--no-prune")
    names = dict(kept.named_modules())
    assert "dead" in names and isinstance(names["dead"], torch.nn.Conv2d)
    assert "dead" not in dict(pruned.named_modules())
    ir = build_ir(DEAD)
    assert sum(p.numel() for p in kept.parameters()) == ir.param_count()
    assert sum(p.numel() for p in pruned.parameters()) == ir.param_count() - (4 * 3 * 9)


def test_no_share_concat_emits_plain_concatenation(tmp_path, capsys):
    spec = SPECS / "densenet.ud"
    shared_src, shared = _compiled(tmp_path, spec, "-D", "blocks=[2,2]", "-D", "input=[3,32,32]")
    plain_src, plain = _compiled(tmp_path, spec, "-D", "blocks=[2,2]", "-D", "input=[3,32,32]", "--no-share-concat")
    assert "concat_start(" in shared_src and "concat_start" not in plain_src and "torch.cat(" in plain_src
    plain.load_state_dict(shared.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(shared.eval()(x), plain.eval()(x), rtol=1e-4, atol=1e-5)


def test_fractal_column_keeps_only_that_columns_parameters(tmp_path, capsys):
    params = ["-D", "C=3", "-D", "widths=[8,16]", "-D", "drop=[0.0,0.0]"]
    _, full = _compiled(tmp_path, SPECS / "fractal.ud", *params)
    for column in (1, 2, 3):
        src, student = _compiled(tmp_path, SPECS / "fractal.ud", *params, "--fractal-column", str(column))
        # column N: 2**(N-1) conv units (3x3 conv without bias, BN) per block, then 2x2 max pooling
        # (32 -> 16 -> 8) and the classifier over the flattened 16x8x8
        convs = [(3, 8)] + [(8, 8)] * (2 ** (column - 1) - 1) + [(8, 16)] + [(16, 16)] * (2 ** (column - 1) - 1)
        want = sum(i * o * 9 + 2 * o for i, o in convs) + 16 * 8 * 8 * 10 + 10
        assert sum(p.numel() for p in student.parameters()) == want, column
        assert set(student.state_dict()) < set(full.state_dict())
        assert "Join" not in src


# ---------------------------------------------------------------------------
# The caret of a windowed long line

@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 120), st.integers(0, 120))
def test_caret_points_at_the_span_in_a_windowed_long_line(before, after):
    """A one-line spec far wider than the quote: the character above the caret in the
    quoted window is the first character of the span, and the tildes cover the span."""
    line = "network N(input = [3, 8, 8]) { " + "relu; " * before + "linear(10)" + "; relu" * after + " }"
    with pytest.raises(UdnetError) as info:
        build_ir(Source("long.ud", line + "\n"))
    text = info.value.format().splitlines()
    quoted, caret = text[1], text[2]
    at = caret.index("^")
    assert quoted[at:at + len("linear(10)")] == "linear(10)", (quoted, caret)
    assert caret[at:] == "^" + "~" * (len("linear(10)") - 1)
