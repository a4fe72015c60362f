"""Helpers of the connections (the fractal join, shared concat buffers), copied into an
emitted model.py when it uses them (it imports torch only). The ops' own helpers live
with their definitions in ``udnet/ops``."""

from pathlib import Path

JOIN = '''
class Join(nn.Module):
    """FractalNet join: the mean of its inputs, with drop-path while training.

    Local drop-path drops each input with probability drop_local, keeping at least
    one. Samples chosen for global drop-path (see set_drop_path_columns) keep only
    the input of their column.
    """

    def __init__(self, drop_local=0.0, drop_global=0.0, columns=()):
        super().__init__()
        self.drop_local = drop_local
        self.drop_global = drop_global
        self.columns = columns
        self.global_columns = None

    def forward(self, *xs):
        if not self.training or (self.drop_local == 0 and self.global_columns is None):
            return torch.stack(xs).mean(0)
        n = xs[0].shape[0]
        keep = torch.rand(len(xs), n, device=xs[0].device) >= self.drop_local
        lucky = torch.randint(len(xs), (n,), device=xs[0].device)
        none_kept = ~keep.any(0)
        keep[lucky, torch.arange(n, device=xs[0].device)] |= none_kept
        if self.global_columns is not None:
            cols = torch.tensor(self.columns, device=xs[0].device)
            chosen = cols[:, None] == self.global_columns[None, :]
            use_global = chosen.any(0)
            keep = torch.where(use_global[None, :], chosen, keep)
        w = keep.to(xs[0].dtype)
        w = w / w.sum(0, keepdim=True)
        shape = (len(xs), n) + (1,) * (xs[0].dim() - 1)
        return (torch.stack(xs) * w.view(shape)).sum(0)


def set_drop_path_columns(model, batch, drop_global, num_columns, device):
    """Choose, per sample, a column for global drop-path (-1: local drop-path)."""
    columns = None
    if model.training and drop_global > 0:
        columns = torch.randint(1, num_columns + 1, (batch,), device=device)
        local = torch.rand(batch, device=device) >= drop_global
        columns = torch.where(local, torch.full_like(columns, -1), columns)
    for m in model.modules():
        if isinstance(m, Join):
            m.global_columns = columns
'''


def _module_body(name: str) -> str:
    """A runtime module's source below its ``import torch`` line, read as text: the
    compile path never imports torch."""
    text = (Path(__file__).parent / name).read_text(encoding="utf-8")
    return "\n" + text.split("\nimport torch\n", 1)[1].lstrip("\n")


#: The shared-buffer runtime (shared_buffer.py, a module of its own).
CONCAT_BUFFER = _module_body("shared_buffer.py")
