"""The translation of one block's syntax tree into its class's program (program.py).

Each tensor of the block is tracked with the expression of its channels in
``__init__`` (an op's ``out`` argument, or its input's); a block called by the block
gives its output channels as an expression of the call's arguments, or through the
``out_channels`` attribute its constructor sets. Values forward reads (a loop's count,
a slice's bounds, an ``if``'s condition) become attributes; an ``if`` that only adds a
module is replayed as ``if self.<module> is not None``. What the translation does not
cover raises ``Unsupported``: the block keeps the instance path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from udnet.backends.pytorch.expr import (
    SELF,
    Attr,
    BinOp,
    Call,
    Expr,
    FString,
    IfExp,
    Lit,
    Name,
    Neg,
    Not,
    Subscript,
    Tuple,
    read_names,
)
from udnet.backends.pytorch.mirror.labels import auto_names, callee
from udnet.backends.pytorch.mirror.program import (
    OUT,
    Apply,
    BlockCtor,
    Chain,
    Connect,
    Columns,
    Each,
    Fused,
    Give,
    HasModule,
    JoinCtor,
    ListOf,
    Keep,
    Let,
    Local,
    MirrorClass,
    Module,
    OpCtor,
    SeqCtor,
    SeqStart,
    SliceOf,
    Spread,
    Start,
    Unsupported,
    When,
    same_program,
    substitute,
)
from udnet.frontend import ast
from udnet.ops import CONNECTIONS as CONNECTION_SPECS
from udnet.ops import OPS
from udnet.reserved import CONNECTIONS, FUNCTIONS, MODULE_ATTRS

_PY_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "//": "//", "%": "%", "**": "**", "==": "==",
           "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "and": "and", "or": "or", "in": "in",
           "++": "+"}



@dataclass
class _State:
    """What the translation knows at a point of the body."""

    kinds: dict[str, str] = field(default_factory=dict)  # spec name -> "tensor" | "value" | "loop"
    chan: dict[str, Expr] = field(default_factory=dict)  # tensor -> its channels (in __init__)
    assigned_once: dict[str, bool] = field(default_factory=dict)  # value -> set once, at the top
    depth: int = 0  # loops and ifs around the statement


class Translator:
    """Translates one block. ``classes``: the blocks translated so far (for their
    parameters and output channels); ``names``: spec name -> Python name."""

    def __init__(self, defn: ast.Definition, classes: dict[str, MirrorClass], blocks: dict[str, ast.Definition],
                 reserved: set[str]):
        self.defn = defn
        self.classes = classes
        self.blocks = blocks
        self.reserved = reserved
        self.py: dict[str, str] = {}
        self.taken: set[str] = set(reserved)
        self.fwd_reads: set[str] = set()
        self.layers = 0
        self.outs: list[Expr] = []
        self.auto, self.labels = auto_names(defn.body.stmts)
        self.join_labels: set[str] = set()
        self.chains: set[str] = set()  # attributes holding a chain's buffer channels
        self.home: dict[int, list] = {}  # id(forward Let) -> the statement list holding it
        self.span_chain: Chain | None = None  # a chain across calls (one per block)
        self.last_call: dict[str, Let] = {}  # forward local -> the statement that last set it
        self.called_class: dict[str, MirrorClass] = {}  # label -> the class of the block called there
        self.attr_of: dict[str, str] = {}

    # -- names --

    def pyname(self, name: str) -> str:
        if name not in self.py:
            cand = name
            while cand in self.taken or cand.startswith("__"):
                cand = cand.lstrip("_") + "_" if cand.startswith("__") else cand + "_"
            self.taken.add(cand)
            self.py[name] = cand
        return self.py[name]

    def fresh(self, base: str) -> str:
        cand = base
        while cand in self.taken or cand in self.py.values():
            cand += "_"
        self.taken.add(cand)
        return cand

    # -- entry --

    def translate(self) -> MirrorClass:
        d = self.defn
        st = _State()
        inputs = [p.name for p in d.inputs] or ["x"]
        channel_params = []
        for k, name in enumerate(inputs):
            cp = self.fresh("in_channels" if k == 0 else f"{name}_channels")
            channel_params.append(cp)
            st.kinds[name] = "tensor"
            st.chan[name] = Name(cp)
        if len(inputs) > 1:
            st.kinds["x"] = "tensor"  # x is the first input
            st.chan["x"] = st.chan[inputs[0]]
        params, defaults = [], {}
        for p in d.params:
            pn = self.pyname(p.name)
            params.append(pn)
            st.kinds[p.name] = "value"
            st.assigned_once[p.name] = True
            if p.default is not None:
                defaults[pn] = constant(p.default)
        init, fwd = [], []
        returned = self.body(d.body.stmts, st, init, fwd)
        if not returned:
            fwd.append(Give(Local(self.pyname("x"))))
            init.append(Keep(OUT, st.chan["x"]))
            self.outs.append(st.chan["x"])
        if OUT in params:
            raise Unsupported(f"a parameter named {OUT}")
        out = self.outs[0] if all(o == self.outs[0] for o in self.outs) else None
        if out is not None and not set(read_names(out)) <= set(channel_params) | set(params):
            out = None
        # Values forward reads become attributes, set where they are final.
        keeps = [Keep(self.attr_of[n], Name(n)) for n in params if n in self.fwd_reads]
        keeps += [Keep(self.attr_of[cp], Name(cp)) for cp in channel_params if cp in self.fwd_reads]
        for name in sorted(self.fwd_reads - set(params) - set(channel_params)):
            spec = next((k for k, v in self.py.items() if v == name), name)
            if not st.assigned_once.get(spec):
                raise Unsupported(f"forward reads {spec}, which is set more than once")
            _insert_keep(init, name, self.attr_of[name])
        _fuse(fwd, _op_labels(init))
        if self.span_chain is not None:  # the planned width, from the caller: None where not started here
            params.append(self.span_chain.param)
            defaults[self.span_chain.param] = Lit(None)
            keeps.append(Keep(self.span_chain.capacity, Name(self.span_chain.param)))
        mc = MirrorClass(d.name, d, channel_params + params, channel_params, defaults, keeps + init, fwd,
                         [self.pyname(n) for n in inputs], out, returns=self.outs)
        mc.span_chain = self.span_chain
        if _gives_join(fwd, self.join_labels):
            mc.returns_join = True
            mc.columns = _columns_program(fwd, self.join_labels)
        return mc

    # -- statements --

    def body(self, stmts: list, st: _State, init: list, fwd: list) -> bool:
        """Translate statements into ``init`` and ``fwd``; True when they always return."""
        for k, s in enumerate(stmts):
            if isinstance(s, ast.Assert):
                continue  # checked at compile time, for every instance
            if isinstance(s, ast.Assign):
                self.assign(s, st, init, fwd)
            elif isinstance(s, ast.ExprStmt):
                t = self.apply_stage(s.value, (Local(self.pyname("x")), st.chan["x"]), s.label, st, init)
                self.bind("x", t, st, fwd)
            elif isinstance(s, ast.ScopeStmt):
                t = self.apply_stage(s.body, (Local(self.pyname("x")), st.chan["x"]), s.label, st, init)
                self.bind("x", t, st, fwd)
            elif isinstance(s, ast.Return):
                t = self.tensor(s.value, st, init)
                fwd.append(Give(t[0]))
                init.append(Keep(OUT, t[1]))
                self.outs.append(t[1])
                if st.depth == 0 and k != len(stmts) - 1:
                    raise Unsupported("statements after a return")
                return True
            elif isinstance(s, ast.If):
                rest = stmts[k + 1:]
                if self.if_stmt(s, st, init, fwd, rest):
                    return True
            elif isinstance(s, ast.For):
                self.for_stmt(s, st, init, fwd)
            else:
                raise Unsupported(type(s).__name__)
        return False

    def assign(self, s: ast.Assign, st: _State, init: list, fwd: list) -> None:
        if self.is_tensor(s.value, st):
            if st.kinds.get(s.name) not in (None, "tensor"):
                raise Unsupported(f"{s.name} holds a value and a tensor")
            if isinstance(s.value, ast.Pipe):
                self.pipe_into(s.name, s.value, st, init, fwd)
            else:
                self.bind(s.name, self.tensor(s.value, st, init), st, fwd)
            return
        if st.kinds.get(s.name) == "tensor":
            raise Unsupported(f"{s.name} holds a value and a tensor")
        value = self.value(s.value, st)
        once = s.name not in st.kinds and st.depth == 0
        st.assigned_once[s.name] = once
        st.kinds[s.name] = "value"
        init.append(Let(self.pyname(s.name), value))

    def pipe_into(self, name: str, pipe: ast.Pipe, st: _State, init: list, fwd: list) -> None:
        """``name = a |> f |> g``: one statement a stage, as a reader of the paper's figure
        follows it (y = f(a); y = g(y))."""
        stages = []
        while isinstance(pipe, ast.Pipe):
            stages.append((pipe.stage, pipe.label))
            pipe = pipe.value
        t = self.tensor(pipe, st, init)
        for stage, label in reversed(stages):
            t = self.apply_stage(stage, t, label, st, init)
            self.bind(name, t, st, fwd)
            t = (Local(self.pyname(name)), t[1])

    def bind(self, name: str, t: tuple, st: _State, fwd: list) -> None:
        st.kinds[name] = "tensor"
        st.chan[name] = t[1]
        let = Let(self.pyname(name), t[0])
        fwd.append(let)
        self.last_call[let.name] = let
        self.home[id(let)] = fwd

    def if_stmt(self, s: ast.If, st: _State, init: list, fwd: list, rest: list) -> bool:
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

    def _emit_if(self, outs: list, st: _State, init: list, fwd: list, merged_rest: bool) -> None:
        # __init__: the branches as written.
        init_chain: list = []
        fwd_chain: list = []
        has_fwd = any(o[3] for o in outs)
        optional = (len(outs) <= 2 and outs[0][2] and isinstance(outs[0][2][0], Module)
                    and isinstance(outs[0][2][0].label, Lit) and outs[0][2][0].into is None
                    and (len(outs) == 1 or (not outs[1][2] and not outs[1][3])))
        if optional and has_fwd:
            label = outs[0][2][0].label
            if len(outs) == 1:
                outs.append((None, copy.deepcopy(st), [], [], False))
            outs[1][2].append(Module(label, None))
            fwd_cond = HasModule(label)
        same_fwd = has_fwd and not merged_rest and outs[-1][0] is None and not optional \
            and all(same_program(o[3], outs[0][3]) for o in outs)
        for k, (cond, _, bi, bf, _) in enumerate(outs):
            init_chain.append((cond, bi))
            if has_fwd and not same_fwd:
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
                        merged = IfExp(c, e, merged)
                    st.chan[name] = merged

    def for_stmt(self, s: ast.For, st: _State, init: list, fwd: list) -> None:
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
        saved = (copy.copy(self.py), set(self.taken), set(self.fwd_reads), self.layers, list(self.outs))
        self.body(s.body.stmts, trial, [], [])
        self.py, self.taken, self.fwd_reads, self.layers, self.outs = saved
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

    def is_tensor(self, e: Any, st: _State) -> bool:
        if isinstance(e, ast.Name):
            return st.kinds.get(e.id) == "tensor"
        if isinstance(e, (ast.Pipe, ast.TupleExpr)):
            return True
        if isinstance(e, ast.BinOp):
            return self.is_tensor(e.left, st) or self.is_tensor(e.right, st)
        if isinstance(e, ast.SliceExpr):
            return self.is_tensor(e.value, st)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            return e.func.id in CONNECTIONS
        return False

    def tensor(self, e: Any, st: _State, init: list) -> tuple:
        """(forward expression, channels in __init__) of a tensor expression."""
        if isinstance(e, ast.Name):
            if st.kinds.get(e.id) != "tensor":
                raise Unsupported(f"{e.id} is not a tensor")
            return Local(self.pyname(e.id)), st.chan[e.id]
        if isinstance(e, ast.Pipe):
            src = self.tensor(e.value, st, init)
            return self.apply_stage(e.stage, src, e.label, st, init)
        if isinstance(e, ast.TupleExpr):
            items = [self.tensor(i, st, init) for i in e.items]
            return [i[0] for i in items], [i[1] for i in items]
        if isinstance(e, ast.BinOp) and e.op in ("+", "++", "*"):
            op = {"+": "add", "++": "concat", "*": "mul"}[e.op]
            # a + b + c is one add of three (the elaborator's rule), a * b * c two products.
            sides = [e.left, e.right]
            while op != "mul" and isinstance(sides[0], ast.BinOp) and sides[0].op == e.op:
                sides[:1] = [sides[0].left, sides[0].right]
            operands = [self.tensor(side, st, init) for side in sides]
            chans = [c for _, c in operands]
            chan = _sum(chans) if op == "concat" else chans[0]
            connect = Connect(op, [f for f, _ in operands])
            if op == "concat" and len(operands) in (2, 3) and not self._in_loop(st):
                self._chain_across_calls(connect)
            return connect, chan
        if isinstance(e, ast.SliceExpr):
            t = self.tensor(e.value, st, init)
            lo = None if e.lo is None else self.value(e.lo, st)
            hi = None if e.hi is None else self.value(e.hi, st)
            a = Lit(0) if lo is None else lo
            z = t[1] if hi is None else hi
            return SliceOf(t[0], *(None if b is None else self.forward_value(b, st) for b in (lo, hi))), _minus(z, a)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "join":
            return self.join(e, st, init)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "gate" and not e.kwargs:
            ts = [self.tensor(a, st, init) for a in e.args]
            if len(ts) != 3:
                raise Unsupported("gate arity")
            return Connect("gate", [t[0] for t in ts]), ts[0][1]
        raise Unsupported(f"tensor expression {type(e).__name__}")

    def _in_loop(self, st: _State) -> bool:
        return any(k == "loop" for k in st.kinds.values())

    def _chain_across_calls(self, connect: Connect) -> None:
        """``[head ++] v[b:] ++ new`` where ``v[b:]`` is a local sliced to its end: the
        link of a chain that runs through this block's calls one after another (DPN's
        dense path). The block that starts the chain starts its buffer on the slice; in
        the others the slice is the stored part of the link they were given, which
        ``concat_append`` recognises and appends to."""
        tail = connect.operands[-2]
        let = self.last_call.get(tail.name) if isinstance(tail, Local) else None
        if let is None or not isinstance(let.value, SliceOf) or let.value.hi is not None or let.value.lo is None:
            return
        if not isinstance(let.value.value, Local) or self.span_chain is not None:
            return
        param = self.fresh("concat_channels")
        chain = Chain(self.attribute("concat_channels"), param=param)
        self.span_chain = chain
        connect.chain = chain
        let.absorbed = chain
        home = self.home[id(let)]
        start = Let(let.name, Start(Local(let.name), chain))
        home.insert(home.index(let) + 1, When(BinOp(Attr(SELF, chain.capacity), "is not", Lit(None)), [start], []))

    def join(self, e: ast.Call, st: _State, init: list) -> tuple:
        """``join(a, b, ...)``: a Join module (named as the elaborator names it: join,
        join2, ...). An operand that a block's call returns straight from its own join
        is that block's columns, spread into this join."""
        if st.depth and any(k == "loop" for k in st.kinds.values()):
            raise Unsupported("a join in a loop")
        rates = {k.name: self.value(k.value, st) for k in e.kwargs}
        signature = CONNECTION_SPECS["join"].signature
        for a in signature.args:
            if a.name not in rates:
                rates[a.name] = Lit(a.default)
        if set(rates) != {"drop_local", "drop_global"}:
            raise Unsupported("join arguments")
        label = "join"
        while label in self.labels or label in self.join_labels:
            label = f"join{len(self.join_labels) + 1}" if label == "join" else label + "_"
        self.join_labels.add(label)
        operands, chans = [], []
        for a in e.args:
            f, c = self.tensor(a, st, init)
            merged = self._columns_of(f)
            operands.append(f if merged is None else Spread(merged[0], merged[1]))
            chans.append(c)
        init.append(Module(Lit(label), JoinCtor(rates["drop_local"], rates["drop_global"])))
        return Apply(Lit(label), operands), chans[0]

    def _columns_of(self, f: Any) -> Any:
        """The ``Columns`` call standing for ``f`` when ``f`` is a call (or the local a
        call was just bound to) of a block whose return is a join; else None."""
        call = f
        if isinstance(f, Local) and f.name in self.last_call:
            call = self.last_call[f.name]
        if isinstance(call, Let):
            apply = call.value
        else:
            apply = call
        if not isinstance(apply, Apply) or not isinstance(apply.label, Lit):
            return None
        cls = self.called_class.get(apply.label.value)
        if cls is None or not cls.returns_join:
            return None
        columns = Columns(apply.label, apply.args)
        if isinstance(call, Let):
            call.value = columns
            return Local(call.name), columns
        return columns, columns

    def apply_stage(self, stage: Any, src: tuple, label: ast.Label | None, st: _State, init: list,
                    into: SeqCtor | None = None) -> tuple:
        fwd_in, chan_in = src
        lab = self.label(label, st, stage) if label is not None else self.auto_label(stage, into)
        if isinstance(stage, ast.Body):
            if label is None:
                raise Unsupported("an unlabelled { } group")
            return self.sequential(stage, src, lab, st, init)
        try:
            func, args, kwargs = callee(stage)
        except ValueError as err:
            raise Unsupported(str(err)) from None
        if func in OPS:
            if isinstance(chan_in, list):
                raise Unsupported("several tensors into an op")
            spec = OPS[func]
            names = [a.name for a in spec.args]
            if len(args) > len(names):
                raise Unsupported("too many op arguments")
            bound = {names[k]: self.value(a, st) for k, a in enumerate(args)}
            for kw in kwargs:
                bound[kw.name] = self.value(kw.value, st)
            ctor = OpCtor(func, bound, chan_in)
            init.append(Module(lab, ctor, into))
            out = bound["out"] if "out" in names else chan_in
            if "out" in names and "out" not in bound:
                raise Unsupported("out not given")
            return Apply(self.forward_label(lab, st), [fwd_in]), out
        if func in self.blocks:
            cls = self.classes.get(func)
            if cls is None:
                raise Unsupported(f"block {func} is not mirrored")
            chans = chan_in if isinstance(chan_in, list) else [chan_in]
            ins = fwd_in if isinstance(fwd_in, list) else [fwd_in]
            if len(chans) != len(cls.channel_params):
                raise Unsupported("inputs of a block call")
            ctor = BlockCtor(func, chans, [self.value(a, st) for a in args],
                             [(cls.params[cls.params.index(_py_param(cls, kw.name))], self.value(kw.value, st))
                              for kw in kwargs])
            init.append(Module(lab, ctor, into))
            if isinstance(lab, Lit):
                self.called_class[lab.value] = cls
            return Apply(self.forward_label(lab, st), ins), self.block_out(cls, ctor, lab, into)
        raise Unsupported(f"stage {func}")

    def block_out(self, cls: MirrorClass, ctor: BlockCtor, lab: Expr, into: SeqCtor | None) -> Expr:
        """A called block's output channels: its expression over the call's arguments,
        or the attribute its constructor sets."""
        if cls.out_channels is not None:
            bound: dict[str, Expr] = dict(zip(cls.channel_params, ctor.channels))
            own = cls.params[len(cls.channel_params):]
            bound.update(zip(own, ctor.args))
            bound.update(ctor.kwargs)
            for p in own:
                if p not in bound:
                    bound[p] = cls.defaults[p]
            return substitute(cls.out_channels, bound)
        if into is not None or not isinstance(lab, Lit):
            raise Unsupported("output channels of a block in a list")
        cls.keeps_out = True
        return Attr(Attr(SELF, lab.value), OUT)

    def sequential(self, body: ast.Body, src: tuple, lab: Expr, st: _State, init: list) -> tuple:
        """A labelled group of stages applied one after the other, labelled 0, 1, ...:
        ``nn.Sequential``, built in a list."""
        seq = SeqCtor(self.fresh("layers"))
        init.append(SeqStart(seq))
        self.auto.update(auto_names(body.stmts)[0])
        sub = copy.deepcopy(st)
        chan = self._seq_body(body.stmts, sub, init, seq, src[1])
        init.append(Module(lab, seq))
        for name, kind in sub.kinds.items():
            if kind == "value" and name not in st.kinds:
                st.kinds[name] = "value"
                st.assigned_once[name] = False
        return Apply(lab, [src[0]]), chan

    def _seq_body(self, stmts: list, st: _State, init: list, layers: SeqCtor, chan: Expr) -> Expr:
        for s in stmts:
            if isinstance(s, ast.Assert):
                continue
            if isinstance(s, ast.ExprStmt):
                _, chan = self.apply_stage(s.value, (None, chan), s.label, st, init, into=layers)
            elif isinstance(s, ast.Assign) and not self.is_tensor(s.value, st):
                self.assign(s, st, init, [])
            elif isinstance(s, ast.If) and s.orelse is None:
                sub = copy.deepcopy(st)
                sub.depth += 1
                bi: list = []
                after = self._seq_body(s.body.stmts, sub, bi, layers, chan)
                cond = self.value(s.cond, st)
                init.append(When(cond, bi, []))
                if after != chan:
                    chan = IfExp(cond, after, chan)
            else:
                raise Unsupported(f"{type(s).__name__} in a sequential group")
        return chan

    # -- labels --

    def label(self, label: ast.Label, st: _State, stage: Any) -> Expr:
        parts: list = []
        for p in label.parts:
            if isinstance(p, str):
                parts.append(p)
            else:
                parts.append(self.value(p, st))
        if "." in "".join(p for p in parts if isinstance(p, str)):
            raise Unsupported("a dotted label")
        if all(isinstance(p, str) for p in parts):
            return Lit("".join(parts))
        if len(parts) == 1:
            return Call(Name("str"), (parts[0],))
        return FString(tuple(parts))

    def auto_label(self, stage: Any, into: SeqCtor | None) -> Expr:
        name = self.auto.get(id(stage))
        if name is None:
            raise Unsupported("an unlabelled stage in a loop")
        return Lit(name)

    # -- values --

    def value(self, e: Any, st: _State) -> Expr:
        """A value expression over the constructor's names (parameters, locals, loop variables)."""
        if isinstance(e, ast.Literal):
            if isinstance(e.value, str) or isinstance(e.value, (bool, int, float)):
                return Lit(e.value)
        if isinstance(e, ast.Name):
            kind = st.kinds.get(e.id)
            if kind in ("value", "loop"):
                return Name(self.pyname(e.id))
            if e.id == "channels" and kind is None and "x" in st.chan:
                return st.chan["x"]
            raise Unsupported(f"name {e.id}")
        if isinstance(e, ast.ListExpr):
            return Tuple(tuple(self.value(i, st) for i in e.items))
        if isinstance(e, ast.BinOp) and e.op in _PY_OPS:
            left, right = self.value(e.left, st), self.value(e.right, st)
            return BinOp(left, _PY_OPS[e.op], right)
        if isinstance(e, ast.UnaryOp):
            operand = self.value(e.operand, st)
            return Not(operand) if e.op == "not" else Neg(operand) if e.op == "-" else operand
        if isinstance(e, ast.Ternary):
            return IfExp(self.value(e.cond, st), self.value(e.then, st), self.value(e.orelse, st))
        if isinstance(e, ast.Index):
            return Subscript(self.value(e.value, st), (self.value(e.index, st),))
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in FUNCTIONS and not e.kwargs:
            if st.kinds.get(e.func.id) is not None:
                raise Unsupported(f"{e.func.id} is a variable")
            return Call(Name(e.func.id), tuple(self.value(a, st) for a in e.args))
        raise Unsupported(f"value expression {type(e).__name__}")

    def attribute(self, base: str) -> str:
        """A plain attribute's name: no module's, no nn.Module's, no other attribute's."""
        attr = base
        while attr in MODULE_ATTRS or attr in self.labels or attr == OUT or attr in self.attr_of.values() \
                or attr in self.chains:
            attr += "_"
        self.chains.add(attr) if base == "concat_channels" else None
        return attr

    def forward_label(self, label: Expr, st: _State) -> Expr:
        if isinstance(label, FString):
            parts = tuple(p if isinstance(p, str) else self.forward_value(p, st) for p in label.parts)
            return FString(parts)
        if isinstance(label, Call):
            return self.forward_value(label, st)
        return label

    def forward_value(self, e: Expr, st: _State, loop_vars: set[str] = frozenset()) -> Expr:
        """A value of __init__ as forward reads it: through ``self``."""
        names = {}
        for n in set(read_names(e)):
            if n in loop_vars or n in self._loop_names(st):
                continue
            if n in ("len", "min", "max", "abs", "int", "float", "round", "sum", "range", "str"):
                continue
            self.fwd_reads.add(n)
            if n not in self.attr_of:
                self.attr_of[n] = self.attribute(n)
            names[n] = Attr(SELF, self.attr_of[n])
        return substitute(e, names) if not isinstance(e, Apply) else e

    def _loop_names(self, st: _State) -> set[str]:
        return {self.py[n] for n, k in st.kinds.items() if k == "loop" and n in self.py}



