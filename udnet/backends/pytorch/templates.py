"""Class templates: an instance's code with every number a ``Num`` leaf, so that
instances equal up to numbers share one class and the numbers that differ become its
constructor parameters. What is structure (a key of the class) and what is a number,
the slots numbers fill, where each is read, and a readable name for each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Num:
    """A number in a template: equal structure, possibly different value per instance."""

    __slots__ = ("value", "slot")

    def __init__(self, value):
        self.value = value
        self.slot = -1


class ChildNums:
    """The numbers of a scope child (one instance, or one per loop iteration): resolved
    when the child's class is finished, to its constructor's arguments only. Copying
    every number nested in the child instead would make each class as big as its
    subtree, and emitting quadratic in the depth of the module tree."""

    __slots__ = ("insts", "looped", "lists")

    def __init__(self, insts: list, looped: bool, lists: bool = False):
        self.insts = insts
        self.looped = looped
        self.lists = lists  # across the iterations, some number is not affine


@dataclass
class Affine:
    """Per-iteration numbers ``a + b * i`` (or an explicit list when not affine)."""

    a: Num | None
    b: Num | None
    values: list[Num] | None = None


def numify(desc: tuple) -> tuple:
    out = []
    for v in desc:
        if isinstance(v, bool) or isinstance(v, str) or v is None:
            out.append(v)
        elif isinstance(v, (int, float)):
            out.append(Num(v))
        elif isinstance(v, tuple):
            out.append(numify(v))
        else:
            out.append(v)
    return tuple(out)


def per_iteration(descs: list[tuple]) -> tuple:
    """Merge per-iteration descriptions: every number position becomes an Affine."""
    first = descs[0]
    out = []
    for k, v in enumerate(first):
        column = [d[k] for d in descs]
        if isinstance(v, ChildNums):
            out.append(ChildNums([i for c in column for i in c.insts], True))
            continue
        if isinstance(v, Num):
            vals = [c.value for c in column]
            if all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
                step = vals[1] - vals[0] if len(vals) > 1 else 0
                if all(b - a == step for a, b in zip(vals, vals[1:])):
                    out.append(Affine(Num(vals[0]), Num(step)))
                    continue
            if all(x == vals[0] for x in vals):
                out.append(Affine(Num(vals[0]), None))
                continue
            out.append(Affine(None, None, [Num(x) for x in vals]))
        elif isinstance(v, tuple):
            if all(isinstance(c, tuple) and len(c) == len(v) for c in column):
                out.append(per_iteration(column))
            else:
                out.append(("mismatch",) + tuple(repr(c) for c in column))
        else:
            out.append(v if all(c == v for c in column) else ("mismatch",) + tuple(repr(c) for c in column))
    return tuple(out)


def affine_form(vals: list) -> tuple | None:
    """Numbers of successive iterations as (first, step): affine integers or equal values."""
    if all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
        step = vals[1] - vals[0] if len(vals) > 1 else 0
        if all(b - a == step for a, b in zip(vals, vals[1:])):
            return vals[0], step
    if all(x == vals[0] for x in vals):
        return vals[0], 0
    return None


def child_nums(t: Any):
    """Yield the ChildNums leaves in a fixed order."""
    if isinstance(t, ChildNums):
        yield t
    elif isinstance(t, (tuple, list)):
        for e in t:
            yield from child_nums(e)


def has_lists(t: Any) -> bool:
    if isinstance(t, ChildNums):
        return t.lists
    if isinstance(t, Affine):
        return t.values is not None
    if isinstance(t, (tuple, list)):
        return any(has_lists(e) for e in t)
    return False


def num_leaves(t: Any):
    """Yield Num leaves in a fixed order."""
    if isinstance(t, Num):
        yield t
    elif isinstance(t, Affine):
        if t.values is not None:
            yield from t.values
        else:
            if t.a is not None:
                yield t.a
            if t.b is not None:
                yield t.b
    elif isinstance(t, (tuple, list)):
        for e in t:
            yield from num_leaves(e)


def shape_key(t: Any) -> Any:
    if isinstance(t, Num):
        return "#"
    if isinstance(t, ChildNums):
        return ("child", t.looped)
    if isinstance(t, Affine):
        if t.values is not None:
            return ("list", len(t.values))
        return ("aff", t.a is not None, t.b is not None)
    if isinstance(t, (tuple, list)):
        return tuple(shape_key(e) for e in t)
    return t


def assign_slots(t: Any) -> int:
    n = 0
    for num in num_leaves(t):
        num.slot = n
        n += 1
    return n


def slot_values(t: Any):
    for num in num_leaves(t):
        yield num.value


def used_slots(t: Any) -> set[int]:
    """Slots that appear in the printed code (a child's numbers count only where they
    are that child's constructor arguments)."""
    used: set[int] = set()

    def desc_slots(desc: tuple) -> None:
        used.update(n.slot for n in num_leaves(desc))  # a child scope's numbers are its arguments

    for item in t[2]:
        if item[0] == "stmt":
            used.update(n.slot for n in num_leaves(item[4]))
            if item[6] is not None:
                desc_slots(item[6][2])
            for extra in item[7]:
                desc_slots(extra[2])
        else:
            used.add(item[1].slot)
            for s in item[5]:
                used.update(n.slot for n in num_leaves(s[5]))
                if s[4] is not None:
                    desc_slots(s[4][2])
    return used


def forward_slots(t: Any) -> set[int]:
    """Slots the forward pass reads: loop counts and slice bounds."""
    found: set[int] = set()
    for item in t[2]:
        if item[0] == "stmt":
            found.update(n.slot for n in num_leaves(item[4]))
        else:
            found.add(item[1].slot)
            for s in item[5]:
                found.update(n.slot for n in num_leaves(s[5]))
    return found


def slot_hint(t: Any, slot: int) -> str | None:
    """A readable parameter name from where a slot is used: conv1_out, num_denselayer, ..."""
    for item in t[2]:
        if item[0] == "stmt" and any(n is not None and n.slot == slot for n in item[4]):
            return {"start": "out_channels", "append": "offset", "bn_relu_conv": "width"}.get(item[1])
        if item[0] == "loop":
            if item[1].slot == slot:
                pat = item[5][0][4][0] if item[5] and item[5][0][4] else None
                return f"num_{pat[0]}" if pat and pat[0] != "list" and pat[0] else "repeats"
            continue
        child = item[6]
        if child is None:
            continue
        label, _, desc = child
        if desc[0] == "scope":
            names = desc[1].params
            found = [names[k] if k < len(names) else f"arg{k}"
                     for k, n in enumerate(num_leaves(desc)) if n.slot == slot]
        elif desc[0] == "op":  # each number is named after its constructor field
            found = [hint for hint, *_, value in desc[2] for n in num_leaves(value) if n.slot == slot]
        else:
            found = [f"arg{k}" for k, n in enumerate(num_leaves(desc)) if n.slot == slot]
        if found:
            return f"{label}_{found[0]}" if _IDENT.fullmatch(label) else found[0]
    return None
