"""What the eval-mode comparisons of tests/test_op_table.py cannot show: drop_path's
training distribution, frozen batch norm's buffers and checkpoints, and the warning for
a join that has nothing to join."""

from __future__ import annotations

import pytest
import torch

import udnet
from udnet.errors import Source
from udnet.passes.manager import Options
from udnet.passes.prune import run as prune
from udnet.pipeline import build_ir

pytestmark = pytest.mark.usefixtures("one_thread")


def test_drop_path_drops_whole_samples_and_rescales():
    """StochasticDepth(p, "row"): each sample is all zeros (probability p) or x / (1 - p)."""
    p, n = 0.3, 4000
    model = udnet.load("network N(input = [3, 2, 2]) { drop_path(0.3) }").train()
    torch.manual_seed(0)
    x = torch.rand(n, 3, 2, 2) + 1.0
    y = model(x)
    dropped = (y == 0).flatten(1).all(1)
    kept = ~dropped
    assert ((y == 0).flatten(1).any(1) == dropped).all()  # all or nothing per sample
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    sd = (n * p * (1 - p)) ** 0.5
    assert abs(dropped.sum().item() - n * p) < 4.5 * sd
    model.eval()
    assert model(x) is x  # the identity in eval: not even a copy


def test_drop_path_on_a_residual_branch_keeps_the_shortcut():
    model = udnet.load("network N(input = [4, 3, 3]) { x = x + (x |> conv(4, 1) |> drop_path(0.5)) }").train()
    torch.manual_seed(1)
    x = torch.randn(64, 4, 3, 3)
    y = model(x)
    branch = model.conv(x)
    for i in range(len(x)):
        assert torch.allclose(y[i], x[i]) or torch.allclose(y[i], x[i] + 2 * branch[i], atol=1e-6)


def test_frozen_bn_is_buffers_only_and_loads_batch_norm_checkpoints():
    model = udnet.load("network N(input = [4, 3, 3]) { bn: frozen_bn }")
    assert not list(model.parameters())
    assert list(model.state_dict()) == ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    trained = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        for t in (trained.weight, trained.bias, trained.running_mean, trained.running_var):
            t.copy_(torch.rand(4) + 0.5)
    model.bn.load_state_dict(trained.state_dict())  # num_batches_tracked is dropped
    x = torch.randn(5, 4, 3, 3)
    expected = trained.eval()(x)
    torch.testing.assert_close(model.train()(x), expected)  # frozen: training changes nothing
    torch.testing.assert_close(model.bn.running_mean, trained.running_mean)
    assert model.bn.eps == 1e-5  # torchvision's FrozenBatchNorm2d default


@pytest.mark.parametrize("call, rates", [("join(x |> conv(4, 1))", None),
                                          ("join(x |> conv(4, 1), drop_local = 0.2)", "drop_local")])
def test_a_join_of_one_tensor_warns_where_it_is_written(call, rates):
    ir = build_ir(Source("j.ud", f"network N(input = [4, 3, 3]) {{\n    x = {call}\n}}\n"))
    (warning,) = prune(ir, Options()).warnings
    assert (warning.span.line, warning.span.col) == (2, 9)
    assert "single input" in warning.message
    assert (rates or "it is its input") in warning.message
    assert not [d for _, d in ir.nodes(data=True) if d["op"] == "join"]


def test_joins_of_several_inputs_do_not_warn():
    ir = build_ir("network N(input = [4, 3, 3]) { x = join(x, x |> conv(4, 1), drop_local = 0.2) }")
    assert not prune(ir, Options()).warnings
