"""Numerical equality with torchvision: MobileNetV2, EfficientNet-B0, the ResNet-50-FPN backbone.

In an environment with torchvision and udnet (``pip install -e .``) installed:

    python benchmarks/compare_torchvision.py                      # all three, 224x224, batch 2
    python benchmarks/compare_torchvision.py --only fpn --size 320 --dtype float64

For each model, torchvision's module is built with random weights (weights=None, seeded);
its batch norms' affine and statistics, which its initialisation leaves at ones and zeros,
are drawn at random too, so that every tensor of the checkpoint matters. Its state_dict is
loaded into the module compiled from the spec with strict=True. Then, for one input:

* eval: the outputs;
* train: the outputs with the random ops seeded alike (dropout and stochastic depth draw
  in the same order in both), the gradients of the mean square of the output (all
  together), and the batch-norm statistics after the step.

Each figure is max |udnet - torchvision| / max |torchvision|; the script exits with
status 1 when one exceeds --tol. --dtype float64 runs both in double precision, where
what float32 rounding differs by (torchvision's frozen batch norm computes
x * scale + shift, udnet's calls batch_norm) vanishes. Without torchvision it says so and
exits with 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "..", "specs")

# name -> its spec
MODELS = {
    "mobilenet_v2": "mobilenet.ud",
    "efficientnet_b0": "efficientnet.ud",
    "fpn": "fpn.ud",
}


def reference(name: str):
    import torchvision

    if name == "fpn":
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

        return resnet_fpn_backbone(backbone_name="resnet50", weights=None)
    return getattr(torchvision.models, name)(weights=None)


def randomise_norms(model) -> None:
    """Batch-norm weights, biases and statistics (trained or frozen) drawn at random."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if "BatchNorm" in type(m).__name__:
                m.weight.copy_(torch.randn_like(m.weight) * 0.5 + 1.0)
                m.bias.copy_(torch.randn_like(m.bias) * 0.5)
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.5)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)


def outputs(y) -> dict:
    """The model's output as name -> tensor (a single tensor is named 'out')."""
    return dict(y) if isinstance(y, dict) else {"out": y}


def rel(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def compare_outputs(mine, ref) -> float:
    mine, ref = outputs(mine), outputs(ref)
    assert list(mine) == list(ref), f"output names {list(mine)} != {list(ref)}"
    for k in ref:
        assert mine[k].shape == ref[k].shape, f"output {k}: {tuple(mine[k].shape)} != {tuple(ref[k].shape)}"
    return max(rel(mine[k], ref[k]) for k in ref)


def train_step(model, x, seed: int):
    import torch

    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    y = model(x)
    loss = sum(t.square().mean() for t in outputs(y).values())
    loss.backward()
    return y


def compare(name: str, size: int, batch: int, dtype: str = "float32") -> dict[str, float]:
    import torch

    import udnet

    torch.manual_seed(0)
    ref = reference(name)
    randomise_norms(ref)
    mine = udnet.load(os.path.join(SPECS, MODELS[name]), input=[3, size, size])
    mine.load_state_dict(ref.state_dict(), strict=True)
    ref, mine = ref.to(getattr(torch, dtype)), mine.to(getattr(torch, dtype))
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(getattr(torch, dtype))
    errors = {}
    with torch.no_grad():
        errors["eval output"] = compare_outputs(mine.eval()(x), ref.eval()(x))
    errors["train output"] = compare_outputs(train_step(mine, x, 2), train_step(ref, x, 2))
    # torchvision's FPN does not train conv1 and layer1 (requires_grad False): compare the rest.
    trained = [n for n, p in ref.named_parameters() if p.requires_grad]
    got, want = dict(mine.named_parameters()), dict(ref.named_parameters())
    errors["train gradients"] = rel(
        torch.cat([got[n].grad.flatten() for n in trained]), torch.cat([want[n].grad.flatten() for n in trained])
    )
    buffers = dict(ref.named_buffers())
    errors["train BN statistics"] = max(
        (rel(b, buffers[n]) for n, b in mine.named_buffers() if b.is_floating_point()), default=0.0
    )
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(MODELS), action="append", help="one model (repeatable)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="float64: rounding differences vanish"
    )
    parser.add_argument(
        "--tol", type=float, help="largest relative error accepted (default 1e-3 in float32, 1e-12 in float64)"
    )
    args = parser.parse_args()
    tol = args.tol if args.tol is not None else {"float32": 1e-3, "float64": 1e-12}[args.dtype]
    if importlib.util.find_spec("torchvision") is None:
        print("torchvision is not installed: nothing to compare")
        return 0
    import torch
    import torchvision

    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"input [{args.batch}, 3, {args.size}, {args.size}] in {args.dtype}; "
        "max |udnet - torchvision| / max |torchvision|"
    )
    worst = 0.0
    for name in args.only or list(MODELS):
        errors = compare(name, args.size, args.batch, args.dtype)
        print(f"  {name:<16}" + "  ".join(f"{k} {v:.2e}" for k, v in errors.items()))
        worst = max(worst, *errors.values())
    print(f"max relative error {worst:.2e} (tolerance {tol:g})")
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
