"""Emitted DenseNet-121 versus a plain hand-written PyTorch DenseNet-121 (and
torchvision's, when installed): eval forward and training step on CPU.

    python benchmarks/bench_emitted_vs_handwritten.py [--batch 8] [--size 224] [--repeats 5]

The emitted module is timed as `udnet compile` writes it (shared concat buffers) and
with --no-share-concat. All candidates share one set of weights (the emitted module's
state_dict keys are torchvision's), so the script also checks that they compute the
same outputs.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from common import interleaved, report  # noqa: E402

import udnet  # noqa: E402

SPEC = os.path.join(os.path.dirname(__file__), "..", "specs", "densenet.ud")


class HandLayer(nn.Module):
    def __init__(self, cin, k=32, bn_size=4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * k, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * k)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * k, k, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class HandBlock(nn.Module):
    def __init__(self, n, cin, k=32):
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", HandLayer(cin + i * k, k))

    def forward(self, x):
        for layer in self.children():
            x = torch.cat([x, layer(x)], 1)
        return x


class HandTransition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class HandDenseNet121(nn.Module):
    def __init__(self, blocks=(6, 12, 24, 16), k=32, init=64, classes=1000):
        super().__init__()
        f = nn.Sequential()
        f.add_module("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False))
        f.add_module("norm0", nn.BatchNorm2d(init))
        f.add_module("relu0", nn.ReLU(inplace=True))
        f.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        c = init
        for b, n in enumerate(blocks, 1):
            f.add_module(f"denseblock{b}", HandBlock(n, c, k))
            c += n * k
            if b < len(blocks):
                f.add_module(f"transition{b}", HandTransition(c, c // 2))
                c //= 2
        f.add_module("norm5", nn.BatchNorm2d(c))
        self.features = f
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        x = torch.relu(self.features(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {
        "emitted (udnet)": udnet.load(SPEC),
        "emitted, --no-share-concat": udnet.load(SPEC, disable=("share-concat",)),
        "hand-written": HandDenseNet121(),
    }
    try:
        import torchvision

        models["torchvision"] = torchvision.models.densenet121()
    except Exception:  # torchvision is optional
        pass
    state = models["emitted (udnet)"].state_dict()
    for m in models.values():
        m.load_state_dict(state)
    x = torch.randn(args.batch, 3, args.size, args.size)
    for m in models.values():
        m.eval()
    with torch.no_grad():
        ref = models["emitted (udnet)"](x)
        for name, m in models.items():
            err = (m(x) - ref).abs().max().item()
            assert err < 1e-4, f"{name} differs by {err}"

    def forward(m):
        def run():
            with torch.no_grad():
                m(x)

        return run

    def step(m, opt):
        def run():
            opt.zero_grad(set_to_none=True)
            m(x).logsumexp(1).mean().backward()
            opt.step()

        return run

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size}x{args.size}")
    times = interleaved({n: forward(m) for n, m in models.items()}, args.repeats)
    print("\n".join(report("eval forward", times, "hand-written")))
    for m in models.values():
        m.train()
    opts = {n: torch.optim.SGD(m.parameters(), lr=1e-3) for n, m in models.items()}
    times = interleaved({n: step(m, opts[n]) for n, m in models.items()}, args.repeats)
    print("\n".join(report("training step (forward + backward + SGD)", times, "hand-written")))


if __name__ == "__main__":
    main()