def constant(e: Any) -> Expr:
    """A parameter's default as a Python default: a literal, a negative number, a list of them."""
    if isinstance(e, ast.Literal):
        return Lit(e.value)
    if isinstance(e, ast.UnaryOp) and e.op == "-" and isinstance(e.operand, ast.Literal) \
            and type(e.operand.value) in (int, float):
        return Lit(-e.operand.value)
    if isinstance(e, ast.ListExpr):
        items = [constant(i) for i in e.items]
        return Lit(tuple(i.value for i in items))
    raise Unsupported("a default that is not a constant")


def _py_param(cls: MirrorClass, spec_name: str) -> str:
    for p, q in zip(cls.defn.params, cls.params[len(cls.channel_params):]):
        if p.name == spec_name:
            return q
    raise Unsupported(f"no parameter {spec_name}")


def _sum(chans: list[Expr]) -> Expr:
    out = chans[0]
    for c in chans[1:]:
        out = BinOp(out, "+", c)
    return out


def _minus(z: Expr, a: Expr) -> Expr:
    if isinstance(a, Lit) and a.value == 0:
        return z
    return BinOp(z, "-", a)


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


def _insert_keep(stmts: list, name: str, attr: str) -> bool:
    for k, s in enumerate(stmts):
        if isinstance(s, Let) and s.name == name:
            stmts.insert(k + 1, Keep(attr, Name(name)))
            return True
    raise Unsupported(f"forward reads {name}, set inside a branch")



