"""The op table (udnet/ops): every op is defined whole, and its emitted module computes
what plain PyTorch computes.

* Parts: each op has a doc line, a signature in docs/language.md, a shape rule, costs,
  its PyTorch emission (constructor, fields, helper sources that define what they name)
  and its drawing (fill colour, label); and it is covered by the suites that check each
  part: a sample here, a MAC case (tests/test_semantics_reference.py OP_NETS), the summary's
  op zoo (tests/test_summary.py ZOO), the random program generator (tests/programs.py) and
  the reference interpreter (tests/reference_interpreter.py).
* Semantics: the emitted module of a one-op network against the reference interpreter,
  which evaluates the op with torch.nn.functional from the IR alone: outputs and the
  gradients of the input and of every parameter.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import udnet
import programs
from reference_interpreter import interpret
from test_semantics_reference import OP_NETS
from test_summary import ZOO
from udnet.backends.graphviz import to_dot
from udnet.ops import OPS, REQUIRED
from udnet.pipeline import build_ir

#: One call of every op, on an input shape it accepts: (input, call).
SAMPLES = {
    "conv": ([4, 7, 9], "conv(6, [3, 2], stride = [2, 1], pad = [1, 0], dilation = [1, 2], bias = true)"),
    "linear": ([5], "linear(3)"),
    "bn": ([4, 5, 5], "bn(eps = 0.001)"),
    "relu": ([4, 5, 5], "relu"),
    "sigmoid": ([4, 5, 5], "sigmoid"),
    "tanh": ([4, 5, 5], "tanh"),
    "elu": ([4, 5, 5], "elu(alpha = 0.5)"),
    "maxpool": ([3, 7, 9], "maxpool(3, stride = 2, pad = 1, ceil = true)"),
    "avgpool": ([3, 7, 9], "avgpool([2, 3], count_pad = false)"),
    "gap": ([3, 5, 6], "gap(keep = true)"),
    "upsample": ([3, 4, 5], 'upsample(2, mode = "bilinear")'),
    "dropout": ([4, 5, 5], "dropout(0.3)"),
    "identity": ([4, 5, 5], "identity"),
    "flatten": ([2, 3, 4], "flatten"),
    "conv_transpose": ([4, 5, 6], "conv_transpose(6, [3, 2], stride = [2, 1], pad = [1, 0], output_pad = [1, 0], groups = 2, "
                       "dilation = [1, 2], bias = true)"),
    "frozen_bn": ([4, 5, 5], "frozen_bn(eps = 0.001)"),
    "groupnorm": ([6, 3, 4], "groupnorm(3, eps = 0.0001)"),
    "layernorm": ([6, 3, 4], "layernorm(eps = 1e-6)"),
    "relu6": ([4, 5, 5], "relu6"),
    "silu": ([4, 5, 5], "silu"),
    "gelu": ([4, 5, 5], 'gelu(approximate = "tanh")'),
    "hardswish": ([4, 5, 5], "hardswish"),
    "hardsigmoid": ([4, 5, 5], "hardsigmoid"),
    "leaky_relu": ([4, 5, 5], "leaky_relu(slope = 0.2)"),
    "softmax": ([4, 5, 5], "softmax"),
    "drop_path": ([4, 5, 5], "drop_path(0.3)"),
    "channel_shuffle": ([6, 3, 2], "channel_shuffle(3)"),
    "adaptive_avgpool": ([3, 7, 9], "adaptive_avgpool([3, 4])"),
    "adaptive_maxpool": ([3, 7, 9], "adaptive_maxpool(2)"),
}

#: Further calls of ops with more than one form: checked against plain PyTorch like the samples.
FORMS = {
    "layernorm vector": ([6], "layernorm(affine = false)"),
    "groupnorm vector": ([6], "groupnorm(2)"),
    "upsample size": ([3, 4, 5], 'upsample(size = [7, 9], mode = "bilinear", align_corners = true)'),
    "upsample float": ([3, 4, 5], "upsample(1.5)"),
    "upsample nearest size": ([3, 4, 5], "upsample(size = 6)"),
    "mul channel": ([4, 5, 5], "x = x * (x |> gap(keep = true) |> conv(4, 1, bias = true) |> sigmoid)"),
    "mul vector": ([4, 5, 5], "x = x * (x |> gap |> linear(4) |> sigmoid)"),
    "mul spatial": ([4, 5, 5], "x = (x |> conv(1, 1) |> sigmoid) * x"),
    "mul vectors": ([6], "x = x * (x |> linear(6) |> tanh)"),
}


def test_every_op_has_a_sample():
    assert set(SAMPLES) == set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_every_part(name):
    spec = OPS[name]
    assert spec.doc and spec.rank and set(spec.rank) <= {1, 3}
    assert callable(spec.infer) and callable(spec.params) and callable(spec.macs) and callable(spec.activation)
    assert all(a.kind and (a.default is REQUIRED or a.default is None or a.default == a.default) for a in spec.args)
    for source in spec.torch.helpers:
        assert re.search(r"^(?:def|class) \w+", source, re.M), name
    assert re.fullmatch(r"#[0-9a-f]{6}", spec.draw.fill), name
    shape, call = SAMPLES[name]
    ir = build_ir(f"network N(input = {shape}) {{ x = x |> {call} }}")
    (node,) = [n for n, d in ir.nodes(data=True) if d["op"] == name]
    d = ir.nodes[node]
    in_shape = ir.nodes[ir.inputs(node)[0]]["shape"]
    desc = spec.torch.describe(in_shape, d["attrs"])
    module = desc[1]
    assert module in {m for h in spec.torch.helpers for m in re.findall(r"^(?:def|class) (\w+)", h, re.M)} or (
        module.startswith("nn.")), module
    assert spec.activation(in_shape, d["shape"], d["attrs"]) >= 0
    label = spec.draw.label(d["attrs"]) if spec.draw.label else name
    assert label and label in to_dot(ir).replace("\\n", "\n")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_is_in_every_suite(name):
    macs = {re.match(r"[a-z_0-9]+", v.split("|>")[-1].strip().removeprefix("x = "))[0] for v in OP_NETS.values()}
    assert name in macs | {k.split()[0] for k in OP_NETS}, "no MAC case in test_semantics_reference.OP_NETS"
    zoo = {d["op"] for _, d in build_ir(ZOO).nodes(data=True)}
    assert name in zoo, "not in test_summary.ZOO"
    assert re.search(rf"\b{name}\b", inspect.getsource(programs.ProgramGen)), "not in tests/programs.py ProgramGen"
    source = inspect.getsource(interpret.__globals__["_eval"])
    assert re.search(rf'"{name}"', source), "not in tests/reference_interpreter.py"


@pytest.mark.parametrize("name", sorted(OPS) + sorted(FORMS))
def test_emitted_module_matches_plain_pytorch(name, one_thread):
    """Outputs and gradients (input and parameters) of the emitted module, in eval mode,
    against the reference interpreter's torch.nn.functional computation."""
    shape, call = SAMPLES.get(name) or FORMS[name]
    source = f"network N(input = {shape}) {{ {call if call.startswith('x = ') else 'x = x |> ' + call} }}"
    ir = build_ir(source)
    torch.manual_seed(0)
    model = udnet.load(source).double().eval()
    with torch.no_grad():  # statistics and affine away from their initial values
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    x = torch.randn(2, *shape, dtype=torch.float64, requires_grad=True)
    out = model(x)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    trained = dict(model.named_parameters())
    params = {k: v.detach().clone().requires_grad_(k in trained) for k, v in model.state_dict().items()}
    x2 = x.detach().clone().requires_grad_(True)
    ref = interpret(ir, x2, params)[ir.output_node]
    torch.testing.assert_close(out, ref)
    (ref * weights).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    for key, p in trained.items():
        torch.testing.assert_close(p.grad, params[key].grad, msg=key)


