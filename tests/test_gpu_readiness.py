"""Training readiness beyond plain fp32 eager: torch.compile, mixed precision,
channels_last, DistributedDataParallel and FSDP2, and the GPU benchmark script.

Everything here runs on CPU. The shared-buffer (default) and naive (--no-share-concat)
modules of each spec are compared with each other and with fp32 eager training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import udnet

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

# A DPN small enough for CPU tests: two stages of three dual path blocks, in dpn.ud's blocks.
TINY_DPN = """
network TinyDPN(classes = 10, input = [3, 32, 32]) {
    features: {
        conv1_1: {
            conv: conv(8, 3, pad = 1)
            bn: bn(eps = 0.001)
            relu
        }
        conv1_pool: maxpool(3, stride = 2, pad = 1)
        for s in 2..3 {
            for i in 1..3 {
                kind = if i > 1 then "normal" else if s == 2 then "proj" else "down"
                conv{s}_{i}: DualPath(8, 16 * s, 4, 4, kind)
            }
        }
        conv5_bn_ac: {
            bn: bn(eps = 0.001)
            relu
        }
    }
    gap(keep = true)
    classifier: conv(classes, 1, bias = true)
    flatten
}
"""

# Small variants of every network in specs/: (spec file or text, network, parameters, input shape).
# Every 1x1 stride-2 conv reads at least 8 channels: on AVX2 CPUs, oneDNN's channels_last
# 1x1 conv with stride (jit_1x1:avx2, fewer input channels than its block of 8) computes a
# wrong weight gradient, hangs or crashes (oneDNN issue 6035). RiR at widths [4, 8] has one.
SMALL = {
    "densenet": ("densenet.ud", None, dict(k=4, blocks=[2, 2], init=8, classes=10, input=[3, 32, 32])),
    "densenet_bc": ("densenet.ud", "DenseNetBC", dict(depth=16, k=4)),
    "dpn": ("dpn.ud+tiny", "TinyDPN", {}),
    "fractal": ("fractal.ud", None, dict(C=2, widths=[8, 16], drop=[0.0, 0.0], drop_local=0.0, drop_global=0.0)),
    "highway_cifar": ("highway.ud", None, dict(widths=[8, 8, 8], highways=[1, 1, 1], drop_in=0.0, drop=0.0)),
    "highway_mlp": ("highway.ud", "HighwayMLP", dict(depth=4, units=16)),
    "resnet": ("resnet.ud", None, dict(layers=[1, 1, 1, 1], kind="bottleneck", classes=10, input=[3, 32, 32])),
    "rir": ("rir.ud", None, dict(widths=[8, 16], blocks=[1, 1])),
}
DENSE = ("densenet", "densenet_bc", "dpn")  # the networks with shared concat buffers
BATCH = 4


def _spec(name):
    spec, network, params = SMALL[name]
    if spec == "dpn.ud+tiny":
        return (SPECS / "dpn.ud").read_text() + TINY_DPN, network, params
    return str(SPECS / spec), network, params


def load(name, shared=True):
    spec, network, params = _spec(name)
    torch.manual_seed(0)
    return udnet.load(spec, network, disable=() if shared else ("share-concat",), **params).train()


def pair(name, shared=True):
    """The naive module of ``name`` and, with the same weights, the module under test: the
    shared-buffer compile, or (``shared=False``) a second naive one."""
    naive, model = load(name, shared=False), load(name, shared)
    model.load_state_dict(naive.state_dict())
    return naive, model


def batch(name):
    torch.manual_seed(1)
    params = SMALL[name][2]
    shape = params.get("input") or {"highway_mlp": [784]}.get(name, [3, 32, 32])
    return torch.randn(BATCH, *shape), torch.randint(0, 10, (BATCH,))


def step(model, x, y, autocast=None, scaler=None):
    """Gradients (by parameter name) and output of one training step from zero gradients."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
    (scaler.scale(loss) if scaler else loss).backward()
    scale = scaler.get_scale() if scaler else 1.0
    grads = {n.removeprefix("_orig_mod."): p.grad / scale for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    return grads, out.detach().float()


def rel_err(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


def grad_err(got, want):
    """Relative error of all gradients together (a BatchNorm weight's gradient can be
    almost zero on its own, so per-tensor relative errors measure nothing)."""
    assert got.keys() == want.keys()
    return rel_err(torch.cat([got[n].flatten() for n in want]), torch.cat([want[n].flatten() for n in want]))


# --- torch.compile ----------------------------------------------------------------------


# aot_eager (the autograd graphs inductor would get) on one network: it costs ~10 s on CPU.
@pytest.mark.parametrize("name,backend", [(n, "eager") for n in DENSE] + [("densenet_bc", "aot_eager")])
def test_torch_compile_fullgraph_training_step_matches_eager(name, backend):
    torch._dynamo.reset()
    model, compiled_src = load(name), load(name)
    compiled_src.load_state_dict(model.state_dict())
    x, y = batch(name)
    want, out = step(model, x, y)
    compiled = torch.compile(compiled_src, backend=backend, fullgraph=True)  # a graph break raises
    got, cout = step(compiled, x, y)
    torch.testing.assert_close(cout, out, rtol=1e-4, atol=1e-5)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-5, msg=n)
    # BatchNorm's running statistics advance as in eager training
    for (n, a), (_, b) in zip(compiled_src.named_buffers(), model.named_buffers()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=n)


def test_torch_compile_leaves_eager_shared_buffers_in_place():
    """Tracing takes the plain form only while compiling: the eager module still writes
    into one shared buffer (a dense block returns a link made by the custom Function)."""
    model = load("densenet_bc")
    x, y = batch("densenet_bc")
    torch.compile(model, backend="eager", fullgraph=True)(x)
    seen = []
    hook = model.features.transition1.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    model(x).sum().backward()
    hook.remove()
    (link,) = seen
    runtime = sys.modules[type(model).__module__]  # the model file's copy of the runtime
    assert type(link) is torch.Tensor and runtime._link_of(link).store.data.shape[1] == x.shape[0]
    assert "Append" in type(link.grad_fn).__name__


# --- mixed precision --------------------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False], ids=["shared", "naive"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_bf16_autocast_training_step(name, shared):
    """One bf16 autocast step against the naive module in fp32 and in bf16. The bf16
    tolerance is that of the naive module itself: in these small networks (batch 4,
    BatchNorm over few values) its bf16 gradients are 1% to 60% off the fp32 ones, so
    the module under test may be off by as much again, but no more."""
    naive, model = pair(name, shared)
    x, y = batch(name)
    ref32, out32 = step(naive, x, y)
    ref16, out16 = step(naive, x, y, autocast=torch.bfloat16)
    got, out = step(model, x, y, autocast=torch.bfloat16)
    tol = grad_err(ref16, ref32) + 0.02  # bf16's own error here, plus bf16 rounding
    assert torch.isfinite(out).all()
    assert rel_err(out, out32) <= rel_err(out16, out32) + 0.02
    assert all(g.dtype == torch.float32 for g in got.values())
    assert grad_err(got, ref16) <= 2 * tol
    assert grad_err(got, ref32) <= 2 * tol


def _fp16_cpu():
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            ok = (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
        return ok and torch.amp.GradScaler("cpu").is_enabled()
    except (RuntimeError, TypeError, AttributeError):
        return False


@pytest.mark.skipif(not _fp16_cpu(), reason="this torch has no float16 autocast or GradScaler on CPU")
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "naive"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_float16_autocast_with_grad_scaler(name, shared):
    naive, model = pair(name, shared)
    x, y = batch(name)
    ref32, _ = step(naive, x, y)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    ref16, _ = step(naive, x, y, autocast=torch.float16)
    got, out = step(model, x, y, autocast=torch.float16, scaler=scaler)
    assert torch.isfinite(out).all()
    assert grad_err(got, ref32) <= 2 * (grad_err(ref16, ref32) + 0.01)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad.mul_(scaler.get_scale())  # step() divided them for the comparison
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**10  # no inf/nan found: the step was taken
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())


# --- channels_last ----------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "naive"])
@pytest.mark.parametrize("name", sorted(n for n in SMALL if n != "highway_mlp"))  # the MLP has no 4-d tensors
def test_channels_last_matches_contiguous(name, shared):
    model = load(name, shared)
    other = load(name, shared)
    other.load_state_dict(model.state_dict())
    other = other.to(memory_format=torch.channels_last)
    x, y = batch(name)
    want, out = step(model, x, y)
    got, cout = step(other, x.contiguous(memory_format=torch.channels_last), y)
    assert rel_err(cout, out) < 1e-4  # fp32 rounding: other kernels, other summation orders
    assert grad_err(got, want) < 1e-4


# --- scale-out: DDP and FSDP2 -----------------------------------------------------------

EXAMPLE = ROOT / "examples" / "train_distributed.py"


def _example():
    spec = importlib.util.spec_from_file_location("train_distributed", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_data_parallel_step_equals_single_process(mode, tmp_path):
    """Two gloo processes, each on half of the global batch, end one SGD step with the
    parameters of one process that takes the same step. Each replica normalises with its
    own half's batch statistics (BatchNorm is not synchronised), so the single-process
    step runs the two halves as two micro-batches and averages their losses: that is the
    gradient DDP and FSDP2 compute. The module is the default compile (shared buffers)."""
    if mode == "fsdp" and not hasattr(pytest.importorskip("torch.distributed.fsdp"), "fully_shard"):
        pytest.skip("this torch has no FSDP2 (torch.distributed.fsdp.fully_shard)")
    out = tmp_path / "params.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(EXAMPLE), "--mode", mode, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    ex = _example()
    import argparse

    args = argparse.Namespace(spec=ex.SPEC, network="DenseNetBC", depth=16, k=4, batch=8, seed=0, lr=0.1)
    model = ex.build(args).train()
    assert any(type(m).__name__ == "DenseBlock" for m in model.modules())
    initial = torch.cat([p.detach().flatten() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    (x, y), = ex.batches(args, 1)
    loss = sum(torch.nn.functional.cross_entropy(model(x[i:i + 4]), y[i:i + 4]) for i in (0, 4)) / 2
    loss.backward()
    opt.step()
    want = torch.cat([p.detach().flatten() for p in model.parameters()])
    got = torch.load(out)
    assert not torch.allclose(got, initial)  # a step was taken
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --- the GPU benchmark script -----------------------------------------------------------


def test_gpu_benchmark_smoke_run(tmp_path):
    """benchmarks/gpu.py --smoke runs every case on CPU (tiny inputs, one repeat) and
    writes its JSON and markdown table, so the script cannot rot while no GPU runs it."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=240,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    table = (tmp_path / "results.md").read_text()
    cases = {row["model"] for row in rows}
    assert {"densenet121", "densenet264", "dense block L=64", "dpn92", "resnet50"} <= cases
    done = [row for row in rows if row.get("status") == "ok"]
    assert {(row["impl"], row["precision"], row["mode"]) for row in done} >= {
        ("udnet naive", "fp32", "eager"), ("udnet shared", "fp32", "eager"), ("udnet shared", "fp32", "compile")}
    assert all(row["peak_mib"] is not None and row["step_ms"] > 0 for row in done)
    assert "udnet shared" in table and "| model |" in table
