"""The PyTorch backend: emitted source quality, semantics, and interoperability."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import udnet
import udnet.errors
from udnet.backends.pytorch.codegen import emit_module
from udnet.pipeline import build_ir, compile_to_torch
from programs import wellformed_programs
from torch_helpers import check_shapes, instantiate, param_count

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
FIXTURES = ROOT / "tests" / "fixtures" / "reference_state_dicts"

# (spec, network, defines, reference state_dict fixture or None)
VARIANTS = {
    "densenet121": ("densenet.ud", None, [], "densenet121"),
    "densenet169": ("densenet.ud", None, ["blocks=[6,12,32,32]"], "densenet169"),
    "densenet201": ("densenet.ud", None, ["blocks=[6,12,48,32]"], "densenet201"),
    "densenet161": ("densenet.ud", None, ["k=48", "blocks=[6,12,36,24]", "init=96"], "densenet161"),
    "densenet264": ("densenet.ud", None, ["blocks=[6,12,64,48]"], None),
    "densenet_bc_100_k12": ("densenet.ud", "DenseNetBC", [], None),
    "densenet_bc_250_k24": ("densenet.ud", "DenseNetBC", ["depth=250", "k=24"], None),
    "resnet18": ("resnet.ud", None, [], "resnet18"),
    "resnet50": ("resnet.ud", None, ["depth=50"], "resnet50"),
    "dpn68": ("dpn.ud", None, ["variant=68"], "dpn68"),
    "dpn92": ("dpn.ud", None, ["variant=92"], "dpn92"),
    "dpn98": ("dpn.ud", None, ["variant=98"], "dpn98"),
    "dpn131": ("dpn.ud", None, ["variant=131"], "dpn131"),
    "fractal_c3": ("fractal.ud", None, [], None),
    "fractal_c4": ("fractal.ud", None, ["C=4"], None),
    "highway": ("highway.ud", None, [], None),
    "rir": ("rir.ud", None, [], None),
    "mobilenet_v2": ("mobilenet.ud", None, [], "mobilenet_v2"),
    "efficientnet_b0": ("efficientnet.ud", None, [], "efficientnet_b0"),
    "resnet50_fpn": ("fpn.ud", None, [], "resnet50_fpn"),
    "unet": ("unet.ud", None, [], None),
    "unet_bilinear": ("unet.ud", None, ["bilinear=true", "align_corners=true"], None),
}
# ImageNet nets run forward/backward at 64x64 to keep CI fast; all are fully convolutional
# up to global pooling (U-Net and FPN entirely), so the parameters are the same as at 224x224.
SMALL = {name: "input=[3,64,64]" for name in ("densenet", "resnet", "dpn", "mobilenet", "efficientnet", "fpn")}
SMALL["unet"] = "input=[1,32,32]"


def _ir(name, small=False):
    spec, network, defines, _ = VARIANTS[name]
    extra = [SMALL[spec[:-3]]] if small and spec[:-3] in SMALL else []
    return build_ir(str(SPECS / spec), network, defines + extra)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_compiles_runs_forward_backward(name):
    ir_full = _ir(name)
    ir = _ir(name, small=True)
    model = instantiate(ir)
    assert param_count(model) == ir.param_count() == ir_full.param_count()
    model.train()
    x = torch.randn(2, *ir.nodes[ir.input_node]["shape"])
    y = outputs(model(x))
    assert {k: tuple(v.shape) for k, v in y.items()} == {k: (2,) + ir.nodes[n]["shape"] for k, n in ir.outputs()}
    sum(v.square().mean() for v in y.values()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def outputs(y) -> dict:
    """A module's result by output name: the one tensor of a single output is named None."""
    return dict(y) if isinstance(y, dict) else {None: y}


@pytest.mark.parametrize("name", [n for n, v in sorted(VARIANTS.items()) if v[3]])
def test_state_dict_matches_reference_implementation(name):
    """Checkpoints of torchvision/timm load with strict=True: same keys, same shapes."""
    ref = json.loads((FIXTURES / f"{VARIANTS[name][3]}.json").read_text())
    model = instantiate(_ir(name))
    mine = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert mine == {k: s for k, s in ref["state_dict"]}
    state = {k: torch.zeros(s) if s else torch.tensor(0) for k, s in ref["state_dict"]}
    model.load_state_dict(state, strict=True)


