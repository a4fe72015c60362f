"""The shared-buffer runtime (udnet/backends/pytorch/shared_buffer.py) on its own: link
tensors, their version counters, falling back on plain tensors, hooks on a fused
reader's modules, and the copy an emitted model.py carries. (The fused reader's
gradients: test_passes.py, test_fused_reader_equals_bn_relu_conv_over_the_concatenation.)"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from udnet.backends.pytorch import runtime, shared_buffer as sb
from udnet.pipeline import compile_to_torch

pytestmark = pytest.mark.usefixtures("one_thread")

SPECS = Path(__file__).resolve().parents[1] / "specs"
F64 = torch.float64


def _chain(x0, ys, channels):
    """Start a buffer with x0 and append each y: the links, first (x0) to last."""
    links = [sb.concat_start(x0, channels)]
    for y in ys:
        links.append(sb.concat_append(links[-1], y, links[-1].shape[1]))
    return links


def test_links_are_the_concatenations_and_share_one_storage():
    x0, ys = torch.randn(2, 3, 4, 5), [torch.randn(2, 2, 4, 5) for _ in range(3)]
    links = _chain(x0, ys, 9)
    for k, link in enumerate(links):
        assert type(link) is torch.Tensor and not link._is_view()
        assert torch.equal(link, torch.cat([x0, *ys[:k]], 1))
    assert len({link.untyped_storage().data_ptr() for link in links}) == 1


def test_saved_and_kept_links_survive_later_writes():
    """A link saved for backward, or kept by a hook, is not disturbed by later appends:
    each has its own version counter, and the channels under it are never rewritten."""
    x0 = torch.randn(2, 3, 4, 4, dtype=F64, requires_grad=True)
    ys = [torch.randn(2, 2, 4, 4, dtype=F64, requires_grad=True) for _ in range(2)]
    w = torch.randn(3, 4, 4, dtype=F64)
    first = sb.concat_start(x0, 7)
    kept = first.clone()
    loss = (first * w).sum()  # mul saves first
    last = sb.concat_append(sb.concat_append(first, ys[0], 3), ys[1], 5)
    (loss + last.square().sum()).backward()
    assert torch.equal(first, kept)
    plain = torch.cat([x0, *ys], 1)
    want = torch.autograd.grad((plain[:, :3] * w).sum() + plain.square().sum(), [x0, *ys])
    for got, ref in zip([x0.grad, ys[0].grad, ys[1].grad], want):
        torch.testing.assert_close(got, ref)


def test_an_append_to_the_stored_part_of_a_headed_link_extends_its_buffer():
    """DPN: a block slices the dense path off the link it was given (``link[:, h:]``,
    its head cut off) and appends to the slice: the append finds the link and extends its
    buffer in place. Values and gradients as torch.cat's."""
    x = torch.randn(2, 3, 3, 3, dtype=F64, requires_grad=True)
    ys = [torch.randn(2, 2, 3, 3, dtype=F64, requires_grad=True) for _ in range(2)]
    heads = [torch.randn(2, 4, 3, 3, dtype=F64, requires_grad=True) for _ in range(2)]
    first = sb.concat_start(x, 7)
    second = sb.concat_append(first, ys[0], head=heads[0])
    third = sb.concat_append(second[:, 4:], ys[1], head=heads[1])
    assert torch.equal(third, torch.cat([heads[1], x, ys[0], ys[1]], 1))
    assert sb._link_of(third).store is sb._link_of(second).store and sb._link_of(third).stored == 7
    other = sb.concat_append(second[:, 3:], ys[1])  # not the stored part: a plain concatenation
    assert sb._link_of(other) is None and torch.equal(other, torch.cat([second[:, 3:], ys[1]], 1))
    third.square().sum().backward()
    grads = [t.grad.clone() for t in (x, *ys, *heads)]
    for t in (x, *ys, *heads):
        t.grad = None
    torch.cat([heads[1], x, ys[0], ys[1]], 1).square().sum().backward()
    for got, t in zip(grads, (x, *ys, *heads)):  # a head the chain dropped gets no gradient
        torch.testing.assert_close(got, torch.zeros_like(got) if t.grad is None else t.grad)


