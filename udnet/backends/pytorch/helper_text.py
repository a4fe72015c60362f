"""The one reader of the helpers' source: every helper a model.py may carry (the
runtime's and the ops') is a real module of this folder that imports torch, linted and
unit-tested on its own; the compile path reads it here as text and never imports it, so
``udnet check``, ``compile``, ``draw`` and ``summary`` never import torch."""

import ast
from functools import cache
from pathlib import Path

#: The only imports a helper module may make: the ones model.py makes itself, which the
#: copied text relies on.
MODEL_IMPORTS = frozenset({"import torch", "from torch import nn"})


@cache
def _read(file: str) -> tuple[list[str], list[ast.stmt]]:
    text = (Path(__file__).parent / file).read_text(encoding="utf-8")
    return text.splitlines(keepends=True), ast.parse(text).body


def helper_text(file: str, *names: str) -> str:
    """The source model.py copies from the helper module ``file`` of this folder: its
    top-level definitions ``names`` (consecutive in the file), each with the comments
    right above it, or, without names, everything below its imports. The text starts
    with a newline and ends with one."""
    lines, body = _read(file)
    imports = [i for i, node in enumerate(body) if isinstance(node, (ast.Import, ast.ImportFrom))]
    if not imports or any(ast.unparse(body[i]) not in MODEL_IMPORTS for i in imports):
        raise ValueError(f"{file}: a helper module imports what model.py imports, and only that")
    if not names:
        first, end = imports[-1] + 1, len(lines)
    else:
        defined = [getattr(node, "name", None) for node in body]
        if names[0] not in defined:
            raise ValueError(f"{file} defines no {names[0]}")
        first = defined.index(names[0])
        if defined[first : first + len(names)] != list(names) or first <= imports[-1]:
            raise ValueError(f"{file}: {', '.join(names)} are not consecutive definitions below its imports")
        end = body[first + len(names) - 1].end_lineno
    start = body[first - 1].end_lineno  # the line after the statement before: comments above belong
    return "\n" + "".join(lines[start:end]).lstrip("\n")