def test_fpn_returns_the_five_levels_by_torchvision_names():
    """As torchvision's BackboneWithFPN: an ordered dict '0', '1', '2', '3', 'pool', at
    strides 4, 8, 16, 32, 64; the frozen batch norms hold buffers only (106,240 elements)."""
    model = instantiate(_ir("resnet50_fpn")).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 224, 224))
    assert isinstance(y, dict)
    assert [(k, tuple(v.shape)) for k, v in y.items()] == [
        ("0", (1, 256, 56, 56)), ("1", (1, 256, 28, 28)), ("2", (1, 256, 14, 14)), ("3", (1, 256, 7, 7)),
        ("pool", (1, 256, 4, 4))]
    assert torch.equal(y["pool"], y["3"][:, :, ::2, ::2])  # max pool of a 1x1 window, stride 2
    frozen = [m for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    assert len(frozen) == 53 and not any(list(m.parameters()) for m in frozen)
    assert sum(b.numel() for b in model.buffers()) == 106_240


def test_densenet264_file_is_not_bigger_than_densenet121():
    small = compile_to_torch(str(SPECS / "densenet.ud"))
    big = compile_to_torch(str(SPECS / "densenet.ud"), defines=["blocks=[6,12,64,48]"])
    assert len(big.splitlines()) <= 1.2 * len(small.splitlines())


def test_repeats_become_loops_and_blocks_share_classes():
    src = compile_to_torch(str(SPECS / "densenet.ud"))
    tree = ast.parse(src)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes.count("DenseLayer") == 1 and classes.count("DenseBlock") == 1
    # The spec's loop, for i in 1..n, and its label, denselayer{i}.
    assert "for i in range(1, n + 1):" in src and 'f"denselayer{i}"' in src
    # The instance path folds the repeated layers into a loop of its own.
    plain = emit_module(build_ir(SPECS / "densenet.ud"), "densenet.ud", mirror=False)
    assert "for i in range(n):" in plain and 'f"denselayer{i + 1}"' in plain


def test_emitted_source_is_deterministic_and_imports_torch_only():
    a = compile_to_torch(str(SPECS / "dpn.ud"))
    b = compile_to_torch(str(SPECS / "dpn.ud"))
    assert a == b
    imports = set()
    for node in ast.walk(ast.parse(a)):
        if isinstance(node, ast.Import):
            imports |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports.add(node.module.split(".")[0])
    assert imports == {"torch"}


def test_header_names_spec_network_and_parameters():
    src = compile_to_torch(str(SPECS / "densenet.ud"), defines=["k=12"])
    doc = ast.get_docstring(ast.parse(src))
    assert "DenseNet" in doc and "densenet.ud" in doc and "k=12" in doc


@pytest.mark.parametrize("spec", ["densenet", "resnet", "dpn", "fractal", "highway", "rir", "mobilenet",
                                  "efficientnet", "fpn", "unet"])
def test_emitted_source_is_ruff_clean(spec, tmp_path):
    """ruff is a test dependency (pyproject.toml): run as a module of this interpreter, so
    that it runs (or fails for want of it) without the virtual environment on PATH."""
    out = tmp_path / "model.py"
    out.write_text(compile_to_torch(str(SPECS / f"{spec}.ud")))
    for args in (["check", "--isolated", "--no-cache"], ["format", "--isolated", "--no-cache", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_initialisation_follows_the_spec():
    model = udnet.load(str(SPECS / "highway.ud"))
    biases = {
        name: m.bias for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None
    }
    assert any(torch.all(b == -2.0) for b in biases.values()), "highway gate bias -2"
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    dn = udnet.load(str(SPECS / "densenet.ud"), blocks=[1, 1], input=[3, 32, 32], classes=5)
    assert torch.all(dn.classifier.bias == 0)
    conv = dn.features.conv0.weight
    fan_in = conv[0].numel()
    assert abs(conv.std().item() - (2.0 / fan_in) ** 0.5) < 0.25 * (2.0 / fan_in) ** 0.5  # kaiming normal


def test_load_accepts_text_and_overrides():
    text = (SPECS / "densenet.ud").read_text()
    model = udnet.load(text, "DenseNetBC", depth=40, k=12)
    ir = build_ir(str(SPECS / "densenet.ud"), "DenseNetBC", ["depth=40", "k=12"])
    assert param_count(model) == ir.param_count()
    assert param_count(udnet.load(str(SPECS / "densenet.ud"), blocks=[2, 2])) == build_ir(
        str(SPECS / "densenet.ud"), None, ["blocks=[2,2]"]
    ).param_count()


def _small_models():
    yield "densenet", udnet.load(str(SPECS / "densenet.ud"), "DenseNetBC", depth=16, k=4), (3, 32, 32)
    yield "fractal", udnet.load(str(SPECS / "fractal.ud"), C=2, widths=[4, 8], drop=[0.0, 0.1]), (3, 32, 32)
    # C = 3: a block's join merges into its caller's, which asks for its columns.
    yield "fractal3", udnet.load(str(SPECS / "fractal.ud"), C=3, widths=[4, 8], drop=[0.0, 0.1]), (3, 32, 32)
    yield "highway", udnet.load(str(SPECS / "highway.ud")), (3, 32, 32)
    yield "dpn", udnet.load(str(SPECS / "dpn.ud"), variant=68, input=[3, 32, 32], classes=7), (3, 32, 32)


@pytest.mark.parametrize("name,model,shape", list(_small_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_fx_symbolic_trace_matches_eager(name, model, shape):
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, *shape)
    # Traced shared buffers become plain concatenations: the same math, summed in
    # another order, so equal to float32 rounding of the largest output.
    with torch.no_grad():
        y, t = model(x), traced(x)
    torch.testing.assert_close(t, y, rtol=0, atol=1e-5 * float(y.abs().max()))
    assert "concat_append" not in traced.code


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name,model,shape", list(_small_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_onnx_export(name, model, shape):
    onnx = pytest.importorskip("onnx")
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, *shape),), buf, dynamo=False)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))


