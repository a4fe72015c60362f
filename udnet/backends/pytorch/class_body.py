"""The body of an emitted class: the statements of ``__init__`` that build its
submodules (module lists included, containers.py) and those of ``forward`` that run them,
from the class's template; locals are named after the spec's variables and reused once dead.
Every statement is built as an expression tree (expr.py) and laid out by layout.py.
"""

from __future__ import annotations

import keyword
import re

from udnet.backends.pytorch.classes import ClassDef
from udnet.backends.pytorch.containers import Containers
from udnet.backends.pytorch.expr import (
    SELF,
    Attr,
    BinOp,
    Call,
    Expr,
    FString,
    Lit,
    Name,
    Neg,
    Slice,
    Subscript,
    Tuple,
    call,
    dotted,
    is_int,
    read_names,
    render,
    self_attr,
)
from udnet.backends.pytorch.layout import stmt_lines
from udnet.backends.pytorch.structure import Instance
from udnet.backends.pytorch.templates import Affine, Num
from udnet.ops import CONNECTIONS
from udnet.reserved import MODULE_ATTRS, RESERVED_IN_MODEL

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The index of the emitted loops.
INDEX = Name("i")


class ClassBody:
    """The statements of a class: its constructor's and its forward's."""

    def __init__(self, cd: ClassDef):
        self.cd = cd
        self.input_names: list[str] = []
        self.containers = Containers(cd.instances, RESERVED_IN_MODEL)
        self.reads: set[str] = set()  # every name the statements read (does the class use torch?)

    def statement(self, prefix: str, expr: Expr, indent: str = "") -> list[str]:
        """The lines of ``prefix expr`` (``prefix``: an assignment's targets, or nothing)."""
        self.reads.update(read_names(expr))
        return stmt_lines(prefix, expr, indent)

    def num(self, n: Num, on_self: bool = False) -> Expr:
        """A number of the template: a literal, or a constructor parameter, which forward
        reads from the attribute of the same name (``on_self``)."""
        e = self.cd.slot_code[n.slot]
        return self_attr(e.id) if on_self and isinstance(e, Name) else e

    def aff(self, a: Affine, on_self: bool = False) -> Expr:
        """An iteration's number ``a + b * i``, as simply as ruff would leave it."""
        assert a.values is None, "a loop over per-iteration lists is unrolled"
        base = self.num(a.a, on_self)
        if a.b is None:
            return base
        step = self.num(a.b, on_self)
        if is_int(step, 0):
            return base
        if isinstance(step, Lit) and step.value < 0:
            if is_int(base, 0):
                return Neg(INDEX) if is_int(step, -1) else BinOp(step, "*", INDEX)
            return BinOp(base, "-", INDEX if is_int(step, -1) else BinOp(Lit(-step.value), "*", INDEX))
        term = INDEX if is_int(step, 1) else BinOp(step, "*", INDEX)
        return term if is_int(base, 0) else BinOp(base, "+", term)

    def _module(self, label: str) -> Expr:
        return self.containers.access(label) if "." in label else _attr(label)

    # -- constructors --

    def ctor(self, desc: tuple, v) -> Call:
        """The call constructing a child; ``v`` makes the expression of a number-like leaf."""
        kind = desc[0]
        if kind == "scope":
            cd = desc[1]
            values = tuple(v(n) for n in desc[2])
            if len(values) == 1:
                return Call(Name(cd.name), values)
            kwargs = tuple(zip(cd.params, values))
            if cd.mirror is not None:  # arguments that are the block's defaults are left out, as in the spec
                defaults = cd.mirror.defaults
                kwargs = tuple((k, e) for k, e in kwargs if k not in defaults or render(e) != render(defaults[k]))
            return Call(Name(cd.name), (), kwargs)
        if kind == "join":
            _, _, dl, dg, cols = desc
            return call("Join", v(dl), v(dg), Tuple(tuple(v(c) for c in cols)))
        _, module, fields = desc
        return op_call(module, [(hint, kw, default, same_as,
                                 Tuple(tuple(v(e) for e in value)) if isinstance(value, tuple) else v(value))
                                for hint, kw, default, same_as, value in fields])

    def init_lines(self, tpl) -> list[str]:
        lines: list[str] = []
        for item in tpl[2]:
            if item[0] == "stmt":
                child = item[6]
                if child is None:
                    continue
                for label, _, desc in (child,) + item[7]:
                    module = self.ctor(desc, self._leaf)
                    if "." in label:
                        lines += self._make_containers(label)
                        target, value = self.containers.put(label, module)
                        lines += self.statement("" if target is None else f"{render(target)} = ", value)
                    elif plain_attr(label):
                        lines += self.statement(f"self.{label} = ", module)
                    else:
                        lines += self.statement("", Call(Attr(SELF, "add_module"), (Lit(label), module)))
            else:
                body = []
                for s in item[5]:
                    if s[4] is None:
                        continue
                    pat, _, desc = s[4]
                    module = self.ctor(desc, self._iter_leaf)
                    if pat[0] != "list" and "." in pat[0]:
                        lines += self._make_containers(pat[0])
                        put = self.containers.loop_put(pat[0], _label_index(pat), pat[3], module)
                    else:
                        put = Call(Attr(SELF, "add_module"), (self._label_expr(pat), module))
                    body += self.statement("", put, "    ")
                if body:
                    lines.append(f"for i in range({render(self.num(item[1]))}):")
                    lines += body
        return lines

    def _make_containers(self, label: str) -> list[str]:
        return [line for target, value in self.containers.make(label)
                for line in self.statement("" if target is None else f"{render(target)} = ", value)]

    def _leaf(self, leaf) -> Expr:
        if isinstance(leaf, Num):
            return self.num(leaf)
        if isinstance(leaf, bool) or isinstance(leaf, str):
            return Lit(leaf)
        raise TypeError(leaf)

    def _iter_leaf(self, leaf) -> Expr:
        if isinstance(leaf, Affine):
            return self.aff(leaf)
        return self._leaf(leaf)

    def _label_expr(self, pat) -> Expr:
        """The label of a loop's child in iteration ``i``."""
        if pat[0] == "list":
            return Subscript(Lit(tuple(pat[1:])), (INDEX,))
        prefix, _, _, suffix = pat
        return FString((prefix, _label_index(pat), suffix))

    # -- forward --

    def forward_lines(self, tpl, inst: Instance) -> list[str]:
        n_in = tpl[1]
        names: dict[int, str] = {}
        live: set[str] = set()
        last_use = _last_uses(tpl)
        taken = set(RESERVED_IN_MODEL)
        for k in range(n_in):
            nm = "x" if k == 0 else f"x{k + 1}"
            names[k] = nm
            live.add(nm)
        self.input_names = [names[k] for k in range(n_in)]
        lines: list[str] = []
        counter = [0]

        def fresh(pref: str, dying: list[str]) -> str:
            if (pref and _IDENT.fullmatch(pref) and pref not in taken and not pref.startswith("__")
                    and (pref not in live or pref in dying)):
                return pref
            for d in dying:
                return d
            while True:
                counter[0] += 1
                cand = "y" if counter[0] == 1 else f"y{counter[0]}"
                if cand not in live:
                    return cand

        for idx, item in enumerate(tpl[2]):
            if item[0] == "stmt":
                _, kind, ins, outs, nums, vars_, child, extras = item
                args = [names[v] for v in ins]
                dying = [names[v] for v in ins if last_use.get(v) == idx]
                if kind == "start":
                    lines += self.statement(f"{args[0]} = ", call("concat_start", Name(args[0]),
                                                                self.num(nums[0], on_self=True)))
                    continue
                if kind == "bn_relu_conv":
                    modules = (self._module(m) for m in (child[0], extras[0][0], extras[1][0]))
                    expr = call("bn_relu_conv1x1", Name(args[0]), *modules)
                else:
                    expr = self._expr(kind, args, nums, child and self._module(child[0]))
                for d in dying:
                    live.discard(d)
                if not outs or all(last_use.get(o) is None for o in outs):
                    lines += self.statement("", expr)
                    continue
                out_names = []
                for o, vn in zip(outs, vars_):
                    nm = fresh(vn, [d for d in dying if d not in out_names])
                    names[o] = nm
                    live.add(nm)
                    out_names.append(nm)
                lines += self.statement(", ".join(out_names) + " = ", expr)
            else:
                lines += self._loop_lines(item, idx, names, live, last_use, fresh)
        outs = tpl[3]
        rets = [names[o] for o in outs]
        if tpl[4]:  # named outputs: a dict in the spec's order (torchvision's FPN: an OrderedDict)
            lines += ["return {"] + [f"    {render(Lit(name))}: {ret}," for name, ret in zip(tpl[4], rets)] + ["}"]
        else:
            lines.append(f"return {', '.join(rets) if outs else 'x'}")
        return lines

    def _loop_lines(self, item, idx, names, live, last_use, fresh) -> list[str]:
        _, count, carry, carry_pos, out, stmts = item
        carry_name = names.get(carry) if carry is not None else None
        prologue: list[str] = []
        if carry_name is not None and carry_pos is not None and last_use.get(carry, -1) > idx:
            # The loop's input is read after the loop: carry a copy of the name, not the name.
            new = fresh(stmts[carry_pos[0]][6][carry_pos[1]], [])
            live.add(new)
            prologue = [f"{new} = {carry_name}"]
            carry_name = new
        local: dict[tuple, str] = {}
        body: list[str] = []
        for j, s in enumerate(stmts):
            _, kind, ins, n_out, childs, nums, vars_ = s
            args = []
            for r in ins:
                if r[0] == "w":
                    args.append(local[(r[1], r[2])])
                elif r[0] == "c":
                    args.append(carry_name)
                else:
                    args.append(names[r[1]])
            module = None
            if childs is not None:
                pat = childs[0]
                if pat[0] != "list" and "." in pat[0]:
                    module = self.containers.loop_access(pat[0], _label_index(pat), pat[3])
                else:
                    module = call("getattr", SELF, self._label_expr(pat))
            expr = self._expr(kind, args, nums, module, looping=True)
            outs = []
            for k in range(n_out):
                if carry_pos is not None and (j, k) == carry_pos and carry_name:
                    nm = carry_name
                else:
                    nm = fresh(vars_[k] if vars_[k] != carry_name else "", [])
                    live.add(nm)
                local[(j, k)] = nm
                outs.append(nm)
            # A call whose result nothing reads (a block that returns its input) is a bare statement.
            body += self.statement(", ".join(outs) + " = " if outs else "", expr, "    ")
        if out is not None:
            names[out] = carry_name
        return prologue + [f"for i in range({render(self.num(count, on_self=True))}):"] + body

    def _expr(self, kind, args: list[str], nums, module: Expr | None, looping: bool = False) -> Expr:
        """A forward statement's expression; ``args`` are the names of its operands."""
        operands = [Name(a) for a in args]
        if kind == "call":
            return Call(module, tuple(operands))
        name, form = kind if isinstance(kind, tuple) else (kind, ())
        if name in CONNECTIONS and CONNECTIONS[name].forward is not None:
            return CONNECTIONS[name].forward(operands, form)
        # Buffer offsets and slice bounds: literals, or constructor parameters read from self.
        bounds = [None if n is None else self.aff(n, True) if looping else self.num(n, True) for n in nums]
        if kind == "append":
            lo, drop = bounds
            head = [("head", operands[2])] if len(operands) > 2 else []
            return Call(Name("concat_append"), (operands[0], operands[1], lo),
                        tuple(head + ([("drop", drop)] if drop is not None else [])))
        if kind == "slice":
            return Subscript(operands[0], (Slice(), Slice(*bounds)))
        raise AssertionError(kind)