def _gives_join(stmts: list, joins: set[str]) -> bool:
    """Does some ``return`` give the output of one of the joins?"""
    for s in stmts:
        if isinstance(s, Give) and isinstance(s.value, Apply) and isinstance(s.value.label, Lit) \
                and s.value.label.value in joins:
            return True
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub and _gives_join(sub, joins):
                return True
    return False


def _columns_program(stmts: list, joins: set[str]) -> list:
    """forward, returning the inputs of its final join instead of their join (a
    return of anything else: that tensor, alone)."""
    out: list = []
    for s in stmts:
        if isinstance(s, Give):
            v = s.value
            joined = isinstance(v, Apply) and isinstance(v.label, Lit) and v.label.value in joins
            out.append(Give(ListOf(list(v.args) if joined else [v])))
        elif isinstance(s, When):
            out.append(When(s.cond, _columns_program(s.body, joins), _columns_program(s.orelse, joins)))
        elif isinstance(s, Each):
            out.append(Each(s.var, s.iterable, _columns_program(s.body, joins)))
        else:
            out.append(s)
    return out


def _op_labels(init: list) -> dict[str, str]:
    """label -> op of the op modules __init__ builds under a fixed label."""
    found: dict[str, str] = {}
    for s in init:
        if isinstance(s, Module) and isinstance(s.ctor, OpCtor) and isinstance(s.label, Lit) and s.into is None:
            found[s.label.value] = s.ctor.op
        for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
            if sub:
                found.update(_op_labels(sub))
    return found


def _fuse(stmts: list, ops: dict[str, str]) -> None:
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
                _fuse(sub, ops)
