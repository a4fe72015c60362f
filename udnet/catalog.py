"""The architecture library shipped with udnet: the specs of ``specs/`` in a checkout,
``udnet/specs/`` in an installed wheel, named without a path (``densenet``, ``dpn``).

A path on disk always wins over a library name, so a local ``densenet.ud`` (or a
directory entry called ``densenet``) is what ``udnet check densenet`` reads when it exists.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path


def spec_dir() -> Path:
    """Where the shipped specs lie."""
    try:  # udnet.specs is a namespace package (data only): its __path__ names the folder
        for d in importlib.import_module("udnet.specs").__path__:
            if Path(d).is_dir():
                return Path(d)
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[1] / "specs"  # a checkout that was not installed


def names() -> list[str]:
    """The shipped specs' names, sorted."""
    d = spec_dir()
    return sorted(p.stem for p in d.glob("*.ud")) if d.is_dir() else []


def find(name: str) -> str | None:
    """The file of the shipped spec ``name`` (``densenet`` or ``densenet.ud``), or None."""
    stem = name[:-3] if name.endswith(".ud") else name
    if not stem or os.sep in stem or (os.altsep and os.altsep in stem) or stem not in names():
        return None
    return str(spec_dir() / f"{stem}.ud")


def resolve(spec: str) -> str:
    """``spec`` itself when that path exists or names no shipped spec, else the shipped file."""
    if os.path.lexists(spec):
        return spec
    return find(spec) or spec


@dataclass(frozen=True)
class Entry:
    name: str
    description: str  # the header's first line
    networks: list[str]  # "Name(param = default, ...)", as written
    variants: list[str]  # the header's lines that say how to select a variant


#: A header line that selects a variant: names a default, a -D override or a --network.
_VARIANT = re.compile(r"\(default\)|(^|\s)-D\s|--network\s")


def entries() -> list[Entry]:
    """Every shipped spec with its networks and the variants its header lists."""
    from udnet.frontend import parse
    from udnet.pipeline import read_source

    out = []
    for name in names():
        path = spec_dir() / f"{name}.ud"
        source = read_source(str(path))
        header = []
        for line in source.text.splitlines():
            if not line.startswith("#"):
                break
            header.append(line[1:])
        title = []
        for h in header:  # the first paragraph: the paper's title line(s)
            if not h.strip():
                break
            title.append(h.strip())
        description = " ".join(title)
        variants = [h.strip() for h in header if _VARIANT.search(h)]
        module = parse(source)
        networks = [
            f"{d.name}({', '.join(_text(p.span) for p in d.params)})" for d in module.definitions if d.kind == "network"
        ]
        out.append(Entry(name, description, networks, variants))
    return out


def _text(span) -> str:
    """The source text of ``span``, white space folded."""
    lines = span.source.text.splitlines()[span.line - 1 : span.end_line]
    if not lines:
        return ""
    if len(lines) == 1:
        lines[0] = lines[0][span.col - 1 : span.end_col - 1]
    else:
        lines[0], lines[-1] = lines[0][span.col - 1 :], lines[-1][: span.end_col - 1]
    return " ".join(" ".join(lines).split())
