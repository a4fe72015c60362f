"""The body of an emitted class: the statements of ``__init__`` that build its
submodules (module lists included, containers.py) and those of ``forward`` that run them,
from the class's template; locals are named after the spec's variables and reused once dead.
"""

from __future__ import annotations

import keyword
import re

from udnet.backends.pytorch.classes import ClassDef
from udnet.backends.pytorch.containers import Containers
from udnet.backends.pytorch.layout import fmt_call, lit, stmt_lines
from udnet.backends.pytorch.structure import Instance
from udnet.backends.pytorch.templates import Affine, Num
from udnet.ops import CONNECTIONS
from udnet.reserved import RESERVED_IN_MODEL

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ClassBody:
    """The statements of a class: its constructor's and its forward's."""


    def __init__(self, code: list[str], cd: ClassDef):
        self.code = code
        self.cd = cd
        self.input_names: list[str] = []
        self.containers = Containers(cd.instances, RESERVED_IN_MODEL)

    def num(self, n: Num) -> str:
        return self.code[n.slot]

    def _attr(self, label: str) -> str:
        return self.containers.access(label) if "." in label else _attr(label)

    def aff(self, a: Affine, var: str = "i") -> str:
        if a.values is not None:
            return f"({', '.join(self.num(v) for v in a.values)},)[{var}]"
        base = self.num(a.a)
        if a.b is None:
            return base
        step = self.num(a.b)
        if step == "0":
            return base
        if step.startswith("-"):
            term = var if step == "-1" else f"{step[1:]} * {var}"
            return f"-{term}" if base == "0" else f"{base} - {term}"
        term = var if step == "1" else f"{step} * {var}"
        return term if base == "0" else f"{base} + {term}"

    # -- constructors --

    def ctor(self, desc: tuple, v) -> tuple[str, list[str]]:
        """(callable, args) constructing a child; ``v`` renders a number-like leaf."""
        kind = desc[0]
        if kind == "scope":
            cd = desc[1]
            values = [v(n) for n in desc[2]]
            if len(values) == 1:
                return cd.name, values
            return cd.name, [f"{p}={val}" for p, val in zip(cd.params, values)]
        if kind == "join":
            _, _, dl, dg, cols = desc
            return "Join", [v(dl), v(dg), "(" + ", ".join(v(c) for c in cols) + ("," if len(cols) == 1 else "") + ")"]
        _, module, fields = desc
        texts = {hint: _pair(value, v) for hint, _, _, _, value in fields}
        args: list[str] = []
        for hint, kw, default, same_as, _ in fields:
            text = texts[hint]
            if text == default or (same_as is not None and text == texts[same_as]):
                continue
            args.append(text if kw is None else f"{kw}={text}")
        return module, args

    def init_lines(self, tpl) -> list[str]:
        lines: list[str] = []
        for item in tpl[2]:
            if item[0] == "stmt":
                child = item[6]
                if child is None:
                    continue
                for label, _, desc in (child,) + item[7]:
                    fn, args = self.ctor(desc, self._leaf)
                    if "." in label:
                        lines += self._make_containers(label)
                        put, name = self.containers.register(label)
                        lines += fmt_call(f"{put} = ", fn, args) if name is None else fmt_call(
                            "", put, [name, f"{fn}({', '.join(args)})"])
                    elif _plain_attr(label):
                        lines += fmt_call(f"self.{label} = ", fn, args)
                    else:
                        lines += fmt_call("", "self.add_module", [lit(label), f"{fn}({', '.join(args)})"])
            else:
                count = self.num(item[1])
                body = []
                for s in item[5]:
                    if s[4] is None:
                        continue
                    pat, _, desc = s[4]
                    fn, args = self.ctor(desc, lambda leaf: self._iter_leaf(leaf))
                    put, name = ("self.add_module", self._label_expr(pat))
                    if pat[0] != "list" and "." in pat[0]:
                        lines += self._make_containers(pat[0])
                        put, name = self.containers.loop_register(pat[0], _label_index(pat), pat[3])
                    body += fmt_call("", put, [name, f"{fn}({', '.join(args)})"], "    ")
                if body:
                    lines.append(f"for i in range({count}):")
                    lines += body
        return lines

    def _make_containers(self, label: str) -> list[str]:
        return [line for prefix, fn, args in self.containers.make_calls(label) for line in fmt_call(prefix, fn, args)]

    def _leaf(self, leaf) -> str:
        if isinstance(leaf, Num):
            return self.num(leaf)
        if isinstance(leaf, bool) or isinstance(leaf, str):
            return lit(leaf)
        raise TypeError(leaf)

    def _iter_leaf(self, leaf) -> str:
        if isinstance(leaf, Affine):
            return self.aff(leaf)
        return self._leaf(leaf)

    def _label_expr(self, pat) -> str:
        if pat[0] == "list":
            return f"{lit(tuple(pat[1:]))}[i]"
        prefix, _, _, suffix = pat
        text = prefix.replace("{", "{{").replace("}", "}}")
        return f'f"{text}{{{_label_index(pat)}}}{suffix}"'

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
                    lines += stmt_lines(f"{args[0]} = ", f"concat_start({args[0]}, {self._fwd(self.num(nums[0]))})")
                    continue
                if kind == "bn_relu_conv":
                    modules = ", ".join(self._attr(m) for m in (child[0], extras[0][0], extras[1][0]))
                    expr = f"bn_relu_conv1x1({args[0]}, {modules})"
                else:
                    expr = self._expr(kind, args, nums, child, self._attr)
                for d in dying:
                    live.discard(d)
                if not outs or all(last_use.get(o) is None for o in outs):
                    lines += stmt_lines("", expr)
                    continue
                out_names = []
                for o, vn in zip(outs, vars_):
                    nm = fresh(vn, [d for d in dying if d not in out_names])
                    names[o] = nm
                    live.add(nm)
                    out_names.append(nm)
                lines += stmt_lines(", ".join(out_names) + " = ", expr)
            else:
                lines += self._loop_lines(item, idx, names, live, last_use, fresh)
        outs = tpl[3]
        rets = [names[o] for o in outs]
        if tpl[4]:  # named outputs: a dict in the spec's order (torchvision's FPN: an OrderedDict)
            lines += ["return {"] + [f"    {lit(name)}: {ret}," for name, ret in zip(tpl[4], rets)] + ["}"]
        else:
            lines += stmt_lines("return ", ", ".join(rets) if outs else "x")
        return lines

    def _loop_lines(self, item, idx, names, live, last_use, fresh) -> list[str]:
        _, count, carry, carry_pos, out, stmts = item
        carry_name = names.get(carry) if carry is not None else None
        prologue: list[str] = []
        if carry_name is not None and carry_pos is not None and last_use.get(carry, -1) > idx:
            # The loop's input is read after the loop: carry a copy of the name, not the name.
            new = fresh(stmts[carry_pos[0]][6][carry_pos[1]], [])
            live.add(new)
            prologue = stmt_lines(f"{new} = ", carry_name)
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
                    module = f"getattr(self, {self._label_expr(pat)})"
            expr = self._expr(kind, args, nums, (None, None, None) if childs else None,
                              lambda _, module=module: module, looping=True)
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
            body += stmt_lines(", ".join(outs) + " = " if outs else "", expr, "    ")
        if out is not None:
            names[out] = carry_name
        return prologue + [f"for i in range({self._count(count)}):"] + body

    def _count(self, n: Num) -> str:
        c = self.num(n)
        return c if c[0].isdigit() else f"self.{c}"

    def _expr(self, kind, args, nums, child, attr, looping=False) -> str:
        if kind == "call":
            return f"{attr(child[0] if child else None)}({', '.join(args)})"
        name, form = kind if isinstance(kind, tuple) else (kind, ())
        if name in CONNECTIONS and CONNECTIONS[name].forward is not None:
            return CONNECTIONS[name].forward(args, form)
        if kind == "append":
            lo, drop = (None if n is None else self._fwd(self.aff(n) if looping else self.num(n)) for n in nums)
            head = f", head={args[2]}" if len(args) > 2 else ""
            drop = f", drop={drop}" if drop is not None else ""
            return f"concat_append({args[0]}, {args[1]}, {lo}{head}{drop})"
        if kind == "slice":
            bounds = []
            for b in nums:
                if b is None:
                    bounds.append("")
                else:
                    bounds.append(self._fwd(self.aff(b) if looping else self.num(b)))
            simple = all(re.fullmatch(r"-?\w*", b) for b in bounds)
            sep = ":" if simple else " : "
            lo, hi = bounds
            text = f"{lo}{sep}{hi}".strip() if not simple else f"{lo}:{hi}"
            return f"{args[0]}[:, {text}]"
        raise AssertionError(kind)

    def _fwd(self, code: str) -> str:
        """A number's code as read in forward: constructor parameters live on self."""
        params = set(self.cd.params)
        return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: f"self.{m.group(0)}" if m.group(0) in params else m.group(0), code)


_RESERVED_ATTRS = {"training", "forward"}


def _plain_attr(label: str) -> bool:
    """Whether ``self.<label>`` may be written: an identifier, not a keyword, and not
    ``__x`` (Python would mangle it to ``_Class__x`` and change the state_dict keys)."""
    return (
        bool(_IDENT.fullmatch(label))
        and not keyword.iskeyword(label)
        and not label.startswith("__")
        and label not in _RESERVED_ATTRS
    )


def _label_index(pat) -> str:
    """The index expression of a loop's label pattern (prefix, start, step, suffix)."""
    _, start, step, _ = pat
    if step == 1:
        return "i" if start == 0 else f"i + {start}"
    return f"{step} * i" if start == 0 else f"{step} * i + {start}"


def _attr(label: str) -> str:
    return f"self.{label}" if _plain_attr(label) and label not in RESERVED_IN_MODEL else f"getattr(self, {lit(label)})"


def _pair(val, v) -> str:
    if isinstance(val, tuple):
        return "(" + ", ".join(v(e) for e in val) + ")"
    return v(val)


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
