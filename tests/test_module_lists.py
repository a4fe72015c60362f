"""Dotted labels make module lists (docs/language.md, "Module lists"): the emitted
module's state_dict is the reference PyTorch layout's, key for key, and computes what
the plain PyTorch modules compute, forward and backward."""

from __future__ import annotations

import pytest

import torch
from torch import nn

import udnet
import udnet.pipeline
from tests.test_docs import DOCS, blocks
from udnet.backends.summary import summarize
from udnet.errors import Source
from udnet.pipeline import build_ir

pytestmark = pytest.mark.usefixtures("one_thread")


def doc_example(network: str) -> str:
    (text,) = [b.text for b in blocks(DOCS / "language.md") if b.lang == "ud" and f"network {network}(" in b.text]
    return text


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Lists(nn.Module):
    """The docs example written directly in PyTorch, in torchvision's layouts."""

    def __init__(self, n=3):
        super().__init__()
        second = nn.Module()
        second.conv = nn.Sequential(conv_bn(16, 16), nn.Conv2d(16, 16, 1, bias=False))
        self.features = nn.ModuleList([conv_bn(3, 16, 2), second])
        self.convs = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1, bias=False) for _ in range(n))
        self.bns = nn.ModuleList(nn.BatchNorm2d(16) for _ in range(n))
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(16, 8, 1, bias=False)) for _ in range(2))
        self.layer_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False))])

    def forward(self, x):
        x = self.features[1].conv(self.features[0](x))
        for conv, norm in zip(self.convs, self.bns):
            x = torch.relu(norm(conv(x)))
        return self.layer_blocks[0](self.inner_blocks[0](x) + self.inner_blocks[1](x))


def test_module_lists_load_the_reference_layout_and_compute_the_same():
    torch.manual_seed(0)
    model = udnet.load(doc_example("Lists"))
    ref = Lists()
    assert list(model.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(model.state_dict())  # strict: no key renamed, none missing
    x = torch.randn(2, 3, 16, 16)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    ys = [model(xs[0]), ref(xs[1])]
    torch.testing.assert_close(ys[0], ys[1])
    for y in ys:
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad)
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, msg=name)


def test_module_lists_are_module_lists_where_numbered():
    model = udnet.load(doc_example("Lists"))
    assert isinstance(model.convs, nn.ModuleList) and len(model.convs) == 3
    assert isinstance(model.features, nn.ModuleList) and not isinstance(model.features[1], nn.ModuleList)
    assert isinstance(model.inner_blocks[1], nn.ModuleList)


def test_summary_rows_of_containers_are_their_submodules():
    source = Source("lists.ud", doc_example("Lists"))
    summary = summarize(build_ir(source), "lists.ud", depth=None)
    modules = dict(udnet.load(doc_example("Lists")).named_modules())
    rows = [r for r in summary.rows if r.kind in ("container", "block", "group", "op")]
    assert {r.scope for r in rows if r.kind == "container"} >= {"features", "features.1", "convs", "inner_blocks.1"}
    for r in rows:
        assert r.params == sum(p.numel() for p in modules[r.scope].parameters()), r.scope


def test_interleaved_lists_fold_into_one_loop():
    source = udnet.pipeline.compile_to_torch(Source("lists.ud", doc_example("Lists")))
    assert "self.convs[i](" in source and "self.bns[i](" in source
    assert 'self.convs.add_module(f"{i}"' in source


@pytest.mark.parametrize("name", ["class", "torch", "forward_", "lambda"])
def test_a_top_level_module_list_named_like_a_keyword_or_helper_builds(name):
    # such a name is no plain attribute, so the list is added by name, into the model itself
    model = udnet.load(f"network N(input = [3, 4, 4]) {{ {name}.0: conv(4, 1); {name}.1: relu }}")
    assert list(model.state_dict()) == [f"{name}.0.weight"]
    assert isinstance(getattr(model, name), nn.ModuleList)
    assert model(torch.randn(2, 3, 4, 4)).shape == (2, 4, 4, 4)
