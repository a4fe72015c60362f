"""Stochastic depth per sample, copied into an emitted model.py that has drop_path.

A real module, linted and unit-tested on its own (tests/test_model_helpers.py); the op
table reads it as text (helper_text.py), never importing it.
"""

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth per sample (torchvision StochasticDepth, mode "row"): in
    training each sample is zeroed with probability p and the others are scaled by
    1 / (1 - p); in eval it is the identity."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        size = (x.shape[0],) + (1,) * (x.dim() - 1)
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep)
