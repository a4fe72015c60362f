"""FractalNet's join with drop-path (Larsson et al. 2017), copied into an emitted
model.py whose network joins columns.

A real module, linted and unit-tested on its own (tests/test_model_helpers.py); the
PyTorch backend copies everything below its imports into model.py as text
(helper_text.py) and never imports it.
"""

import torch
from torch import nn


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
