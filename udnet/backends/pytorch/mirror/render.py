"""Print a mirrored class (mirror.py's program, checked by mirror_check.py) as the
lines of its ``__init__`` and ``forward``."""

from __future__ import annotations

from udnet.backends.pytorch.class_body import op_call, plain_attr
from udnet.backends.pytorch.expr import (
    SELF,
    Attr,
    Call,
    Expr,
    FString,
    IfExp,
    List,
    Lit,
    Name,
    Not,
    Slice,
    Starred,
    Subscript,
    Tuple,
    call,
    dotted,
    read_names,
    render,
)
from udnet.backends.pytorch.layout import def_lines, stmt_lines
from udnet.backends.pytorch.mirror.program import (
    OUT,
    Apply,
    BlockCtor,
    Columns,
    Connect,
    Each,
    Fused,
    Give,
    HasModule,
    JoinCtor,
    Keep,
    Let,
    ListOf,
    Local,
    MirrorClass,
    Module,
    OpCtor,
    SeqCtor,
    SeqStart,
    SliceOf,
    Spread,
    Start,
    When,
)
from udnet.ops import CONNECTIONS, OPS


class MirrorPrinter:
    """The methods of one mirrored class; ``class_name`` maps a block to its class's name."""

    def __init__(self, mc: MirrorClass, class_name):
        self.mc = mc
        self.class_name = class_name
        self.reads: set[str] = set()
        self.flag: str | None = None
        self.mc_joins = {s.label.value for s in _modules(mc.init) if isinstance(s.ctor, JoinCtor)}

    def methods(self) -> list[str]:
        mc = self.mc
        chain = mc.span_chain
        # A chain across calls that no instance buffers needs no planned width.
        dropped = {chain.param} if chain is not None and not chain.buffered else set()
        params = ["self"] + [p if p not in mc.defaults else f"{p}={render(mc.defaults[p])}"
                             for p in mc.params if p not in dropped]
        lines = def_lines("    ", "__init__", params)
        lines.append("        super().__init__()")
        # Statements are laid out relative to the method body, which sits 8 columns in.
        unused = {c.capacity for c in _chains(mc.forward) if not c.buffered}
        init = _without_dead_locals(_tidy(mc.init, mc.keeps_out, unused))
        lines += ["        " + line for line in self.block(init, "", init=True)]
        lines.append("")
        # A class whose join a caller's join merges returns, when asked, the join's inputs
        # (a tuple of tensors, as torch.fx and hooks see them) rather than their join.
        self.flag = _fresh("columns", mc.inputs) if mc.columns_used else None
        fwd_params = ["self"] + mc.inputs + ([f"{self.flag}=False"] if self.flag else [])
        lines += def_lines("    ", "forward", fwd_params)
        lines += ["        " + line for line in self.block(mc.forward, "", init=False)]
        return lines

    def line(self, prefix: str, e: Expr, indent: str) -> list[str]:
        self.reads.update(read_names(e))
        return stmt_lines(prefix, e, indent)

    def block(self, stmts: list, indent: str, init: bool) -> list[str]:
        out: list[str] = []
        for s in stmts:
            if isinstance(s, When) and not init and _starts_unbuffered(s):
                continue
            if isinstance(s, Let):
                if init:
                    value = Name("[]") if isinstance(s.value, Lit) and s.value.value == () else s.value
                    out += self.line(f"{s.name} = ", value, indent)
                elif isinstance(s.value, Fused) and not s.value.used:  # BN, ReLU and conv, one by one
                    value = self.tensor(s.value.value)
                    for label in s.value.labels:
                        out += self.line(f"{s.name} = ", Call(self.access(label), (value,)), indent)
                        value = Name(s.name)
                else:
                    value = self.tensor(s.value)
                    if not (isinstance(value, Name) and value.id == s.name):
                        out += self.line(f"{s.name} = ", value, indent)
            elif isinstance(s, SeqStart):
                start = Name("[]") if s.seq.indexed else call("FusedBnReluConv" if s.seq.fused else "nn.Sequential")
                out += self.line(f"{s.seq.layers} = ", start, indent)
            elif isinstance(s, Keep):
                out += self.line(f"self.{s.name} = ", s.value, indent)
            elif isinstance(s, Module):
                out += self.module(s, indent)
            elif isinstance(s, When):
                out += self.when(s, indent, init, "if")
            elif isinstance(s, Each):
                out.append(f"{indent}for {s.var} in {render(s.iterable)}:")
                self.reads.update(read_names(s.iterable))
                out += self.block(s.body, indent + "    ", init) or [f"{indent}    pass"]
            elif isinstance(s, Give):
                out += self.give(s.value, indent)
        return out

    def give(self, value, indent: str) -> list[str]:
        if self.flag is None:
            return self.line("return ", self.tensor(value), indent)
        if isinstance(value, Apply) and isinstance(value.label, Lit) and value.label.value in self.mc_joins:
            inputs = Tuple(tuple(self.tensor(a) for a in value.args))
            return [f"{indent}if {self.flag}:  # for a caller's join, which averages them with its own",
                    *self.line("return ", inputs, indent + "    "),
                    *self.line("return ", self.tensor(value), indent)]
        v = self.tensor(value)
        return self.line("return ", IfExp(Name(self.flag), Tuple((v,)), v), indent)

    def when(self, s: When, indent: str, init: bool, word: str) -> list[str]:
        cond = s.cond
        if isinstance(cond, HasModule):
            text = f"{render(self.access(cond.label))} is not None"
        else:
            text = render(cond)
            self.reads.update(read_names(cond))
        out = [f"{indent}{word} {text}:"]
        out += self.block(s.body, indent + "    ", init) or [f"{indent}    pass"]
        if len(s.orelse) == 1 and isinstance(s.orelse[0], When):
            out += self.when(s.orelse[0], indent, init, "elif")
        elif s.orelse:
            out.append(f"{indent}else:")
            out += self.block(s.orelse, indent + "    ", init)
        return out

    def access(self, label: Expr) -> Expr:
        if isinstance(label, Lit) and plain_attr(label.value):
            return Attr(SELF, label.value)
        return call("getattr", SELF, label)

    def module(self, s: Module, indent: str) -> list[str]:
        value = Lit(None) if s.ctor is None else self.ctor(s.ctor)
        if s.into is not None:
            layers = Name(s.into.layers)
            if s.into.indexed:
                return self.line("", Call(Attr(layers, "append"), (value,)), indent)
            return self.line("", Call(Attr(layers, "add_module"), (s.label, value)), indent)
        if isinstance(s.label, Lit) and plain_attr(s.label.value):
            return self.line(f"self.{s.label.value} = ", value, indent)
        return self.line("", Call(Attr(SELF, "add_module"), (s.label, value)), indent)

    def ctor(self, c) -> Expr:
        if isinstance(c, SeqCtor):
            kind = "FusedBnReluConv" if c.fused else "nn.Sequential"
            return Call(dotted(kind), (Starred(Name(c.layers)),)) if c.indexed else Name(c.layers)
        if isinstance(c, JoinCtor):
            return call("Join", c.drop_local, c.drop_global)
        if isinstance(c, BlockCtor):
            return Call(Name(self.class_name(c.block)), tuple(c.channels) + tuple(c.args), tuple(c.kwargs))
        assert isinstance(c, OpCtor) and c.fields is not None
        spec = OPS[c.op]
        fields = list(c.fields)
        if c.inplace and spec.torch.inplace is not None:
            f = spec.torch.inplace
            fields.append((f.hint, f.keyword, f.default, f.same_as, Lit(f.value)))
        return op_call(c.module, fields)

    def tensor(self, t) -> Expr:
        if isinstance(t, Local):
            return Name(t.name)
        if isinstance(t, Apply):
            return Call(self.access(t.label), tuple(self.tensor(a) for a in t.args))
        if isinstance(t, Start):
            value = self.tensor(t.value)
            return call("concat_start", value, Attr(SELF, t.chain.capacity)) if t.chain.buffered else value
        if isinstance(t, Fused):
            return call("bn_relu_conv1x1", self.tensor(t.value), *(self.access(lbl) for lbl in t.labels))
        if isinstance(t, Connect) and t.chain is not None and t.chain.buffered:
            operands = [self.tensor(a) for a in t.operands]
            head = [("head", operands[0])] if len(operands) == 3 else []
            return Call(Name("concat_append"), tuple(operands[-2:]), tuple(head))
        if isinstance(t, Columns):
            module = self.access(t.label)
            kwargs = (("columns", Lit(True)),) if t.merged else ()
            return Call(module, tuple(self.tensor(a) for a in t.args), kwargs)
        if isinstance(t, Spread):
            value = self.tensor(t.value)
            return Starred(value) if t.source.merged else value
        if isinstance(t, ListOf):
            return List(tuple(self.tensor(a) for a in t.items))
        if isinstance(t, Connect):
            return CONNECTIONS[t.op].forward([self.tensor(a) for a in t.operands], t.form or ())
        if isinstance(t, SliceOf):
            return Subscript(self.tensor(t.value), (Slice(), Slice(t.lo, t.hi)))
        raise TypeError(t)


