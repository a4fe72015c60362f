"""Several tensors in and out (docs/language.md, "Several inputs and outputs"): blocks
with several tensor inputs, named outputs of blocks, groups and networks.

The docs' feature pyramid is checked against the same network written directly in
PyTorch in torchvision's layout (state_dict loaded strictly; outputs and gradients);
every example against the reference interpreter of the IR, with the passes on and off;
summary figures against the emitted modules; errors for misuse."""

from __future__ import annotations

import copy
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import udnet
from differential import check_against_interpreter, network_outputs
from test_docs import DOCS, blocks
from udnet.backends.summary import summarize
from udnet.errors import Source, UdnetError
from udnet.pipeline import build_ir, compile_to_torch, optimize

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def doc_example(network: str) -> str:
    (text,) = [b.text for b in blocks(DOCS / "language.md") if b.lang == "ud" and f"network {network}(" in b.text]
    return text


# ---- the feature pyramid, in plain PyTorch ----


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Body(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.stem = ConvBNReLU(3, w, 2)
        self.layer1 = ConvBNReLU(w, w)
        self.layer2 = ConvBNReLU(w, 2 * w, 2)
        self.layer3 = ConvBNReLU(2 * w, 4 * w, 2)

    def forward(self, x):
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        return [c2, c3, self.layer3(c3)]


class FeaturePyramid(nn.Module):
    """torchvision's FeaturePyramidNetwork with LastLevelMaxPool, as its forward computes."""

    def __init__(self, widths, c):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(w, c, 1)) for w in widths)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, 3, padding=1)) for _ in widths)

    def forward(self, feats):
        last = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[i](feats[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[i](last))
        results.append(F.max_pool2d(results[-1], 1, 2, 0))
        return dict(zip(["0", "1", "2", "pool"], results))


class BackboneFPN(nn.Module):
    def __init__(self, w=8, c=16):
        super().__init__()
        self.body = Body(w)
        self.fpn = FeaturePyramid([w, 2 * w, 4 * w], c)

    def forward(self, x):
        return self.fpn(self.body(x))


def test_feature_pyramid_matches_plain_pytorch_outputs_and_gradients():
    torch.manual_seed(0)
    model = udnet.load(doc_example("BackboneFPN")).double()
    ref = BackboneFPN().double()
    assert sorted(model.state_dict()) == sorted(ref.state_dict())
    ref.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    outs = [model(xs[0]), ref(xs[1])]
    assert list(outs[0]) == ["0", "1", "2", "pool"]  # the spec's order
    assert [tuple(v.shape) for v in outs[0].values()] == [(2, 16, 32, 32), (2, 16, 16, 16), (2, 16, 8, 8),
                                                         (2, 16, 4, 4)]
    weights = {k: torch.randn(v.shape, dtype=torch.float64) for k, v in outs[1].items()}
    for out in outs:
        assert list(out) == list(weights)
        for k, v in out.items():
            torch.testing.assert_close(v, outs[1][k])
        sum((v * weights[k]).sum() for k, v in out.items()).backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad)
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, msg=name)


# ---- every example against the reference interpreter ----

#: A dense chain that two outputs read, one in the middle of it: the shared buffer it
#: is stored in must still give each output its channels.
DENSE_OUTPUTS = """
network DenseOutputs(input = [4, 6, 6]) {
    for i in 1..2 { x = x ++ (x |> bn |> relu |> conv(4, 1) |> bn |> relu |> conv(2, 3, pad = 1)) }
    early = x
    for i in 1..2 { x = x ++ (x |> bn |> relu |> conv(4, 1) |> bn |> relu |> conv(2, 3, pad = 1)) }
    return {early: early, late: x, pooled: x |> gap}
}
"""

EXAMPLES = {name: lambda name=name: doc_example(name) for name in ("BackboneFPN", "UNet", "TwoHeads", "Decoder")}
EXAMPLES["DenseOutputs"] = lambda: DENSE_OUTPUTS


@pytest.mark.parametrize("disabled", [(), ("prune",), ("share-concat",)])
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_match_the_interpreter(name, disabled):
    ir = build_ir(Source(f"{name}.ud", EXAMPLES[name]()))
    optimize(ir, disabled)
    if name == "DenseOutputs" and not disabled:
        assert ir.graph["buffers"], "the chain read by the outputs is still shared"
    check_against_interpreter(ir, batch=2)


def test_several_inputs_are_forward_arguments():
    model = udnet.load(doc_example("Decoder"))
    # A mirrored block's forward takes the spec's inputs under their names: Up(c)(x, skip).
    assert list(inspect.signature(model.up1.forward).parameters) == ["x", "skip"]
    fpn = udnet.load(doc_example("BackboneFPN")).fpn
    assert len(inspect.signature(fpn.forward).parameters) == 3


@pytest.mark.parametrize("name,size", [("BackboneFPN", 64), ("UNet", 32)])
def test_torch_fx_traces_several_inputs_and_outputs(name, size):
    model = udnet.load(doc_example(name)).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, size, size)
    a, b = model(x), graph(x)
    a, b = (a, b) if isinstance(a, dict) else ({"": a}, {"": b})
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_ir_outputs_are_named_ports_in_order():
    ir = build_ir(Source("fpn.ud", doc_example("BackboneFPN")))
    assert [name for name, _ in ir.outputs()] == ["0", "1", "2", "pool"]
    assert [ir.nodes[n]["shape"] for _, n in ir.outputs()] == [(16, 32, 32), (16, 16, 16), (16, 8, 8), (16, 4, 4)]
    fpn = ir.graph["scopes"]["fpn"]
    assert [name for name, _ in fpn.outputs] == ["0", "1", "2", "pool"] and len(fpn.inputs) == 3
    with pytest.raises(ValueError):
        ir.output_node  # noqa: B018 - several outputs: read ir.outputs()