def test_fused_group_is_its_three_modules_and_fuses_on_a_link():
    """FusedBnReluConv (a { bn; relu; conv } group over a buffer): the three modules in
    sequence on a plain tensor; on a link, bn_relu_conv1x1's result."""
    torch.manual_seed(0)
    group = sb.FusedBnReluConv(torch.nn.BatchNorm2d(5), torch.nn.ReLU(), torch.nn.Conv2d(5, 3, 1)).double()
    plain = torch.nn.Sequential(*group).double()
    x = torch.randn(2, 5, 4, 4, dtype=F64)
    group.eval(), plain.eval()
    assert torch.equal(group(x), plain(x))
    link = sb.concat_append(sb.concat_start(x[:, :3], 5), x[:, 3:])
    seen = []
    fused = sb.bn_relu_conv1x1
    sb.bn_relu_conv1x1 = lambda *args: seen.append(args[0]) or fused(*args)
    try:
        torch.testing.assert_close(group(link), plain(x))
    finally:
        sb.bn_relu_conv1x1 = fused
    assert len(seen) == 1 and seen[0] is link  # the group ran as one fused reader
    assert [name for name, _ in group.named_children()] == ["0", "1", "2"]


def test_append_falls_back_to_a_plain_concatenation():
    """A plain tensor, a link the buffer has grown past (a second branch), and a link
    changed in place are concatenated as they are."""
    x0, y = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    plain = sb.concat_append(x0, y, 3)
    assert torch.equal(plain, torch.cat([x0, y], 1)) and sb._link_of(plain) is None
    first = sb.concat_start(x0, 7)
    sb.concat_append(first, y, 3)
    branch = sb.concat_append(first, -y, 3)  # first no longer ends the buffer
    assert torch.equal(branch, torch.cat([x0, -y], 1))
    assert branch.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
    other = sb.concat_start(x0, 7)
    other.mul_(2)  # the storage changes with it; the link now reads as a plain tensor
    assert sb._link_of(other) is None
    assert torch.equal(sb.concat_append(other, y, 3), torch.cat([2 * x0, y], 1))


def test_append_past_the_planned_channels_falls_back():
    """A link whose next part would overrun its storage is concatenated, not written past
    the storage's end; filling it exactly stays in place."""
    x0, y = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    first = sb.concat_start(x0, 5)
    full = sb.concat_append(first, y, 3)  # 3 + 2 = 5 channels: fits
    assert full.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
    over = sb.concat_append(full, y, 5)  # 5 + 2 > 5
    assert torch.equal(over, torch.cat([x0, y, y], 1)) and sb._link_of(over) is None


def test_saved_and_copied_links_are_plain_tensors(tmp_path):
    """torch.save of a link (a hooked output) loads anywhere, weights_only included;
    the loaded tensor and a deep copy are plain tensors with the link's values."""
    link = _chain(torch.randn(2, 3, 4, 4), [torch.randn(2, 2, 4, 4)], 5)[-1]
    torch.save({"out": link}, tmp_path / "out.pt")
    loaded = torch.load(tmp_path / "out.pt", weights_only=True)["out"]
    for t in (loaded, copy.deepcopy(link)):
        assert torch.equal(t, link) and sb._link_of(t) is None
    assert sb._link_of(link) is not None


def test_chains_run_under_inference_mode():
    """Inference tensors keep no version counter; a chain still runs, in place."""
    x0, y = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    with torch.inference_mode():
        first = sb.concat_start(x0, 5)
        last = sb.concat_append(first, y, 3)
    assert torch.equal(last, torch.cat([x0, y], 1))
    assert last.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()


def test_head_links_drop_the_previous_head():
    """DPN's links: [head ++] the stored part, the next link dropping the old head."""
    d0, y1, y2 = torch.randn(2, 2, 3, 3), torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    r1, r2 = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    x1 = sb.concat_append(sb.concat_start(d0, 4), y1, 2, head=r1)
    x2 = sb.concat_append(x1, y2, 3, head=r2, drop=4)
    assert torch.equal(x1, torch.cat([r1, d0, y1], 1))
    assert torch.equal(x2, torch.cat([r2, d0, y1, y2], 1))
    assert sb._link_of(x2).stored == 4
    assert torch.equal(sb.concat_append(x1.clone(), y2, 3, head=r2, drop=4), x2)


def _modules(c_in, c_out, bias):
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(c_in).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    conv = torch.nn.Conv2d(c_in, c_out, 1, bias=bias).double()
    return bn, torch.nn.ReLU(), conv