def test_torch_compile_small_spec():
    model = udnet.load(str(SPECS / "densenet.ud"), "DenseNetBC", depth=10, k=4).eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
import udnet

def worker(rank, spec, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = udnet.load(spec, "DenseNetBC", depth=10, k=4)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    torch.manual_seed(rank)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    loss = torch.nn.functional.cross_entropy(ddp(x), y)
    loss.backward()
    opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save(flat, f"{out}/rank{rank}.pt")
    dist.barrier()  # both ranks done before either tears the group down
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1], int(sys.argv[2]), sys.argv[3]), nprocs=2)
"""


def test_ddp_two_process_gloo_training_step(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    r = subprocess.run(
        [sys.executable, str(script), str(SPECS / "densenet.ud"), str(port), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    torch.testing.assert_close(a, b)  # gradients were all-reduced: replicas stay identical


def test_compile_cli_writes_model_and_output_is_atomic(tmp_path):
    out = tmp_path / "model.py"
    r = subprocess.run([sys.executable, "-m", "udnet", "compile", str(SPECS / "highway.ud"), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    before = out.read_bytes()
    bad = tmp_path / "bad.ud"
    bad.write_text("network N(input = [3, 8, 8]) { conv(4, 3) +++ }\n")
    r = subprocess.run([sys.executable, "-m", "udnet", "compile", str(bad), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".udnet-")] == []


def _join_calls(model):
    """Record (inputs, output) of every Join call."""
    calls = []
    for m in model.modules():
        if type(m).__name__ == "Join":
            m.register_forward_hook(lambda mod, args, out: calls.append((args, out)))
    return calls


def test_drop_path_train_and_eval_semantics():
    """Eval: every join is the plain mean of its inputs. Training: every sample of every
    join is the mean of a non-empty subset of its inputs (never a sum, never empty); at
    these rates some samples drop inputs. The probabilities themselves are checked by
    counting in test_semantics_reference.py."""
    torch.manual_seed(0)
    model = udnet.load(str(SPECS / "fractal.ud"), C=3, widths=[4], drop=[0.0], drop_local=0.5, drop_global=0.5)
    calls = _join_calls(model)
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    a, b = model(x), model(x)
    torch.testing.assert_close(a, b)  # eval: the plain mean, deterministic
    assert calls
    for args, out in calls:
        torch.testing.assert_close(out, torch.stack(args).mean(0))
    calls.clear()
    model.train()
    model(x)
    dropped = 0
    for args, out in calls:
        m = len(args)
        subsets = [[i for i in range(m) if mask >> i & 1] for mask in range(1, 2**m)]
        for s in range(x.shape[0]):
            means = [torch.stack([args[i][s] for i in sub]).mean(0) for sub in subsets]
            match = [sub for sub, mean in zip(subsets, means) if torch.allclose(out[s], mean, atol=1e-6)]
            assert match, "a training join output is not the mean of any subset of its inputs"
            dropped += len(match[0]) < m
    assert dropped > 0
    joins = [m for m in model.modules() if type(m).__name__ == "Join"]
    assert joins and all(m.global_columns is not None for m in joins)


def test_emitted_module_shapes_match_ir_for_every_spec():
    for name in ("densenet_bc_100_k12", "fractal_c3", "highway", "rir", "resnet18", "dpn68"):
        ir = _ir(name, small=True)
        check_shapes(ir, instantiate(ir), batch=2)


def test_emit_module_of_ir_is_standalone(tmp_path):
    ir = _ir("highway")
    path = tmp_path / "standalone_model.py"
    path.write_text(emit_module(ir, "highway.ud"))
    code = "import standalone_model as m, torch; net = getattr(m, m.ROOT)(); print(net(torch.randn(1,3,32,32)).shape)"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0 and "torch.Size([1, 10])" in r.stdout, r.stderr


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wellformed_programs(), st.integers(min_value=1, max_value=4))
def test_generated_specs_emit_modules_with_the_ir_shapes_and_params(text, batch):
    """Random well-formed specs compile; every IR node's shape is what the module produces
    (real forward passes, random batch sizes) and the parameter counts agree."""
    ir = build_ir(text)  # well-formed by construction: a UdnetError fails the test
    model = instantiate(ir)
    assert param_count(model) == ir.param_count()
    check_shapes(ir, model, batch=batch)


def test_the_comment_above_a_block_or_network_is_its_class_docstring():
    source = compile_to_torch("""# A file header: a blank line away from the block, so not its doc.

# Two convs.
#   y = conv(conv(x))
#no space after the hash
block Two(c) { conv(c, 1) |> conv(c, 1) }
block Bare(c) { conv(c, 1) }   # a trailing comment is no doc
# The network.
network N(input = [3, 4, 4]) { two: Two(4); bare: Bare(4) }
""")
    docs = {n.name: ast.get_docstring(n, clean=False) for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
    assert docs == {
        "Two": "Two convs.\n      y = conv(conv(x))\n    no space after the hash\n    ",
        "Bare": "Block Bare.",
        "N": "The network.",
    }
