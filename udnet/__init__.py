"""udnet: a compiler for deep-network topologies.

``udnet.load(spec, **params)`` returns the compiled network as a torch module;
``udnet.draw(spec, **params)`` its diagram; everything but ``load`` (``udnet.pipeline``)
works without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from udnet.pipeline import SVG, Spec

__version__ = "0.1.0"


def load(spec: Spec, network: str | None = None, **kwargs) -> torch.nn.Module:
    """Compile ``spec`` and return its network as a ``torch.nn.Module``.

    ``spec`` is a ``pathlib.Path`` (always a path) or a ``str``: spec text when it holds a
    newline or a ``{``, else the path of a file. See ``udnet.backends.pytorch.loader.load``
    for the keyword arguments."""
    from udnet.backends.pytorch.loader import load as _load

    return _load(spec, network, **kwargs)


def draw(spec: Spec, network: str | None = None, *, output=None, drawing=None, compiled: bool = False,
         limits=None, disable=(), fractal_column: int | None = None, **params) -> SVG | None:
    """Draw ``spec`` (a path or spec text, as for ``load``): the SVG text when ``output`` is
    None (Jupyter shows it as the picture), else write the file ``output`` (.svg, .png,
    .pdf or .dot) and return None. Keyword arguments override network parameters, as for
    ``load``; ``drawing`` holds the drawing options (``{"depth": 1, "expand": True}``, the
    flags of ``udnet draw``); ``compiled=True`` draws after the passes (``disable`` and
    ``fractal_column`` as for ``load`` imply it). Never imports torch."""
    from udnet.pipeline import draw as _draw

    return _draw(spec, network, params, output=output, drawing=drawing, compiled=compiled, limits=limits,
                 disabled=disable, fractal_column=fractal_column)
