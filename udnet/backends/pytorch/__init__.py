"""PyTorch backend: the IR as a standalone, readable nn.Module source file."""

from udnet.backends.pytorch.codegen import emit_module

__all__ = ["emit_module"]
