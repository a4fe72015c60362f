"""Rewrites of a translated program: a ReLU-BN-conv run fused, a join-returning
class's ``columns`` variant, an attribute set where forward reads it."""

from __future__ import annotations


from udnet.backends.pytorch.expr import (
    Lit,
    Name,
)
from udnet.backends.pytorch.mirror.program import (
    Apply,
    Each,
    Fused,
    Give,
    ListOf,
    Keep,
    Let,
    Local,
    Module,
    OpCtor,
    Unsupported,
    When,
)


def insert_keep(stmts: list, name: str, attr: str) -> bool:
    for k, s in enumerate(stmts):
        if isinstance(s, Let) and s.name == name:
            stmts.insert(k + 1, Keep(attr, Name(name)))
            return True
    raise Unsupported(f"forward reads {name}, set inside a branch")




def gives_join(stmts: list, joins: set[str]) -> bool:
    """Does some ``return`` give the output of one of the joins?"""
    for s in stmts:
        if isinstance(s, Give) and isinstance(s.value, Apply) and isinstance(s.value.label, Lit) \
                and s.value.label.value in joins:
            return True
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub and gives_join(sub, joins):
                return True
    return False


def columns_program(stmts: list, joins: set[str]) -> list:
    """forward, returning the inputs of its final join instead of their join (a
    return of anything else: that tensor, alone)."""
    out: list = []
    for s in stmts:
        if isinstance(s, Give):
            v = s.value
            joined = isinstance(v, Apply) and isinstance(v.label, Lit) and v.label.value in joins
            out.append(Give(ListOf(list(v.args) if joined else [v])))
        elif isinstance(s, When):
            out.append(When(s.cond, columns_program(s.body, joins), columns_program(s.orelse, joins)))
        elif isinstance(s, Each):
            out.append(Each(s.var, s.iterable, columns_program(s.body, joins)))
        else:
            out.append(s)
    return out


def op_labels(init: list) -> dict[str, str | None]:
    """label -> op of the op modules __init__ builds under a fixed label (None where
    branches build different modules under one label)."""
    found: dict[str, str | None] = {}
    for s in init:
        if isinstance(s, Module) and isinstance(s.label, Lit) and s.into is None and s.ctor is not None:
            op = s.ctor.op if isinstance(s.ctor, OpCtor) else None
            found[s.label.value] = op if found.get(s.label.value, op) == op else None
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub:
                for label, op in op_labels(sub).items():
                    found[label] = op if found.get(label, op) == op else None
    return found


def fuse(stmts: list, ops: dict[str, str | None]) -> None:
    """BN -> ReLU -> conv applied in three statements to one local: one ``Fused``, which
    the check keeps where some instance's pass fused them."""
    k = 0
    while k + 2 < len(stmts):
        a, b, c = stmts[k:k + 3]
        run = [s.value for s in (a, b, c) if isinstance(s, Let) and isinstance(s.value, Apply)
               and isinstance(s.value.label, Lit) and len(s.value.args) == 1]
        if len(run) == 3 and a.name == b.name == c.name \
                and [ops.get(r.label.value) for r in run] == ["bn", "relu", "conv"] \
                and all(isinstance(r.args[0], Local) and r.args[0].name == a.name for r in run[1:]):
            stmts[k:k + 3] = [Let(a.name, Fused(tuple(r.label for r in run), run[0].args[0]))]
        k += 1
    for s in stmts:
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub:
                fuse(sub, ops)

