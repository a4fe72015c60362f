"""Structural facts of the specs in specs/ beyond parameter counts: the join
pattern of FractalNet, the gate of highway layers, the two streams of RiR, the
dual paths of DPN, the shortcuts of ResNet, the inverted residuals of MobileNetV2 and
EfficientNet, the pyramid of FPN and the skips of U-Net."""

from __future__ import annotations

from pathlib import Path

import pytest

from udnet.pipeline import build_ir

SPECS = Path(__file__).resolve().parent.parent / "specs"


def ir_of(spec, *defines, network=None):
    return build_ir(str(SPECS / spec), network=network, defines=list(defines))


def nodes(ir, op, prefix=""):
    return [n for n in ir.topo() if ir.nodes[n]["op"] == op and ir.path(n).startswith(prefix)]


@pytest.mark.parametrize("C,fan_in", [(2, [2]), (3, [2, 3]), (4, [2, 3, 2, 4])])
def test_fractal_joins_are_flat(C, fan_in):
    # Figure 1 of the paper: a join after every second layer of the deepest
    # column, each merging every column that ends there (C at the block's end).
    ir = ir_of("fractal.ud", f"C={C}")
    for b in range(1, 6):
        joins = nodes(ir, "join", f"block{b}.")
        assert [ir.in_degree(j) for j in joins] == fan_in
        convs = nodes(ir, "conv", f"block{b}.")
        assert len(convs) == 2**C - 1
        # the deepest column: most convs on any path through the block
        depth = {}
        for n in ir.topo():
            if ir.path(n).startswith(f"block{b}."):
                before = [depth[u] for u in ir.inputs(n) if u in depth]
                depth[n] = max(before, default=0) + (ir.nodes[n]["op"] == "conv")
        assert depth[joins[-1]] == 2 ** (C - 1)


def test_fractal_drop_path_parameters_reach_every_join():
    ir = ir_of("fractal.ud", "drop_local=0.2", "drop_global=0.25")
    joins = nodes(ir, "join")
    assert len(joins) == 5 * 2
    assert all(ir.nodes[j]["attrs"] == {"drop_local": 0.2, "drop_global": 0.25} for j in joins)


def test_highway_gates_carry_bias():
    ir = ir_of("highway.ud")
    gates = nodes(ir, "gate")
    assert len(gates) == 4 + 5 + 5
    for g in gates:
        h, x, t = ir.inputs(g)
        assert ir.nodes[h]["op"] == "relu" and ir.nodes[t]["op"] == "sigmoid"
        t_conv = ir.nodes[ir.inputs(t)[0]]
        assert t_conv["op"] == "conv" and t_conv["attrs"]["bias_init"] == -2.0
        assert ir.nodes[ir.inputs(h)[0]]["attrs"]["bias_init"] == 0.0


def test_highway_mlp_builds():
    ir = ir_of("highway.ud", "depth=20", network="HighwayMLP")
    assert len(nodes(ir, "gate")) == 18
    assert ir.output_shape == (10,)


def test_rir_streams():
    ir = ir_of("rir.ud")
    # every generalised block sums three terms into r and two into t
    for width, prefix in ((48, "group1."), (96, "group2."), (192, "group3.")):
        adds = [ir.in_degree(a) for a in nodes(ir, "add", prefix) if ".layer" in ir.path(a)]
        assert adds == [3, 2] * 6
        slices = nodes(ir, "slice", prefix)
        assert all(ir.nodes[s]["shape"][0] == ir.nodes[ir.inputs(s)[0]]["shape"][0] // 2 for s in slices)
        concats = nodes(ir, "concat", prefix)
        assert all(ir.nodes[c]["shape"][0] == 2 * width for c in concats)
    assert ir.output_shape == (10,)


@pytest.mark.parametrize("variant,final", [(68, 832), (92, 2688), (98, 2688), (131, 2688)])
def test_dpn_paths(variant, final):
    ir = ir_of("dpn.ud", f"variant={variant}")
    (bn,) = [n for n in nodes(ir, "bn") if ir.path(n) == "features.conv5_bn_ac.bn"]
    assert ir.nodes[bn]["shape"] == (final, 7, 7)
    # each block: one residual sum, and the dense path grows by concatenation
    blocks = {ir.nodes[n]["block"] for n in nodes(ir, "add")}
    assert all(b.startswith("features.conv") for b in blocks)
    assert len(nodes(ir, "add")) == len(nodes(ir, "concat")) == len(blocks)


@pytest.mark.parametrize("depth,projections", [(18, 3), (34, 3), (50, 4), (101, 4)])
def test_resnet_projection_shortcuts(depth, projections):
    ir = ir_of("resnet.ud", f"depth={depth}")
    downs = {ir.nodes[n]["scope"] for n in nodes(ir, "conv") if ".downsample" in ir.path(n)}
    assert len(downs) == projections
    assert ir.output_shape == (1000,)


def test_mobilenet_v2_inverted_residuals():
    ir = ir_of("mobilenet.ud")
    # Table 2: a residual sum in every repeat after the first of a stage (7 stages, 17 blocks)
    assert len(nodes(ir, "add")) == 10
    assert len(nodes(ir, "relu6")) == 35  # stem, 1 + 2 per expanding block, last conv
    depthwise = [n for n in nodes(ir, "conv") if ir.nodes[n]["attrs"]["groups"] > 1]
    assert len(depthwise) == 17
    assert all(ir.nodes[n]["attrs"]["groups"] == ir.nodes[n]["shape"][0] for n in depthwise)
    assert ir.output_shape == (1000,)


def test_efficientnet_b0_stochastic_depth_and_squeeze_excitation():
    ir = ir_of("efficientnet.ud")
    # torchvision's rate: 0.2 * (block index from 0) / 16, on the blocks with a residual sum
    rates = [ir.nodes[n]["attrs"]["p"] for n in nodes(ir, "drop_path")]
    assert rates == [0.2 * i / 16 for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)]
    assert len(nodes(ir, "add")) == 9
    # one squeeze-excitation gate per block: [C, 1, 1] * [C, H, W]
    products = nodes(ir, "mul")
    assert len(products) == 16
    for n in products:
        shapes = sorted(ir.nodes[u]["shape"] for u in ir.inputs(n))
        assert shapes[0] == (shapes[1][0], 1, 1)


def test_fpn_levels():
    ir = ir_of("fpn.ud")
    assert [(name, ir.nodes[n]["shape"]) for name, n in ir.outputs()] == [
        ("0", (256, 56, 56)), ("1", (256, 28, 28)), ("2", (256, 14, 14)), ("3", (256, 7, 7)), ("pool", (256, 4, 4))]
    assert len(nodes(ir, "frozen_bn")) == 53 and not nodes(ir, "bn")
    ups = nodes(ir, "upsample")
    assert [ir.nodes[n]["attrs"]["size"] for n in ups] == [(14, 14), (28, 28), (56, 56)]
    assert len(nodes(ir, "add")) == 16 + 3  # the bottlenecks' residual sums, the top-down sums


@pytest.mark.parametrize("define,upsampler", [("bilinear=false", "conv_transpose"), ("bilinear=true", "upsample")])
def test_unet_skips(define, upsampler):
    ir = ir_of("unet.ud", define, "input=[1,48,80]")
    concats = nodes(ir, "concat")
    assert [ir.nodes[n]["shape"] for n in concats] == [(1024, 6, 10), (512, 12, 20), (256, 24, 40), (128, 48, 80)]
    assert len(nodes(ir, upsampler)) == 4 and len(nodes(ir, "maxpool")) == 4
    assert ir.output_shape == (2, 48, 80)
