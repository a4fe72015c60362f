"""The shared-buffer runtime under gradient checkpointing and mixed precision.

A dense chain compiled with share-concat lives in one storage, and its links cross
module boundaries as tensors over it. Checkpointing any module, reentrant or not, must
give the naive module's gradients; autocast training must run and agree with the
naive module under the same autocast.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import udnet

SPECS = Path(__file__).resolve().parents[1] / "specs"

DENSENET = ("densenet.ud", None, dict(k=4, blocks=[2, 2], input=[3, 32, 32], classes=5))
DENSENET_BC = ("densenet.ud", "DenseNetBC", dict(depth=16, k=4, classes=5))
DPN68 = ("dpn.ud", None, dict(variant=68, input=[3, 32, 32], classes=5))


def _small_dpn():
    """DPN's own DualPath block (specs/dpn.ud) in a network of five blocks: dpn68 is the
    smallest variant the spec offers, and at a test's batch size its last stage's BN
    sees so few values per channel that its gradients are ill-conditioned even in
    float64 (and noise in bfloat16)."""
    blocks = (SPECS / "dpn.ud").read_text().split("network DPN")[0]
    return blocks + """
network SmallDPN(classes = 5, input = [3, 16, 16]) {
    stem: { conv: conv(16, 3, pad = 1); bn: bn(eps = 0.001); relu }
    for i in 1..3 { kind = if i > 1 then "normal" else "proj"; b{i}: DualPath(16, 16, 8, 4, kind) }
    b4: DualPath(16, 16, 8, 4, "down")
    b5: DualPath(16, 16, 8, 4)
    post: { bn: bn(eps = 0.001); relu }
    gap(keep = true)
    classifier: conv(classes, 1, bias = true)
    flatten
}
"""


SMALL_DPN = ("small-dpn", None, dict(classes=5, input=[3, 16, 16]))


def _pair(spec, network, params):
    """The naive and the shared module, with the same weights."""
    torch.manual_seed(0)
    if spec == "small-dpn":
        naive = udnet.load(_small_dpn(), disable=("share-concat",))
        shared = udnet.load(_small_dpn())
        shared.load_state_dict(naive.state_dict())
        return naive, shared
    naive = udnet.load(str(SPECS / spec), network, disable=("share-concat",), **params)
    shared = udnet.load(str(SPECS / spec), network, **params)
    shared.load_state_dict(naive.state_dict())
    return naive, shared


def _checkpointed(model, path, reentrant):
    model = copy.deepcopy(model)
    sub = model.get_submodule(path)
    forward = sub.forward
    sub.forward = lambda *args: checkpoint(forward, *args, use_reentrant=reentrant)
    return model


# (case, the checkpointed module): a dense block (starts a chain, returns its last
# link), a dense layer and a transition (read a link); DPN's first block (starts a
# chain), a later one (a link with a head in and out), a fused pre-activation unit
# inside it, and a strided block (reads a link, starts the next chain); and a module
# with whole chains inside.
CHECKPOINTED = [
    (DENSENET, "features"),
    (DENSENET, "features.denseblock1"),
    (DENSENET, "features.denseblock1.denselayer2"),
    (DENSENET, "features.transition1"),
    (SMALL_DPN, "b1"),
    (SMALL_DPN, "b2"),
    (SMALL_DPN, "b2.c1x1_a"),
    (SMALL_DPN, "b4"),
]


@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
@pytest.mark.parametrize("case,path", CHECKPOINTED, ids=[f"{c[0].split('.')[0]}-{p}" for c, p in CHECKPOINTED])
def test_checkpoint_gives_naive_gradients(case, path, reentrant):
    naive, shared = _pair(*case)
    naive, shared = naive.double().train(), shared.double().train()
    # An input that requires grad: reentrant checkpointing needs one to give any gradient.
    x = torch.randn(2, *case[2]["input"], dtype=torch.float64, requires_grad=True)
    models = []
    for model in (naive, shared):
        model = _checkpointed(model, path, reentrant)
        model(x).square().mean().backward()
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-12)
    # Recomputation runs BN again, in both (PyTorch's checkpointing does that): the
    # running statistics and num_batches_tracked agree too.
    for a, b in zip(models[0].buffers(), models[1].buffers()):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


def test_inference_and_frozen_inputs_still_run():
    """No false alarms: eval under no_grad, and training with a frozen stem."""
    _, shared = _pair(*DENSENET)
    with torch.no_grad():
        shared.eval()(torch.randn(2, 3, 32, 32))
    shared.train()
    for p in shared.features.conv0.parameters():
        p.requires_grad_(False)
    shared(torch.randn(2, 3, 32, 32)).sum().backward()
    assert shared.features.denseblock1.denselayer1.conv1.weight.grad is not None


def _rel(a, ref):
    return ((a.double() - ref).norm() / ref.norm()).item()


AUTOCAST = [DENSENET, DENSENET_BC, SMALL_DPN]


@pytest.mark.parametrize("case,dtype", [(c, torch.bfloat16) for c in AUTOCAST] + [(DENSENET, torch.float16)],
                         ids=["densenet", "densenet-bc", "dpn", "densenet-float16"])
def test_autocast_training_matches_naive(case, dtype):
    """An autocast training step on CPU: gradients and running statistics.

    Tolerance: bfloat16 keeps 8 significant bits (rounding error 2^-9, 0.2%), and at
    initialisation a training-mode BN network amplifies that rounding in its gradients:
    the naive module's own bfloat16 gradients are 10-30% (median over tensors) away from
    float64, up to several times the gradient for a few tensors. No fixed tolerance
    means anything there, so the shared module is held to the naive module's own error:
    per tensor at most twice it (plus 0.02), and its median at most 1.25 times the
    naive one. The configurations are chosen so that the naive error is small enough
    (median below 0.35) for this to reject wrong gradients (zero or missing ones have
    error 1). float16 (11 significant bits) is held to the same rule.
    """
    naive, shared = _pair(*case)
    shape = case[2].get("input", [3, 32, 32])
    ref = copy.deepcopy(naive).double().train()
    x = torch.randn(8, *shape)
    proj = torch.randn(8, 5, dtype=torch.float64)
    for model in (naive.train(), shared.train()):
        with torch.autocast("cpu", dtype):
            y = model(x)
        assert y.dtype == dtype
        (y.double() * proj).sum().backward()
    (ref(x.double()) * proj).sum().backward()
    errs = [(_rel(a.grad, r.grad), _rel(b.grad, r.grad))
            for a, b, r in zip(naive.parameters(), shared.parameters(), ref.parameters())]
    assert statistics.median(e for e, _ in errs) < 0.35  # the check has teeth here
    for e_naive, e_shared in errs:
        assert e_shared <= 2 * e_naive + 0.02
    assert statistics.median(e for _, e in errs) <= 1.25 * statistics.median(e for e, _ in errs)
    for (name, a), b in zip(naive.named_buffers(), shared.buffers()):
        if not a.dtype.is_floating_point:  # num_batches_tracked: one update per step
            assert int(b) == int(a) == 1, name
        else:
            assert b.dtype == torch.float32
            assert _rel(b, a.double()) <= 0.02, name  # statistics in float32, of bf16 values


def test_bf16_autocast_trains_dpn68():
    """dpn68 itself under autocast: a training step and an optimizer step run, every
    parameter gets a finite gradient, every BN updates its statistics once. (At
    initialisation its bfloat16 gradients are noise even in the naive module, so the
    numbers are compared on the small DPN above.)"""
    _, shared = _pair(*DPN68)
    shared.train()
    opt = torch.optim.SGD(shared.parameters(), lr=0.1)
    with torch.autocast("cpu", torch.bfloat16):
        loss = shared(torch.randn(2, 3, 32, 32)).float().square().mean()
    loss.backward()
    for p in shared.parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
    opt.step()
    bns = [m for m in shared.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {int(m.num_batches_tracked) for m in bns} == {1}
    assert all(torch.isfinite(m.running_var).all() and m.running_var.dtype == torch.float32 for m in bns)
