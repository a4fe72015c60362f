"""Names of the emitted classes and constructor parameters, made from a spec's block
names, labels and arguments: valid, unmangled Python names that hide nothing."""

from __future__ import annotations

import re
from typing import Any

from udnet.backends.pytorch.names import Namespace
from udnet.reserved import RESERVED_IN_MODEL

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def name_classes(order: list) -> Namespace:
    """Name every class after its block (a group after its label, in CamelCase); classes
    of one block that differ in structure are named by the arguments that tell them
    apart (FractalC3, DualPathProject), else numbered. Returns the class names."""
    groups: dict[tuple, list] = {}
    for cd in order:
        if cd.mirror is not None:  # one class per block, instantiated or not
            groups.setdefault(("block", cd.mirror.block), []).append(cd)
            continue
        inst = cd.instances[0]
        groups.setdefault((inst.kind, inst.name), []).append(cd)
    class_names = Namespace()
    for (kind, base), cds in groups.items():
        base = base if kind != "group" else camel(base)
        if len(cds) == 1:
            cds[0].name = pyname(base, class_names)
            continue
        suffixes = distinguishing_suffixes(cds)
        for n, cd in enumerate(cds, 1):
            suffix = suffixes[n - 1] if suffixes else (str(n) if n > 1 else "")
            cd.name = pyname(base + suffix, class_names)
    return class_names


def pyname(text: str, taken: Namespace | None = None) -> str:
    if text.startswith("__"):  # inside a class Python mangles __x, and __class__ is super()'s cell
        text = "_" + text.lstrip("_")
    name = text if _IDENT.fullmatch(text) and text not in RESERVED_IN_MODEL else f"{text}_"
    if not _IDENT.fullmatch(name):  # ASCII only: Python folds unicode names (NFKC), so they could collide
        name = "v_" + re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if taken is None else taken.fresh(name)


def camel(label: str) -> str:
    parts = re.split(r"_+", label)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return name if name and not name[0].isdigit() else f"Group{name}"


def distinguishing_suffixes(cds: list) -> list[str] | None:
    """Per class, a name suffix from the block arguments constant within it that tell
    the classes apart; None when no such arguments exist."""
    args = list(cds[0].instances[0].args)
    chosen: list[str] = []
    memo: dict[int, str] = {}

    def rep(v: Any) -> str:  # instances share big argument values; print each once
        if id(v) not in memo:
            memo[id(v)] = repr(v)
        return memo[id(v)]

    for arg in args:
        values = []
        for cd in cds:
            vals = {rep(i.args.get(arg)) for i in cd.instances}
            if len(vals) != 1:
                break
            values.append(cd.instances[0].args.get(arg))
        else:
            if len({rep(v) for v in values}) > 1:
                chosen.append(arg)
                keys = [tuple(rep(cd.instances[0].args.get(a)) for a in chosen) for cd in cds]
                if len(set(keys)) == len(cds):
                    break
    keys = [tuple(rep(cd.instances[0].args.get(a)) for a in chosen) for cd in cds]
    if not chosen or len(set(keys)) != len(cds):
        return None
    out = []
    for cd in cds:
        parts = []
        for a in chosen:
            v = cd.instances[0].args.get(a)
            cap = camel(a) if not a[:1].isupper() else a
            if isinstance(v, bool):
                parts.append(cap if v else "")
            elif isinstance(v, int):
                parts.append(f"{cap}{v}" if v >= 0 else f"{cap}Minus{-v}")
            elif isinstance(v, str) and len(v) <= 32 and re.fullmatch(r"[A-Za-z0-9_]+", v):
                parts.append(camel(v))
            else:
                return None
        out.append("".join(parts))
    return out if len(set(out)) == len(out) else None
