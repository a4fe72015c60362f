"""Global average pooling, copied into an emitted model.py that has gap.

A real module, linted and unit-tested on its own (tests/test_model_helpers.py); the op
table reads it as text (helper_text.py), never importing it.
"""

from torch import nn


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: [N, C, H, W] -> [N, C] (or [N, C, 1, 1])."""

    def __init__(self, keep=False):
        super().__init__()
        self.keep = keep

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keep)