def _fresh(name: str, taken: list[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _modules(stmts: list) -> list:
    found: list = []
    for s in stmts:
        if isinstance(s, Module):
            found.append(s)
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub:
                found += _modules(sub)
    return found


def _without_dead_locals(stmts: list) -> list:
    """__init__ without the locals nothing printed reads (``first``, where it only named
    the modules of a list)."""
    while True:
        reads = _reads(stmts)
        kept = _drop_lets(stmts, reads)
        if _count(kept) == _count(stmts):
            return kept
        stmts = kept


def _reads(stmts: list) -> set[str]:
    found: set[str] = set()
    for s in stmts:
        exprs: list = []
        if isinstance(s, (Let, Keep)):
            exprs.append(s.value)
        elif isinstance(s, When):
            exprs.append(s.cond)
        elif isinstance(s, Each):
            exprs.append(s.iterable)
        elif isinstance(s, Module):
            if s.into is None or not s.into.indexed:
                exprs.append(s.label)
            c = s.ctor
            if isinstance(c, OpCtor):
                exprs += [f[4] for f in c.fields or ()]
            elif isinstance(c, BlockCtor):
                exprs += [*c.channels, *c.args, *(v for _, v in c.kwargs)]
            elif isinstance(c, JoinCtor):
                exprs += [c.drop_local, c.drop_global]
            elif isinstance(c, SeqCtor):
                found.add(c.layers)
        elif isinstance(s, SeqStart):
            found.add(s.seq.layers)
        for e in exprs:
            if not isinstance(e, Lit) or e.value != ():
                found.update(read_names(e))
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub:
                found |= _reads(sub)
    return found


def _drop_lets(stmts: list, reads: set[str]) -> list:
    out: list = []
    for s in stmts:
        if isinstance(s, Let) and s.name not in reads:
            continue
        if isinstance(s, When):
            s = When(s.cond, _drop_lets(s.body, reads), _drop_lets(s.orelse, reads))
        elif isinstance(s, Each):
            s = Each(s.var, s.iterable, _drop_lets(s.body, reads))
        out.append(s)
    return out


def _count(stmts: list) -> int:
    return sum(1 + _count(getattr(s, "body", []) or []) + _count(getattr(s, "orelse", []) or []) for s in stmts)


def _starts_unbuffered(s: When) -> bool:
    """The start of a chain across calls that the pass gave no buffer: nothing to print."""
    return len(s.body) == 1 and isinstance(s.body[0], Let) and isinstance(s.body[0].value, Start) \
        and not s.body[0].value.chain.buffered


def _chains(stmts: list) -> list:
    found: list = []
    for s in stmts:
        if isinstance(s, Let) and isinstance(s.value, Start):
            found.append(s.value.chain)
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub:
                found += _chains(sub)
    return found


def _tidy(stmts: list, keeps_out: bool, unused: set[str]) -> list:
    """__init__ without what nothing reads: self.out_channels where no caller reads it,
    a chain's buffer channels where the pass gave it no buffer, and the branches left
    empty."""
    out: list = []
    for s in stmts:
        if isinstance(s, Keep) and ((s.name == OUT and not keeps_out) or s.name in unused):
            continue
        if isinstance(s, When):
            body, orelse = _tidy(s.body, keeps_out, unused), _tidy(s.orelse, keeps_out, unused)
            if not body and not orelse:
                continue
            s = When(s.cond, body, orelse) if body else When(Not(s.cond), orelse, [])
        elif isinstance(s, Each):
            s = Each(s.var, s.iterable, _tidy(s.body, keeps_out, unused))
        out.append(s)
    return out


__all__ = ["MirrorPrinter", "FString"]
