"""ShuffleNet's channel shuffle, copied into an emitted model.py that has
channel_shuffle.

A real module, linted and unit-tested on its own (tests/test_model_helpers.py); the op
table reads it as text (helper_text.py), never importing it.
"""

from torch import nn


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: the channels, read as a groups x n matrix, are
    transposed to n x groups."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)
