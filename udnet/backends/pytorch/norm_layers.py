"""The normalisations torch.nn lacks, copied into an emitted model.py that has
frozen_bn or a spatial layernorm.

A real module, linted and unit-tested on its own (tests/test_model_helpers.py); the op
table reads each definition as text (helper_text.py), never importing it.
"""

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """Batch normalisation with fixed statistics and affine, all four buffers (the
    detection backbones' norm, torchvision.ops.FrozenBatchNorm2d): nothing here trains."""

    def __init__(self, num_features, eps=1e-05):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint of an ordinary BatchNorm2d loads too: its step counter goes.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        w, b, mean, var = self.weight, self.bias, self.running_mean, self.running_var
        return nn.functional.batch_norm(x, mean, var, w, b, False, 0.0, self.eps)


class LayerNorm2d(nn.LayerNorm):
    """Layer normalisation over the channels at each position of [N, C, H, W]."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(
            x, self.normalized_shape, self.weight, self.bias, self.eps
        )
        return x.permute(0, 3, 1, 2)
