"""``udnet.load``: compile a spec and instantiate the emitted module in-process.

The module is built from exactly the source ``udnet compile`` writes, registered
under a unique module name (so its classes pickle) and with its source in
linecache (so tracebacks and ``inspect`` show the generated lines).
"""

from __future__ import annotations

import hashlib
import linecache
import os
import sys
import types

from udnet.errors import Source


def load(spec, network: str | None = None, *, limits=None, disable=(), fractal_column=None, **params):
    """Return the network of ``spec`` (a path or spec text) as a ``torch.nn.Module``.

    Keyword arguments override network parameters, like ``-D`` on the command line:
    ``udnet.load("specs/densenet.ud", k=12, blocks=[16, 16, 16])``. ``disable`` names
    passes to switch off (``("share-concat",)``); ``fractal_column`` extracts one column.
    """
    from udnet import pipeline

    if isinstance(spec, Source):
        source = spec
    elif os.path.exists(spec) and "\n" not in spec:
        source = pipeline.read_source(spec)
    else:
        source = Source("<string>", spec)
    text = pipeline.compile_to_torch(source, network, params, limits=limits, disabled=disable,
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