def test_the_product_is_drawn_with_its_own_node_and_edges():
    ir = build_ir("network N(input = [4, 5, 5]) { x = x * (x |> gap(keep = true) |> conv(4, 1) |> sigmoid) }")
    dot = to_dot(ir)
    assert 'label="*"' in dot and "#b0306f" in dot  # the node, and its input edges' colour
    assert "element-wise product" in dot  # the legend


@pytest.mark.parametrize("name, attrs, label", [
    ("conv", dict(kernel=(3, 3), out=64, stride=(2, 2), groups=32, dilation=(2, 2)), "3x3 conv, 64 /2, g=32, d=2"),
    ("conv", dict(kernel=(1, 3), out=8, stride=(1, 1), groups=1, dilation=(1, 1)), "1x3 conv, 8"),
    ("conv_transpose", dict(kernel=(2, 2), out=16, stride=(2, 2), groups=1, dilation=(1, 1)),
     "2x2 conv_transpose, 16 x2"),
    ("conv_transpose", dict(kernel=(3, 3), out=4, stride=(1, 2), groups=2, dilation=(2, 2)),
     "3x3 conv_transpose, 4 x1x2, g=2, d=2"),
])
def test_convolution_labels_show_stride_groups_and_dilation(name, attrs, label):
    assert OPS[name].draw.label(attrs) == label
