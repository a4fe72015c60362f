"""Print a mirrored class (mirror.py's program, checked by mirror_check.py) as the
lines of its ``__init__`` and ``forward``."""

from __future__ import annotations

from udnet.backends.pytorch.class_body import plain_attr
from udnet.backends.pytorch.expr import (
    SELF,
    Attr,
    Call,
    Expr,
    FString,
    Lit,
    Name,
    Not,
    Slice,
    Starred,
    Subscript,
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
    Connect,
    Each,
    Give,
    HasModule,
    Keep,
    Let,
    Local,
    MirrorClass,
    Module,
    OpCtor,
    SeqCtor,
    SeqStart,
    SliceOf,
    When,
)
from udnet.ops import CONNECTIONS, OPS


class MirrorPrinter:
    """The methods of one mirrored class; ``class_name`` maps a block to its class's name."""

    def __init__(self, mc: MirrorClass, class_name):
        self.mc = mc
        self.class_name = class_name
        self.reads: set[str] = set()

    def methods(self) -> list[str]:
        mc = self.mc
        params = ["self"] + [p if p not in mc.defaults else f"{p}={render(mc.defaults[p])}" for p in mc.params]
        lines = def_lines("    ", "__init__", params)
        lines.append("        super().__init__()")
        # Statements are laid out relative to the method body, which sits 8 columns in.
        lines += ["        " + line for line in self.block(_tidy(mc.init, mc.keeps_out), "", init=True)]
        lines.append("")
        lines += def_lines("    ", "forward", ["self"] + mc.inputs)
        lines += ["        " + line for line in self.block(mc.forward, "", init=False)]
        return lines

    def line(self, prefix: str, e: Expr, indent: str) -> list[str]:
        self.reads.update(read_names(e))
        return stmt_lines(prefix, e, indent)

    def block(self, stmts: list, indent: str, init: bool) -> list[str]:
        out: list[str] = []
        for s in stmts:
            if isinstance(s, Let):
                if init:
                    value = Name("[]") if isinstance(s.value, Lit) and s.value.value == () else s.value
                    out += self.line(f"{s.name} = ", value, indent)
                else:
                    value = self.tensor(s.value)
                    if not (isinstance(value, Name) and value.id == s.name):
                        out += self.line(f"{s.name} = ", value, indent)
            elif isinstance(s, SeqStart):
                start = Name("[]") if s.seq.indexed else call("nn.Sequential")
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
                out += self.line("return ", self.tensor(s.value), indent)
        return out

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
            return Call(dotted("nn.Sequential"), (Starred(Name(c.layers)),)) if c.indexed else Name(c.layers)
        if isinstance(c, BlockCtor):
            return Call(Name(self.class_name(c.block)), tuple(c.channels) + tuple(c.args), tuple(c.kwargs))
        assert isinstance(c, OpCtor) and c.fields is not None
        spec = OPS[c.op]
        fields = list(c.fields)
        if c.inplace and spec.torch.inplace is not None:
            f = spec.torch.inplace
            fields.append((f.hint, f.keyword, f.default, f.same_as, Lit(f.value)))
        texts = {hint: render(e) for hint, _, _, _, e in fields}
        args: list[Expr] = []
        kwargs: list[tuple[str, Expr]] = []
        for hint, kw, default, same_as, e in fields:
            if texts[hint] == default or (same_as is not None and texts[hint] == texts[same_as]):
                continue
            if kw is None:
                args.append(e)
            else:
                kwargs.append((kw, e))
        return Call(dotted(c.module), tuple(args), tuple(kwargs))

    def tensor(self, t) -> Expr:
        if isinstance(t, Local):
            return Name(t.name)
        if isinstance(t, Apply):
            return Call(self.access(t.label), tuple(self.tensor(a) for a in t.args))
        if isinstance(t, Connect):
            return CONNECTIONS[t.op].forward([self.tensor(a) for a in t.operands], t.form or ())
        if isinstance(t, SliceOf):
            return Subscript(self.tensor(t.value), (Slice(), Slice(t.lo, t.hi)))
        raise TypeError(t)


def _tidy(stmts: list, keeps_out: bool) -> list:
    """__init__ without what nothing reads: self.out_channels where no caller reads it,
    and the branches left empty."""
    out: list = []
    for s in stmts:
        if isinstance(s, Keep) and s.name == OUT and not keeps_out:
            continue
        if isinstance(s, When):
            body, orelse = _tidy(s.body, keeps_out), _tidy(s.orelse, keeps_out)
            if not body and not orelse:
                continue
            s = When(s.cond, body, orelse) if body else When(Not(s.cond), orelse, [])
        elif isinstance(s, Each):
            s = Each(s.var, s.iterable, _tidy(s.body, keeps_out))
        out.append(s)
    return out


__all__ = ["MirrorPrinter", "FString"]
