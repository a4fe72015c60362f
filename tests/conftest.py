"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """Tiny torch ops on one intra-op thread: on a loaded 2-core machine more threads only
    contend (several times slower). Modules that want it say
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def graphviz_pure(monkeypatch):
    """Render with the graphviz-pure dependency even where a system ``dot`` is on PATH: the
    tests that read table cells (their ids, tooltips and geometry) back from the SVG need a
    renderer that writes them, and Debian's Graphviz 2.43 does not."""
    from udnet.backends import graphviz

    assert graphviz.pure_renderer() is not None, "graphviz-pure is a dependency of udnet"
    monkeypatch.setattr(graphviz, "find_renderer", graphviz.pure_renderer)
