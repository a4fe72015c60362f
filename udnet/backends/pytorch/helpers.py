"""The helper functions and classes a model.py may carry (the runtime's and the ops'),
and what each defines and reads, found with Python's ast: never imported, never run."""

from __future__ import annotations

import ast
from functools import cache

from udnet.backends.pytorch import runtime
from udnet.ops import OPS

#: Every helper source model.py may hold: the runtime's (connections, shared buffers) and the ops'.
HELPER_SOURCES = [v for k, v in vars(runtime).items() if k.isupper()] + [
    h for spec in OPS.values() for h in spec.torch.helpers
]


@cache
def defined_names(source: str) -> frozenset[str]:
    """The functions and classes a helper defines at the top level of model.py."""
    return frozenset(n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef)))


@cache
def reads_torch(source: str) -> bool:
    """Does the helper's code use the module ``torch`` (not only ``nn``)?"""
    return any(isinstance(n, ast.Name) and n.id == "torch" for n in ast.walk(ast.parse(source)))
