"""Every module of a network compiled with shared buffers takes and returns tensors as
the naive (--no-share-concat) module does: forward hooks at every level see the naive
module's tensors, and any submodule called on a plain tensor gives the naive result.
(Checkpointing a dense block or a DPN block: tests/test_hardening_runtime.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import udnet

pytestmark = pytest.mark.usefixtures("one_thread")

SPECS = Path(__file__).resolve().parents[1] / "specs"
CASES = {
    "densenet": ("densenet.ud", dict(k=4, blocks=[2, 3], input=[3, 32, 32], classes=5)),
    "densenet-bc": ("densenet.ud", dict(network="DenseNetBC", depth=16, k=4, classes=5)),
    # 64x64: at 32x32 dpn68's last stage is 1x1, and BN over two values per channel
    # amplifies float64 rounding past 1e-9.
    "dpn": ("dpn.ud", dict(variant=68, input=[3, 64, 64], classes=5)),
}


def _pair(name):
    spec, params = CASES[name]
    params = dict(params)
    network = params.pop("network", None)
    torch.manual_seed(0)
    naive = udnet.load(str(SPECS / spec), network, disable=("share-concat",), **params).double()
    shared = udnet.load(str(SPECS / spec), network, **params).double()
    shared.load_state_dict(naive.state_dict())
    return naive, shared


def _input(name):
    return torch.randn(2, *CASES[name][1].get("input", [3, 32, 32]), dtype=torch.float64)


def _record(model, which):
    """Forward hooks on the modules ``which`` picks: name -> list of output clones."""
    seen: dict[str, list] = {}

    def hook(name):
        def save(module, args, out):
            assert isinstance(out, torch.Tensor), (name, type(out))
            seen.setdefault(name, []).append(out.detach().clone())

        return save

    for n, m in model.named_modules():
        if which(n, m):
            m.register_forward_hook(hook(n))
    return seen


def _scopes(name, module):
    """Blocks and groups (the modules the emitter writes classes for), not single ops."""
    return type(module).__module__ != "torch.nn.modules" and not type(module).__module__.startswith("torch.")


@pytest.mark.parametrize("which", ["every-module", "scopes"])
@pytest.mark.parametrize("name", list(CASES))
def test_forward_hooks_see_the_naive_tensors(name, which):
    """Hooks on every module (each fused reader then runs its modules plainly), and
    hooks on the blocks and groups only (the fused readers stay fused): in training
    mode, float64, the hooked outputs and the gradients equal the naive module's."""
    naive, shared = _pair(name)
    pick = (lambda n, m: True) if which == "every-module" else _scopes
    x = _input(name)
    records, grads = [], []
    for model in (naive, shared):
        seen = _record(model.train(), pick)
        model(x).square().mean().backward()
        records.append(seen)
        grads.append([p.grad for p in model.parameters()])
    assert records[0].keys() == records[1].keys() and len(records[0]) > 5
    for key, outs in records[0].items():
        assert len(records[1][key]) == len(outs), key
        for a, b in zip(outs, records[1][key]):
            assert b.shape == a.shape, key
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12, msg=lambda m, key=key: f"{key}: {m}")
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
    for a, b in zip(naive.buffers(), shared.buffers()):  # one BN update per step in both
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["densenet", "dpn"])
def test_hooks_at_block_level_keep_the_buffer_shared(name):
    """Hooks on blocks see ordinary tensors, and each chain still lives in one storage:
    the links the blocks take and return are tensors over a few shared stores."""
    _, shared = _pair(name)
    seen = []
    for m in shared.modules():
        if _scopes("", m) and m is not shared:
            m.register_forward_hook(lambda mod, args, out: seen.extend([*args, out]))
    shared.train()(_input(name))
    assert all(type(t) is torch.Tensor for t in seen)
    link_of = sys.modules[type(shared).__module__]._link_of  # the model file's runtime
    stores = [link.store for link in map(link_of, seen) if link is not None]
    assert len(stores) > 5 and len({id(s) for s in stores}) <= 4


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", ["densenet", "dpn"])
def test_any_submodule_called_on_a_plain_tensor(name, mode):
    """Each module of the shared network, called on its own on a copy of the tensor the
    naive module's twin received, returns the naive twin's output."""
    naive, shared = _pair(name)
    naive, shared = getattr(naive, mode)(), getattr(shared, mode)()
    inputs: dict[str, torch.Tensor] = {}
    for n, m in naive.named_modules():
        if n:
            m.register_forward_pre_hook(lambda mod, args, n=n: inputs.setdefault(n, args[0].detach().clone()))
    with torch.no_grad():
        naive(_input(name))
    subs = dict(shared.named_modules())
    checked = 0
    for n, x in inputs.items():
        if not _scopes(n, subs[n]):
            continue
        ref_model = naive.get_submodule(n)
        with torch.no_grad():
            torch.manual_seed(1)
            want = ref_model(x.clone())
            torch.manual_seed(1)
            got = subs[n](x.clone())
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=n)
        checked += 1
    assert checked > 5