def test_prune_keeps_every_output():
    text = "network N(input = [3, 8, 8]) {\n    a = x |> conv(4, 1)\n    b = x |> conv(5, 1)\n    unused = x |> conv(6, 1)\n    return {a: a, b: b}\n}\n"
    ir = build_ir(Source("n.ud", text))
    (report, *_) = optimize(ir)
    assert sorted(d["attrs"]["out"] for _, d in ir.op_nodes()) == [4, 5]
    assert len(report.warnings) == 1 and "unused" in report.warnings[0].message


def test_summary_shows_every_output_and_matches_the_modules():
    for name in ("BackboneFPN", "TwoHeads"):
        summary = summarize(build_ir(Source(f"{name}.ud", doc_example(name))), f"{name}.ud", depth=None)
        model = udnet.load(doc_example(name))
        ys = network_outputs(build_ir(Source(f"{name}.ud", doc_example(name))), model(torch.randn(1, 3, 64, 64)
                                                                                        if name == "BackboneFPN"
                                                                                        else torch.randn(1, 3, 32, 32)))
        assert [list(y.shape[1:]) for y in ys] == list(summary.outputs.values())
        modules = dict(model.named_modules())
        for r in summary.rows:
            if r.kind in ("block", "group", "op", "container"):
                assert r.params == sum(p.numel() for p in modules[r.scope].parameters()), (name, r.scope)
        assert summary.total.params == sum(p.numel() for p in model.parameters())


def test_check_prints_every_output(tmp_path):
    spec = tmp_path / "fpn.ud"
    spec.write_text(doc_example("BackboneFPN"))
    r = subprocess.run([sys.executable, "-m", "udnet", "check", str(spec)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    assert ["output", "0", "[16,", "32,", "32]"] in lines and ["output", "pool", "[16,", "4,", "4]"] in lines


def test_named_outputs_emit_deterministically_across_hash_seeds(tmp_path):
    spec = tmp_path / "fpn.ud"
    spec.write_text(doc_example("BackboneFPN"))
    texts = set()
    for seed in ("0", "1"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-m", "udnet", "compile", str(spec)], capture_output=True, text=True,
                           cwd=ROOT, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        texts.add(r.stdout)
    assert len(texts) == 1 and texts == {compile_to_torch(str(spec))}


# ---- misuse ----

NET = "block Up(c)(x, skip) {{ return x ++ skip }}\nblock Two(c) {{ return {{a: x, b: x |> conv(c, 1)}} }}\nnetwork N(input = [8, 8, 8]) {{\n    {}\n}}\n"


@pytest.mark.parametrize("stmt,message,hint", [
    ("Up(8)", "block Up takes 2 tensor(s) (x, skip), got one tensor", "(x, skip) |> Up(...)"),
    ("x = (x, x, x) |> Up(8)", "block Up takes 2 tensor(s) (x, skip), got 3 tensors", None),
    ("x = (x, x) |> relu", "2 tensors are piped into the op relu, which takes one", "block Up(c)(x, skip)"),
    ("x = (x, 3) |> Up(8)", "(a, b, ...) groups the tensors a block takes; this is the integer 3", None),
    ("Two(4)", "this gives 2 named outputs (a, b), and x holds one tensor", "o = x |> ..."),
    ("o = x |> Two(4)\n    x = o.c", "no output named 'c'; the outputs are a, b", None),
    ("o = x |> Two(4)\n    x = o |> relu", "2 named outputs (a, b) are piped into the op relu", "o.name"),
    ("x = x.a", "'.a' picks one of several named outputs; this is a tensor [8, 8, 8]", None),
    ("return {a: x, a: x}", "output 'a' is named twice", None),
    ("return {a.b: x}", "output name 'a.b' has a dot", None),
    ("return {a: 3}", "output 'a' must be a tensor, got the integer 3", None),
    ("y = [x]\n    x = x |> Two(y)", "block arguments are values; 'c' of Two got a list of 1, which holds tensors",
     "block Up(c)(x, skip)"),
])
def test_misuse_is_a_located_error(stmt, message, hint):
    with pytest.raises(UdnetError) as info:
        build_ir(Source("n.ud", NET.format(stmt)))
    err = info.value
    assert message in err.message, err.format()
    assert err.span is not None
    if hint:
        assert hint in (err.hint or ""), err.format()


@pytest.mark.parametrize("header,message", [
    ("block B(c)(a, c) { x }", "'c' is named twice in the signature of B"),
    ("block B(c)(a, x) { x }", "x is the first input of a block"),
])
def test_bad_input_declarations(header, message):
    with pytest.raises(UdnetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_ir(Source("b.ud", header + "\nnetwork N(input = [3, 4, 4]) { relu }\n"))


def test_a_block_output_read_twice_and_the_input_returned():
    text = ("block Taps(w) { a = x |> conv(w, 1); return {a: a, same: x} }\n"
            "network N(input = [3, 6, 6]) {\n    o = x |> taps: Taps(4)\n    return {sum: o.a + o.a, cat: o.a ++ o.same}\n}\n")
    ir = build_ir(Source("t.ud", text))
    for disabled in ((), ("prune",)):
        case = copy.deepcopy(ir)
        optimize(case, disabled)
        check_against_interpreter(case)