def op_call(module: str, fields: list) -> Call:
    """An op module's constructor call from its fields (hint, keyword, default, same_as,
    expression): a field whose text is its default, or its ``same_as`` field's, is left out."""
    texts = {hint: render(e) for hint, _, _, _, e in fields}  # the op table gives defaults as text
    args: list[Expr] = []
    kwargs: list[tuple[str, Expr]] = []
    for hint, kw, default, same_as, e in fields:
        if texts[hint] == default or (same_as is not None and texts[hint] == texts[same_as]):
            continue
        if kw is None:
            args.append(e)
        else:
            kwargs.append((kw, e))
    return Call(dotted(module), tuple(args), tuple(kwargs))


def plain_attr(label: str) -> bool:
    """Whether ``self.<label>`` may be written: an identifier, not a keyword, not one of
    nn.Module's attributes, and not ``__x`` (Python would mangle it to ``_Class__x`` and
    change the state_dict keys)."""
    return (
        bool(_IDENT.fullmatch(label))
        and not keyword.iskeyword(label)
        and not label.startswith("__")
        and label not in MODULE_ATTRS
    )


def _label_index(pat) -> Expr:
    """The index expression of a loop's label pattern (prefix, start, step, suffix)."""
    _, start, step, _ = pat
    scaled = INDEX if step == 1 else BinOp(Lit(step), "*", INDEX)
    return scaled if start == 0 else BinOp(scaled, "+", Lit(start))


def _attr(label: str) -> Expr:
    if plain_attr(label) and label not in RESERVED_IN_MODEL:
        return self_attr(label)
    return call("getattr", SELF, Lit(label))


def _last_uses(tpl) -> dict[int, int]:
    last: dict[int, int] = {}
    for idx, item in enumerate(tpl[2]):
        if item[0] == "stmt":
            for v in item[2]:
                last[v] = idx
        else:
            if item[2] is not None:
                last[item[2]] = idx
            for s in item[5]:
                for r in s[2]:
                    if r[0] == "o":
                        last[r[1]] = idx
    for v in tpl[3]:
        last[v] = len(tpl[2])
    return last
