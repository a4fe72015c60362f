"""The program of a mirrored class: what its ``__init__`` and ``forward`` do, as the
translation (translate.py) builds it, the check (check.py) runs it and the printer
(render.py) prints it. Value expressions are expr.py trees over the constructor's names;
tensor expressions are ``Local``, ``Apply``, ``Connect`` and ``SliceOf``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from udnet.backends.pytorch.expr import Attr, BinOp, Call, Expr, FString, IfExp, Lit, Name, Neg, Not, Subscript, Tuple
from udnet.frontend import ast

#: The attribute a class whose output channels callers cannot compute keeps them in.
OUT = "out_channels"


class Unsupported(Exception):
    """The block uses what the translation does not cover: it keeps the instance path."""


# ---- the class program: what __init__ and forward do, before it is printed ----


@dataclass(eq=False)
class OpCtor:
    """An op's module. ``args``: the spec's arguments by name; ``fields``: each
    constructor field's expression, chosen by the check from the instances."""

    op: str
    args: dict[str, Expr]
    channels: Expr
    fields: list | None = None  # (hint, keyword, default, same_as, Expr)
    module: str | None = None
    inplace: bool = True  # every instance may overwrite its input


@dataclass(eq=False)
class BlockCtor:
    """A block's module: ``Block(channels..., *args, **kwargs)`` as the spec calls it."""

    block: str
    channels: list[Expr]
    args: list[Expr]
    kwargs: list[tuple[str, Expr]]


@dataclass(eq=False)
class JoinCtor:
    """FractalNet's ``Join``: its drop rates; its inputs are the columns of its block,
    counted from the network's deepest (as ``set_drop_path_columns`` numbers them)."""

    drop_local: Expr
    drop_global: Expr


@dataclass(eq=False)
class SeqCtor:
    """A labelled ``{ ... }`` group of stages run one after the other: ``nn.Sequential``,
    built in the local ``layers``: a list where its labels are 0, 1, ... in every
    instance (``indexed``), else a Sequential its modules are added to by label."""

    layers: str
    indexed: bool = True
    fusable: bool = False  # exactly BN, ReLU and a conv
    fused: bool = False  # some instance's pass fused them: FusedBnReluConv, not nn.Sequential


@dataclass(eq=False)
class SeqStart:
    """``layers = []`` (or ``nn.Sequential()``): a group's modules are collected from here."""

    seq: SeqCtor


@dataclass(eq=False)
class Module:
    """Set submodule ``label`` (None: no module there) or append it to ``into``."""

    label: Expr
    ctor: OpCtor | BlockCtor | JoinCtor | SeqCtor | None
    into: SeqCtor | None = None


@dataclass(eq=False)
class Let:
    name: str
    value: Any  # Expr, or in forward a tensor expression (Apply, Connect, SliceOf)
    absorbed: Chain | None = None  # a chain's tail: the pass may fold the slice into the append


@dataclass(eq=False)
class Keep:
    """``self.name = value``: a value forward reads."""

    name: str
    value: Expr


@dataclass(eq=False)
class When:
    cond: Expr
    body: list
    orelse: list


@dataclass(eq=False)
class Each:
    var: str
    iterable: Expr
    body: list


@dataclass(eq=False)
class Give:
    value: Any  # forward: a tensor expression; __init__: None


@dataclass(eq=False)
class Apply:
    """``module(*args)`` in forward; ``module`` is the label's access on self."""

    label: Expr
    args: list


@dataclass(eq=False)
class Columns:
    """``module.columns(*args)``: the inputs of a called block's final join, for the join
    they feed to average them itself (a join fed straight into a join merges with it)."""

    label: Expr
    args: list
    merged: bool = False  # some instance's call returned several columns (else: a plain call)


@dataclass(eq=False)
class Spread:
    """``*value``: a ``Columns`` call's tensors, each an input of the join that reads them."""

    value: Any
    source: Columns


@dataclass(eq=False)
class ListOf:
    """``[a, *b]``: what ``columns`` returns."""

    items: list


@dataclass(eq=False)
class Chain:
    """A concatenation the share-concat pass may give one buffer (``buffered``: where it
    gave every instance one, decided by the check): grown in a loop (``x = x ++ f(x)``),
    or grown by the block's calls one after another (DPN: ``h ++ w[b:] ++ y``), whose
    buffer the first block of the run starts with the width the pass planned for the run,
    a constructor argument (``param``; None in the other blocks)."""

    capacity: str  # the attribute holding the buffer's channels
    buffered: bool | None = None
    param: str | None = None  # the constructor parameter giving them, for a chain across calls


