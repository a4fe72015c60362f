"""udnet: a compiler for deep-network topologies.

``udnet.load(spec, **params)`` returns the compiled network as a torch module;
everything else (``udnet.pipeline``) works without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from udnet.pipeline import Spec

__version__ = "0.1.0"


def load(spec: Spec, network: str | None = None, **kwargs) -> torch.nn.Module:
    """Compile ``spec`` and return its network as a ``torch.nn.Module``.

    ``spec`` is a ``pathlib.Path`` (always a path) or a ``str``: spec text when it holds a
    newline or a ``{``, else the path of a file. See ``udnet.backends.pytorch.loader.load``
    for the keyword arguments."""
    from udnet.backends.pytorch.loader import load as _load

    return _load(spec, network, **kwargs)
