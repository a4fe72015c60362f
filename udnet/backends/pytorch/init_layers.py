"""Convolution and fully connected layers initialised as the spec says, copied into an
emitted model.py that has conv or linear ops.

A real module, linted and unit-tested on its own (tests/test_model_helpers.py); the op
table reads each definition as text (helper_text.py), never importing it.
"""

from torch import nn


def init_weight(weight, kind):
    if kind == "kaiming_normal":
        nn.init.kaiming_normal_(weight)
    elif kind == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight)
    elif kind == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif kind == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif kind == "normal":
        nn.init.normal_(weight, std=0.01)
    elif kind == "zeros":
        nn.init.zeros_(weight)


def conv2d(
    in_channels,
    out_channels,
    kernel_size,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    bias=False,
    weight_init="kaiming_normal",
    bias_init=0.0,
):
    """nn.Conv2d initialised as the spec says."""
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
    )
    init_weight(conv.weight, weight_init)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, bias_init)
    return conv


def linear(in_features, out_features, bias=True, weight_init="default", bias_init=0.0):
    """nn.Linear initialised as the spec says."""
    fc = nn.Linear(in_features, out_features, bias)
    init_weight(fc.weight, weight_init)
    if fc.bias is not None:
        nn.init.constant_(fc.bias, bias_init)
    return fc
