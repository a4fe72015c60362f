"""``udnet.load``: compile a spec and instantiate the emitted module in-process.

The module is built from exactly the source ``udnet compile`` writes, registered
under a unique module name (so its classes pickle) and with its source in
linecache (so tracebacks and ``inspect`` show the generated lines).
"""

from __future__ import annotations

import hashlib
import linecache
import sys
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from udnet.limits import Limits
    from udnet.pipeline import Spec


def load(spec: Spec, network: str | None = None, *, limits: Limits | None = None,
         disable: str | Iterable[str] | None = (), fractal_column: int | None = None,
         **params) -> torch.nn.Module:
    """Return the network of ``spec`` as a ``torch.nn.Module``.

    ``spec`` is a path or spec text: a ``pathlib.Path`` (any ``os.PathLike``) is a path; a
    ``str`` is spec text when it holds a newline or a ``{``, else a path (a missing file
    is "no such file"). ``network`` names a network of the file (default: the first).
    Keyword arguments override network parameters, like ``-D`` on the command line:
    ``udnet.load("specs/densenet.ud", k=12, blocks=[16, 16, 16])``; their values are
    ints, floats, bools, strs and lists of them. ``disable`` names a pass or passes to
    switch off (``"share-concat"``); ``fractal_column`` keeps one FractalNet column
    (1 = the shallowest). ``limits`` is a ``udnet.limits.Limits``. A wrong
    argument raises ``udnet.errors.UsageError`` naming it; a mistake in the spec, a
    ``UdnetError``.
    """
    from udnet import pipeline

    # The arguments are checked here, where their names are this function's.
    limits = pipeline.check_limits(limits)
    source = pipeline.spec_source(spec, limits.max_source_bytes, "spec")
    disabled = pipeline.pass_names(disable, "disable")
    text = pipeline.compile_to_torch(source, network, params, limits=limits, disabled=disabled,
                                     fractal_column=fractal_column)
    module = import_source(text)
    return module.__dict__[module.ROOT]()


def import_source(text: str) -> types.ModuleType:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"udnet_generated_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<udnet-generated {digest}>"
    module = types.ModuleType(name)
    module.__file__ = filename
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), module.__dict__)
    sys.modules[name] = module
    return module
