"""FractalNet, compiled by udnet from fractal.ud.

Parameters: C=3, widths=[64, 128, 256, 512, 512], drop=[0.0, 0.1, 0.2, 0.3, 0.4],
drop_local=0.15, drop_global=0.5, classes=10, input=[3, 32, 32].
Input: [N, 3, 32, 32] -> output: [N, 10]; 33,724,618 parameters.
Standalone: this file needs only torch.
"""

import torch
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


class Join(nn.Module):
    """FractalNet join: the mean of its inputs, with drop-path while training.

    Local drop-path drops each input with probability drop_local, keeping at least
    one. Samples chosen for global drop-path (see set_drop_path_columns) keep only
    the input of their column. columns numbers the inputs' columns, 1 the shallowest;
    None: the network's deepest column first, then one shallower each (a FractalNet
    block's join, whose inputs run from its deepest column to its shallowest).
    """

    def __init__(self, drop_local, drop_global, columns=None):
        super().__init__()
        self.drop_local = drop_local
        self.drop_global = drop_global
        self.columns = columns
        self.num_columns = None
        self.global_columns = None

    def forward(self, *xs):
        if not self.training or (self.drop_local == 0 and self.global_columns is None):
            return torch.stack(xs).mean(0)
        x = torch.stack(xs)
        m, n, device = x.shape[0], x.shape[1], x.device
        keep = torch.rand(m, n, device=device) >= self.drop_local
        lucky = torch.randint(m, (n,), device=device)
        none_kept = ~keep.any(0)
        keep[lucky, torch.arange(n, device=device)] |= none_kept
        if self.global_columns is not None:
            if self.columns is None:
                cols = self.num_columns - torch.arange(m, device=device)
            else:
                cols = torch.tensor(self.columns, device=device)
            chosen = cols[:, None] == self.global_columns[None, :]
            use_global = chosen.any(0)
            keep = torch.where(use_global[None, :], chosen, keep)
        w = keep.to(x.dtype)
        w = w / w.sum(0)
        return (x * w.view(m, n, *(1,) * (x.dim() - 2))).sum(0)


def set_drop_path_columns(model, batch, drop_global, num_columns, device):
    """Choose, per sample, a column for global drop-path (-1: local drop-path). The
    emitted forward calls it only where a join has drop_global > 0."""
    columns = None
    if model.training:
        columns = torch.randint(1, num_columns + 1, (batch,), device=device)
        local = torch.rand(batch, device=device) >= drop_global
        columns = torch.where(local, torch.full_like(columns, -1), columns)
    for m in model.modules():
        if isinstance(m, Join):
            m.global_columns = columns
            m.num_columns = num_columns


class Fractal(nn.Module):
    """f_C by recursion. The base case f_1 is the paper's convolution unit:
    conv3x3 - BN - ReLU, with the block's dropout rate p when it is nonzero.
    Drop-path acts at every join in training: local drops each input with
    probability drop_local (keeping at least one); global keeps a single column
    for the whole network on a drop_global fraction of each batch.
    """

    def __init__(self, in_channels, C, c, p=0, drop_local=0.15, drop_global=0.5):
        super().__init__()
        self.C = C
        if C == 1:
            self.conv = conv2d(in_channels, c, 3, padding=1)
            self.bn = nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)
            if p > 0:
                self.dropout = nn.Dropout(p)
            else:
                self.dropout = None
        else:
            self.deep1 = Fractal(in_channels, C - 1, c, p, drop_local, drop_global)
            self.deep2 = Fractal(c, C - 1, c, p, drop_local, drop_global)
            self.shallow = Fractal(in_channels, 1, c, p)
            self.join = Join(drop_local, drop_global)

    def forward(self, x, columns=False):
        if self.C == 1:
            x = self.conv(x)
            x = self.bn(x)
            x = self.relu(x)
            if self.dropout is not None:
                x = self.dropout(x)
            return (x,) if columns else x
        deep = self.deep1(x)
        deep = self.deep2(deep, columns=True)
        shallow = self.shallow(x)
        if columns:  # for a caller's join, which averages them with its own
            return (*deep, shallow)
        return self.join(*deep, shallow)


class FractalNet(nn.Module):
    """B = 5 blocks of widths 64..512, each followed by 2x2 max pooling (32 -> 1),
    then the linear classifier; per-block dropout rises 0, 0.1, ..., 0.4.
    """

    def __init__(self):
        super().__init__()
        self.block1 = Fractal(in_channels=3, C=3, c=64, p=0.0)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = Fractal(in_channels=64, C=3, c=128, p=0.1)
        self.pool2 = nn.MaxPool2d(2)
        self.block3 = Fractal(in_channels=128, C=3, c=256, p=0.2)
        self.pool3 = nn.MaxPool2d(2)
        self.block4 = Fractal(in_channels=256, C=3, c=512, p=0.3)
        self.pool4 = nn.MaxPool2d(2)
        self.block5 = Fractal(in_channels=512, C=3, c=512, p=0.4)
        self.pool5 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.classifier = linear(512, 10)

    def forward(self, x):
        set_drop_path_columns(self, x.shape[0], 0.5, 3, x.device)
        x = self.block1(x)
        x = self.pool1(x)
        x = self.block2(x)
        x = self.pool2(x)
        x = self.block3(x)
        x = self.pool3(x)
        x = self.block4(x)
        x = self.pool4(x)
        x = self.block5(x)
        x = self.pool5(x)
        x = self.flatten(x)
        x = self.classifier(x)
        return x


ROOT = "FractalNet"
