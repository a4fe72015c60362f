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
from typing import Any

from udnet.backends.pytorch.expr import (
    SELF,
    Attr,
    BinOp,
    Expr,
    Lit,
    Name,
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
    Give,
    JoinCtor,
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
    substitute,
)
from udnet.frontend import ast
from udnet.ops import CONNECTIONS as CONNECTION_SPECS
from udnet.ops import OPS
from udnet.reserved import CONNECTIONS

from udnet.backends.pytorch.mirror.control import Control
from udnet.backends.pytorch.mirror.rewrite import columns_program, fuse, gives_join, insert_keep, op_labels
from udnet.backends.pytorch.mirror.values import State, Values, choose, constant


class Translator(Control, Values):
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

    def signature(self) -> tuple[list[str], list[str], dict[str, Expr]]:
        """The constructor's parameters: the inputs' channels, then the block's own (their
        Python names), and the defaults of those that have one."""
        d = self.defn
        inputs = [p.name for p in d.inputs] or ["x"]
        channel_params = [self.fresh("in_channels" if k == 0 else f"{name}_channels") for k, name in enumerate(inputs)]
        params = [self.pyname(p.name) for p in d.params]
        defaults = {self.pyname(p.name): constant(p.default) for p in d.params if p.default is not None}
        return channel_params, params, defaults

    def translate(self) -> MirrorClass:
        d = self.defn
        st = State()
        inputs = [p.name for p in d.inputs] or ["x"]
        channel_params, params, defaults = self.signature()
        for name, cp in zip(inputs, channel_params):
            st.kinds[name] = "tensor"
            st.chan[name] = Name(cp)
        if len(inputs) > 1:
            st.kinds["x"] = "tensor"  # x is the first input
            st.chan["x"] = st.chan[inputs[0]]
        for p in d.params:
            st.kinds[p.name] = "value"
            st.assigned_once[p.name] = True
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
            insert_keep(init, name, self.attr_of[name])
        fuse(fwd, op_labels(init))
        if self.span_chain is not None:  # the planned width, from the caller: None where not started here
            params.append(self.span_chain.param)
            defaults[self.span_chain.param] = Lit(None)
            keeps.append(Keep(self.span_chain.capacity, Name(self.span_chain.param)))
        mc = MirrorClass(d.name, d, channel_params + params, channel_params, defaults, keeps + init, fwd,
                         [self.pyname(n) for n in inputs], out, returns=self.outs)
        mc.span_chain = self.span_chain
        if gives_join(fwd, self.join_labels):
            mc.returns_join = True
            mc.columns = columns_program(fwd, self.join_labels)
        return mc

    # -- statements --

    def body(self, stmts: list, st: State, init: list, fwd: list) -> bool:
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
                raise Unsupported(_WHAT.get(type(s).__name__, type(s).__name__))
        return False

    def assign(self, s: ast.Assign, st: State, init: list, fwd: list) -> None:
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

    def pipe_into(self, name: str, pipe: ast.Pipe, st: State, init: list, fwd: list) -> None:
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

    def bind(self, name: str, t: tuple, st: State, fwd: list) -> None:
        st.kinds[name] = "tensor"
        st.chan[name] = t[1]
        let = Let(self.pyname(name), t[0])
        fwd.append(let)
        self.last_call[let.name] = let
        self.home[id(let)] = fwd


    def is_tensor(self, e: Any, st: State) -> bool:
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

    def tensor(self, e: Any, st: State, init: list) -> tuple:
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

    def _in_loop(self, st: State) -> bool:
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

    def join(self, e: ast.Call, st: State, init: list) -> tuple:
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

    def apply_stage(self, stage: Any, src: tuple, label: ast.Label | None, st: State, init: list,
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
            return Apply(self.forward_label(lab, st) if into is None else lab, [fwd_in]), out
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
            forward_lab = self.forward_label(lab, st) if into is None else lab  # a list's modules run in it
            return Apply(forward_lab, ins), self.block_out(cls, ctor, lab, into)
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

    def sequential(self, body: ast.Body, src: tuple, lab: Expr, st: State, init: list) -> tuple:
        """A labelled group of stages applied one after the other, labelled 0, 1, ...:
        ``nn.Sequential``, built in a list."""
        name = lab.value if isinstance(lab, Lit) and lab.value.isidentifier() else "layers"
        seq = SeqCtor(self.fresh(name))
        init.append(SeqStart(seq))
        self.auto.update(auto_names(body.stmts)[0])
        sub = copy.deepcopy(st)
        chan = self._seq_body(body.stmts, sub, init, seq, src[1])
        init.append(Module(lab, seq))
        ops = [s.value for s in body.stmts if isinstance(s, ast.ExprStmt)]
        seq.fusable = len(ops) == len(body.stmts) == 3 and [callee(o)[0] for o in ops] == ["bn", "relu", "conv"]
        for name, kind in sub.kinds.items():
            if kind == "value" and name not in st.kinds:
                st.kinds[name] = "value"
                st.assigned_once[name] = False
        return Apply(lab, [src[0]]), chan

    def _seq_body(self, stmts: list, st: State, init: list, layers: SeqCtor, chan: Expr) -> Expr:
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
                    chan = choose(cond, after, chan)
            else:
                raise Unsupported(f"{_WHAT.get(type(s).__name__, type(s).__name__)} in a {{ ... }} group")
        return chan

    # -- labels --


#: The statements the translation leaves to the instance path, as -v names them.
_WHAT = {"ReturnNamed": "several named outputs", "Return": "a return", "For": "a loop", "If": "an if with else",
         "Assign": "a tensor assignment", "ScopeStmt": "a labelled group", "ExprStmt": "an unlabelled stage"}


def _py_param(cls: MirrorClass, spec_name: str) -> str:
    for p, q in zip(cls.defn.params, cls.params[len(cls.channel_params):]):
        if p.name == spec_name:
            return q
    raise Unsupported(f"no parameter {spec_name}")



def _sum(chans: list[Expr]) -> Expr:
    if len(chans) > 1 and all(c == chans[0] for c in chans):  # c + c: 2 * c
        return BinOp(Lit(len(chans)), "*", chans[0])
    out = chans[0]
    for c in chans[1:]:
        out = BinOp(out, "+", c)
    return out


def _minus(z: Expr, a: Expr) -> Expr:
    if isinstance(a, Lit) and a.value == 0:
        return z
    return BinOp(z, "-", a)