@dataclass(eq=False)
class Start:
    """``concat_start(value, self.<capacity>)``: the chain's buffer, from here."""

    value: Any
    chain: Chain


@dataclass(eq=False)
class Fused:
    """BN -> ReLU -> conv, run by ``bn_relu_conv1x1`` where the pass fused them in some
    instance (``used``), which falls back to the three modules on a tensor that is not
    a buffer's."""

    labels: tuple
    value: Any
    used: bool = False


@dataclass(eq=False)
class Connect:
    """A connection (add, concat, mul, gate) of tensor expressions; ``form`` is the
    connection's structure (which operands broadcast), taken from the instances."""

    op: str
    operands: list
    form: tuple | None = None
    chain: Chain | None = None  # a concat that appends to a chain's buffer


@dataclass(eq=False)
class SliceOf:
    value: Any
    lo: Expr | None
    hi: Expr | None


@dataclass(eq=False)
class HasModule:
    """forward's ``self.<label> is not None``: did __init__ build the optional module?"""

    label: Expr


@dataclass(eq=False)
class Local:
    """A tensor local of forward."""

    name: str


@dataclass(eq=False)
class MirrorClass:
    """One block as one class."""

    block: str
    defn: ast.Definition
    params: list[str]  # the constructor's: the inputs' channels, then the block's own
    channel_params: list[str]
    defaults: dict[str, Expr]
    init: list
    forward: list
    inputs: list[str]  # forward's tensor parameters
    out_channels: Expr | None  # over the constructor's parameters, where that is possible
    keeps_out: bool = False  # __init__ sets self.out_channels (callers read it)
    returns: list = field(default_factory=list)  # the output channels at each return
    returns_join: bool = False  # some return is a join: the class may need a columns method
    columns: list = field(default_factory=list)  # that method's program
    columns_used: bool = False  # a caller's join merges this class's join
    span_chain: Chain | None = None  # a chain across calls: its capacity is a constructor parameter



def substitute(e: Expr, names: dict[str, Expr]) -> Expr:
    """``e`` with each name in ``names`` replaced (a callee's parameters by the caller's arguments)."""
    if isinstance(e, Name):
        return names.get(e.id, e)
    if isinstance(e, BinOp):
        return BinOp(substitute(e.left, names), e.op, substitute(e.right, names))
    if isinstance(e, (Neg, Not)):
        return type(e)(substitute(e.operand, names))
    if isinstance(e, IfExp):
        return IfExp(substitute(e.cond, names), substitute(e.then, names), substitute(e.orelse, names))
    if isinstance(e, Subscript):
        return Subscript(substitute(e.value, names), tuple(substitute(i, names) for i in e.index))
    if isinstance(e, Tuple):
        return Tuple(tuple(substitute(x, names) for x in e.elts))
    if isinstance(e, Call):
        return Call(e.func, tuple(substitute(a, names) for a in e.args),
                    tuple((k, substitute(v, names)) for k, v in e.kwargs))
    if isinstance(e, FString):
        return FString(tuple(p if isinstance(p, str) else substitute(p, names) for p in e.parts))
    if isinstance(e, (Lit, Attr)):
        return e
    raise Unsupported(f"cannot substitute into {type(e).__name__}")


def same_program(a: Any, b: Any) -> bool:
    """Do two pieces of program do the same (statements, tensor expressions, values)?"""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) \
            and all(same_program(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if hasattr(a, "__dataclass_fields__") and not a.__dataclass_params__.frozen:
        return all(same_program(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b



def python_names(mc: MirrorClass) -> set[str]:
    """The names a mirrored class binds in its methods: parameters, locals, loop variables."""
    found = set(mc.params) | set(mc.inputs)

    def walk(stmts: list) -> None:
        for s in stmts:
            if isinstance(s, Let):
                found.add(s.name)
            elif isinstance(s, Each):
                found.add(s.var)
            elif isinstance(s, SeqStart):
                found.add(s.seq.layers)
            for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
                if sub:
                    walk(sub)

    for program in (mc.init, mc.forward, mc.columns):
        walk(program)
    return found
