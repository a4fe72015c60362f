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
