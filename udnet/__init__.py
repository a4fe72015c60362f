"""udnet: a compiler for deep-network topologies.

``udnet.load(spec, **params)`` returns the compiled network as a torch module;
everything else (``udnet.pipeline``) works without importing torch.
"""

__version__ = "0.1.0"


def load(spec, network=None, **kwargs):
    """Compile ``spec`` (path or text) and return its network as a ``torch.nn.Module``.

    See ``udnet.backends.pytorch.loader.load`` for the keyword arguments."""
    from udnet.backends.pytorch.loader import load as _load

    return _load(spec, network, **kwargs)
