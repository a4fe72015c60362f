"""``if`` and ``for`` in a mirrored class: ``__init__`` takes them as written; ``forward``
replays the constructor's decisions (``if self.downsample is not None``, or the
condition over attributes), and tensors' channels after them are conditional
expressions or locals carried around the loop. A mixin of the Translator.
"""

from __future__ import annotations

import copy
from typing import Any

from udnet.backends.pytorch.expr import (
    BinOp,
    Call,
    Expr,
    Lit,
    Name,
)
from udnet.backends.pytorch.mirror.program import (
    Chain,
    Connect,
    Each,
    HasModule,
    Keep,
    Let,
    Local,
    Module,
    Start,
    Unsupported,
    When,
    same_program,
)
from udnet.backends.pytorch.mirror.values import State, choose
from udnet.frontend import ast


class Control:
    """Conditionals and loops; ``self`` is the Translator."""

    def if_stmt(self, s: ast.If, st: State, init: list, fwd: list, rest: list) -> bool:
        branches: list[tuple[Expr | None, list]] = []
        node: Any = s
        while isinstance(node, ast.If):
            branches.append((self.value(node.cond, st), node.body.stmts))
            node = node.orelse
        if node is not None:
            branches.append((None, node.stmts))
        outs = []
        for cond, stmts in branches:
            sub = copy.deepcopy(st)
            sub.depth += 1
            bi, bf = [], []
            ret = self.body(stmts, sub, bi, bf)
            outs.append((cond, sub, bi, bf, ret))
        # An if whose branches return hands the statements after it to the others.
        if any(o[4] for o in outs) and rest:
            if branches[-1][0] is not None:
                outs.append((None, copy.deepcopy(st), [], [], False))
            for o in outs:
                if not o[4]:
                    o[1].depth += 1
                    ret = self.body(rest, o[1], o[2], o[3])
                    if not ret:
                        raise Unsupported("an if that returns in some branches and falls through others")
            self._emit_if(outs, st, init, fwd, merged_rest=True)
            return True
        returned = all(o[4] for o in outs) and branches[-1][0] is None
        self._emit_if(outs, st, init, fwd, merged_rest=False)
        return returned

    def _emit_if(self, outs: list, st: State, init: list, fwd: list, merged_rest: bool) -> None:
        # __init__: the branches as written.
        init_chain: list = []
        fwd_chain: list = []
        has_fwd = any(o[3] for o in outs)
        # An if that adds a module (the first its branch sets, by a fixed label) and does
        # nothing else is replayed as "is that module there".
        first = next((s for s in outs[0][2] if isinstance(s, Module) and s.into is None
                      and isinstance(s.label, Lit)), None)
        optional = (len(outs) <= 2 and first is not None
                    and (len(outs) == 1 or (outs[1][0] is None and not outs[1][2] and not outs[1][3])))
        if optional and has_fwd:
            label = first.label
            if len(outs) == 1:
                outs.append((None, copy.deepcopy(st), [], [], False))
            outs[1][2].append(Module(label, None))
            fwd_cond = HasModule(label)
        same_fwd = has_fwd and not merged_rest and outs[-1][0] is None and not optional \
            and all(same_program(o[3], outs[0][3]) for o in outs)
        # forward needs no trailing branches that run nothing (an elif that only asserts).
        last = max((k for k, o in enumerate(outs) if o[3]), default=-1) if not merged_rest else len(outs) - 1
        for k, (cond, _, bi, bf, _) in enumerate(outs):
            init_chain.append((cond, bi))
            if has_fwd and not same_fwd and k <= last:
                fc = None if cond is None else (fwd_cond if optional and k == 0 else self.forward_value(cond, st))
                fwd_chain.append((fc, bf))
        init.extend(_chain(init_chain))
        if same_fwd:
            fwd.extend(outs[0][3])  # every branch runs the same: forward needs no if
            has_fwd = False
        if has_fwd:
            fwd.extend(_chain([b for b in fwd_chain if b[1] or b[0] is not None]) if not merged_rest
                       else _early_returns(fwd_chain))
        # After the if: every tensor's channels as the branch taken left them.
        live = [o for o in outs if not o[4]]
        if not live:
            return
        names = set().union(*(o[1].kinds for o in live))
        for name in names:
            kinds = {o[1].kinds.get(name) for o in live}
            if len(kinds) != 1:
                st.kinds.pop(name, None)  # set in some branches only: unusable after the if
                continue
            kind = kinds.pop()
            st.kinds[name] = kind
            if kind == "value":
                if any(name not in o[1].assigned_once or not o[1].assigned_once[name] for o in live) \
                        or name not in st.assigned_once:
                    st.assigned_once[name] = False
            if kind == "tensor":
                exprs = [o[1].chan[name] for o in live]
                if all(e == exprs[0] for e in exprs):
                    st.chan[name] = exprs[0]
                else:
                    merged = exprs[-1]
                    conds = [o[0] for o in live]
                    for c, e in zip(reversed(conds[:-1]), reversed(exprs[:-1])):
                        if c is None:
                            raise Unsupported("channels after an if")
                        merged = choose(c, e, merged)
                    st.chan[name] = merged

    def for_stmt(self, s: ast.For, st: State, init: list, fwd: list) -> None:
        it = s.iterable
        if isinstance(it, ast.RangeExpr):
            iterable: Expr = _range(self.value(it.lo, st), self.value(it.hi, st))
        else:
            iterable = self.value(it, st)
        var = self.pyname(s.var)
        if st.kinds.get(s.var) not in (None, "loop"):
            raise Unsupported(f"loop variable {s.var} is also a variable")
        # Channels carried from one iteration to the next live in a local of __init__.
        trial = copy.deepcopy(st)
        trial.kinds[s.var] = "loop"
        trial.depth += 1
        saved = (copy.copy(self.py), set(self.taken), set(self.fwd_reads), list(self.outs))
        self.body(s.body.stmts, trial, [], [])
        self.py, self.taken, self.fwd_reads, self.outs = saved
        prologue = []
        carried = [n for n, e in trial.chan.items() if st.chan.get(n) is not None and e != st.chan[n]]
        for n in carried:
            local = self.fresh("channels" if n == "x" else f"{n}_channels")
            prologue.append(Let(local, st.chan[n]))
            st.chan[n] = Name(local)
        sub = copy.deepcopy(st)
        sub.kinds[s.var] = "loop"
        sub.depth += 1
        bi, bf = [], []
        if self.body(s.body.stmts, sub, bi, bf):
            raise Unsupported("return inside a loop")
        for n in carried:
            bi.append(Let(st.chan[n].id, sub.chan[n]))
        for name, kind in sub.kinds.items():
            if name == s.var:
                continue
            if kind == "value" and name not in st.kinds:
                st.kinds[name] = "value"
                st.assigned_once[name] = False
            elif kind == "tensor" and name not in st.kinds:
                raise Unsupported(f"tensor {name} set in a loop")
        init.extend(prologue)
        init.append(Each(var, iterable, bi))
        # A carried concat (x = x ++ f(x)) may share one buffer: start it before the loop.
        for s in bf:
            if isinstance(s, Let) and isinstance(s.value, Connect) and s.value.op == "concat" \
                    and isinstance(s.value.operands[0], Local) and s.value.operands[0].name == s.name:
                n = next((k for k, v in self.py.items() if v == s.name), None)
                if n in carried and s.value.chain is None:
                    chain = Chain(self.attribute("concat_channels"))
                    s.value.chain = chain
                    fwd.append(Let(s.name, Start(Local(s.name), chain)))
                    init.append(Keep(chain.capacity, st.chan[n]))
        if bf:
            fwd.append(Each(var, self.forward_value(iterable, st, loop_vars={var}), bf))

    # -- tensors --


def _range(lo: Expr, hi: Expr) -> Expr:
    if isinstance(hi, BinOp) and hi.op == "-" and isinstance(hi.right, Lit) and hi.right.value == 1:
        end = hi.left
    elif isinstance(hi, Lit) and type(hi.value) is int:
        end = Lit(hi.value + 1)
    else:
        end = BinOp(hi, "+", Lit(1))
    if isinstance(lo, Lit) and lo.value == 0 and type(lo.value) is int:
        return Call(Name("range"), (end,))
    return Call(Name("range"), (lo, end))




def _chain(branches: list) -> list:
    """if / elif / else of (cond, statements) pairs; a None cond is the else."""
    if not branches:
        return []
    cond, body = branches[0]
    if cond is None:
        return body
    rest = _chain(branches[1:])
    return [When(cond, body, rest)]


def _early_returns(branches: list) -> list:
    """forward of an if whose taken branches return: each returning branch an ``if``,
    the branch that falls through (the statements after the if) after them."""
    out: list = []
    last = branches[-1]
    for cond, body in branches[:-1]:
        out.append(When(cond, body, []))
    return out + last[1]