def test_fused_reader_runs_the_modules_when_hooked():
    """A hook on the BN, the ReLU or the conv sees them run, on the naive tensors."""
    x0 = torch.randn(2, 4, 3, 3, dtype=F64)
    link = sb.concat_start(x0, 6)
    bn, relu, conv = _modules(4, 2, bias=False)
    seen = []
    relu.register_forward_hook(lambda m, args, out: seen.append(out))
    out = sb.bn_relu_conv1x1(link, bn.eval(), relu, conv)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], torch.relu(bn(x0)))
    torch.testing.assert_close(out, conv(torch.relu(bn(x0))))


@pytest.mark.parametrize("register", [
    torch.nn.modules.module.register_module_forward_hook,
    torch.nn.modules.module.register_module_forward_pre_hook,
    torch.nn.modules.module.register_module_full_backward_hook,
    torch.nn.modules.module.register_module_full_backward_pre_hook,
], ids=["forward", "forward_pre", "backward", "backward_pre"])
def test_fused_reader_runs_the_modules_under_a_global_hook(register):
    """A global hook (one that watches every module) wants to see each module run too."""
    x0 = torch.randn(2, 4, 3, 3, dtype=F64, requires_grad=True)
    bn, relu, conv = _modules(4, 2, bias=False)
    seen = []

    def hook(module, *args):
        seen.append(module)

    handle = register(hook)
    try:
        out = sb.bn_relu_conv1x1(sb.concat_start(x0, 6), bn.eval(), relu, conv)
        out.sum().backward()
    finally:
        handle.remove()
    assert {bn, relu, conv} <= set(seen)
    torch.testing.assert_close(out, conv(torch.relu(bn(x0))))


@pytest.mark.parametrize("momentum,size", [(None, 3), (0.1, 1)], ids=["cumulative", "two-values"])
def test_fused_reader_running_statistics_match_batchnorm(momentum, size):
    """BatchNorm's running statistics as it keeps them: a cumulative average where the
    momentum is None, and the unbiased variance of as few as two values per channel."""
    bn, relu, conv = _modules(4, 2, bias=False)
    bn.momentum = momentum
    ref = copy.deepcopy(bn)
    for _ in range(3):
        x0 = torch.randn(2, 4, size, size, dtype=F64)
        sb.bn_relu_conv1x1(sb.concat_start(x0, 6), bn.train(), relu, conv)
        ref.train()(x0)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn, name), getattr(ref, name), msg=name)


def test_compiling_and_jit_tracing_take_the_plain_forms(monkeypatch):
    """Under torch.compile or torch.jit.trace the functions are the plain operations (the
    storage's writes and set_ do not trace)."""
    x0, y = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    assert not sb._tracing() and sb._link_of(sb.concat_start(x0, 5)) is not None
    for name, module in (("is_compiling", torch.compiler), ("is_tracing", torch.jit)):
        with monkeypatch.context() as m:
            m.setattr(module, name, lambda: True)
            assert sb._tracing()
            first = sb.concat_start(x0, 5)
            assert first is x0 and sb._link_of(sb.concat_append(first, y, 3)) is None


def test_traced_forms_are_plain_ops():
    """Under fx tracing every function is the plain operation."""

    class Chain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn, self.relu, self.conv = _modules(5, 2, bias=False)

        def forward(self, x, y):
            x = sb.concat_append(sb.concat_start(x, 5), y, 3)
            return sb.bn_relu_conv1x1(x, self.bn, self.relu, self.conv)

    traced = torch.fx.symbolic_trace(Chain())
    nodes = traced.graph.nodes
    assert [n.target for n in nodes if n.op == "call_module"] == ["bn", "relu", "conv"]
    assert [n.target for n in nodes if n.op in ("call_function", "call_method")] == [torch.cat]
    x, y = torch.randn(2, 3, 4, 4, dtype=F64), torch.randn(2, 2, 4, 4, dtype=F64)
    torch.testing.assert_close(traced(x, y), Chain()(x, y))


def test_emitted_files_carry_the_module_unchanged():
    body = runtime.CONCAT_BUFFER.strip()
    assert body in compile_to_torch(str(SPECS / "densenet.ud"))
    assert body in Path(sb.__file__).read_text(encoding="utf-8")
    assert "concat_start" not in compile_to_torch(str(SPECS / "resnet.ud"))


def test_module_is_ruff_clean_as_emitted_code_is():
    for args in (["check", "--isolated", "--no-cache"], ["format", "--isolated", "--no-cache", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, sb.__file__], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
