"""The check that makes a mirrored class safe to print: run its ``__init__`` and
``forward`` (mirror.py's program) on each instance's arguments, with Python's own
semantics, and compare what they build and run with the instance the elaborator made:
every submodule with its constructor's values, every call, connection and slice with
its operands, the output and its channels. The first run of an op also picks each
constructor field's expression (the input's channels, the spec's argument of that
name, or a literal), which every later run must then reproduce.
"""

from __future__ import annotations

import operator
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
)
from udnet.backends.pytorch.mirror.program import (
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
    Unsupported,
    When,
)
from udnet.backends.pytorch.structure import Instance, Stmt
from udnet.ir.analysis import join_columns
from udnet.ir.graph import IR

_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
           "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
           "in": lambda a, b: a in b, "is not": operator.is_not}
_BUILTINS = {"len": len, "min": min, "max": max, "abs": abs, "int": int, "float": float, "round": round,
             "sum": sum, "range": range, "str": str}


#: The constructor fields that are an op's input channels.
CHANNEL_FIELDS = ("in", "channels")


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (3 is not 3.0, true is not 1); lists and tuples alike."""
    return repr(_norm(a)) == repr(_norm(b))


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple, range)):
        return tuple(_norm(x) for x in v)
    return v


class _Self:
    """The module under construction, as the check sees it."""

    def __init__(self):
        self.attrs: dict[str, Any] = {}
        self.modules: dict[str, Any] = {}  # label -> the instance's child (None: set to None)
        self.out: dict[str, int] = {}  # label -> a block child's output channels
        self.joins: set[str] = set()  # labels of Join modules


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


def evaluate(e: Expr, env: dict, me: _Self) -> Any:
    """A value expression of the emitted code, as Python computes it."""
    if isinstance(e, Name):
        if e.id not in env:
            raise Unsupported(f"{e.id} is not set here")
        return env[e.id]
    if isinstance(e, Lit):
        return e.value
    if isinstance(e, Tuple):
        return tuple(evaluate(x, env, me) for x in e.elts)
    if isinstance(e, BinOp):
        left = evaluate(e.left, env, me)
        if e.op == "and":
            return left and evaluate(e.right, env, me)
        if e.op == "or":
            return left or evaluate(e.right, env, me)
        try:
            return _BINARY[e.op](left, evaluate(e.right, env, me))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
            raise Unsupported(f"{e.op}: {err}") from None
    if isinstance(e, Neg):
        return -evaluate(e.operand, env, me)
    if isinstance(e, Not):
        return not evaluate(e.operand, env, me)
    if isinstance(e, IfExp):
        return evaluate(e.then if evaluate(e.cond, env, me) else e.orelse, env, me)
    if isinstance(e, Subscript):
        value = evaluate(e.value, env, me)
        try:
            return value[evaluate(e.index[0], env, me)]
        except (TypeError, IndexError) as err:
            raise Unsupported(str(err)) from None
    if isinstance(e, Call) and isinstance(e.func, Name) and e.func.id in _BUILTINS:
        try:
            return _BUILTINS[e.func.id](*(evaluate(a, env, me) for a in e.args))
        except (TypeError, ValueError) as err:
            raise Unsupported(str(err)) from None
    if isinstance(e, Attr) and e.value == SELF:
        if e.attr not in me.attrs:
            raise Unsupported(f"self.{e.attr} is not set")
        return me.attrs[e.attr]
    if isinstance(e, Attr) and e.attr == "out_channels" and isinstance(e.value, Attr) and e.value.value == SELF:
        return me.out[e.value.attr]
    if isinstance(e, FString):
        return "".join(p if isinstance(p, str) else str(evaluate(p, env, me)) for p in e.parts)
    raise Unsupported(f"cannot evaluate {type(e).__name__}")


class Checker:
    """Checks one mirrored class against its instances; ``classes``: every mirrored class by block."""

    def __init__(self, ir: IR, classes: dict[str, MirrorClass]):
        self.ir = ir
        self.classes = classes
        self.bases = {b.base for b in ir.graph.get("buffers", [])}
        columns = join_columns(ir)
        self.num_columns = max((max(c) for c in columns.values()), default=0)  # set_drop_path_columns's

    def channels(self, v: int) -> int:
        return self.ir.nodes[v]["shape"][0]

    def check(self, mc: MirrorClass, inst: Instance) -> None:
        env: dict[str, Any] = {}
        for cp, v in zip(mc.channel_params, inst.inputs):
            env[cp] = self.channels(v)
        if len(inst.inputs) < len(mc.channel_params):
            raise Unsupported("an input the block never reads")
        for p, name in zip(mc.defn.params, mc.params[len(mc.channel_params):]):
            env[name] = inst.args[p.name]
        if mc.span_chain is not None:
            env[mc.span_chain.param] = self.capacity(inst)
        if not inst.outputs:
            raise Unsupported("a block that returns its input unchanged")
        me = _Self()
        children = {c.label: c for c in inst.children}
        self.run_init(mc.init, env, me, children)
        built = {k for k, v in me.modules.items() if v is not None}
        merged = len(inst.outputs) > 1  # its final join merged into its caller's: it returns the columns
        # A merged instance still builds its join (unused, with no parameters): the class is one.
        unused = {k for k in built - set(children) if merged and k in me.joins}
        if built - unused != set(children):
            raise Unsupported(f"modules {sorted((built - unused) ^ set(children))} differ")
        if set(me.attrs) & set(me.modules):
            raise Unsupported("an attribute of the name of a module")
        if not same(me.attrs.get("out_channels"), self.channels(inst.outputs[0])):
            raise Unsupported("output channels differ")
        if merged and not mc.returns_join:
            raise Unsupported("several outputs")
        self.run_forward(mc, inst, me, mc.columns if merged else mc.forward)

    # -- __init__ --

    def run_init(self, stmts: list, env: dict, me: _Self, children: dict) -> None:
        for s in stmts:
            if isinstance(s, Let):
                env[s.name] = [] if isinstance(s.value, Lit) and s.value.value == () else evaluate(s.value, env, me)
            elif isinstance(s, Keep):
                me.attrs[s.name] = evaluate(s.value, env, me)
            elif isinstance(s, When):
                self.run_init(s.body if evaluate(s.cond, env, me) else s.orelse, env, me, children)
            elif isinstance(s, Each):
                for v in evaluate(s.iterable, env, me):
                    env[s.var] = v
                    self.run_init(s.body, env, me, children)
            elif isinstance(s, SeqStart):
                env[s.seq.layers] = []
            elif isinstance(s, Module):
                label = evaluate(s.label, env, me)
                if s.into is not None:
                    env[s.into.layers].append((label, s.ctor, self.values(s.ctor, env, me)))
                    continue
                if label in me.modules:
                    raise Unsupported(f"module {label} set twice")
                if s.ctor is None:
                    me.modules[label] = None
                    continue
                child = children.get(label)
                if isinstance(s.ctor, JoinCtor):
                    me.joins.add(label)
                    me.modules[label] = child or "unused"  # a merged instance's join: check() decides
                    if child is not None:
                        self.check_join(s.ctor, env, me, child)
                    continue
                if child is None:
                    raise Unsupported(f"no module {label} in the instance")
                me.modules[label] = child
                if isinstance(s.ctor, SeqCtor):
                    self.check_sequential(s.ctor, env[s.ctor.layers], child)
                else:
                    out = self.check_child(s.ctor, self.values(s.ctor, env, me), child)
                    if out is not None:
                        me.out[label] = out
            else:
                raise Unsupported(f"{type(s).__name__} in __init__")

    def values(self, ctor: Any, env: dict, me: _Self) -> Any:
        if isinstance(ctor, OpCtor):
            return ({k: evaluate(v, env, me) for k, v in ctor.args.items()}, evaluate(ctor.channels, env, me),
                    dict(env), me)
        if isinstance(ctor, BlockCtor):
            return ([evaluate(c, env, me) for c in ctor.channels], [evaluate(a, env, me) for a in ctor.args],
                    [(k, evaluate(v, env, me)) for k, v in ctor.kwargs])
        raise Unsupported(type(ctor).__name__)

    def check_join(self, ctor: JoinCtor, env: dict, me: _Self, child: Any) -> None:
        """The drop rates, and the columns: the network's deepest first, as Join numbers
        them where it is given none (a network whose blocks have other column counts
        keeps the instance path)."""
        if child.kind != "join":
            raise Unsupported(f"{child.label} is not a join")
        _, n, drop_local, drop_global, columns = child.desc
        if not same(evaluate(ctor.drop_local, env, me), drop_local) \
                or not same(evaluate(ctor.drop_global, env, me), drop_global):
            raise Unsupported("a join's drop rates differ")
        if tuple(columns) != tuple(range(self.num_columns, self.num_columns - n, -1)):
            raise Unsupported("a join whose columns are not the network's deepest")

    def check_child(self, ctor: Any, values: Any, child: Any) -> int | None:
        if isinstance(ctor, OpCtor):
            if child.kind != "op":
                raise Unsupported(f"{child.label} is not an op")
            self.check_op(ctor, values, child.desc)
            return None
        inst = child.instance
        if child.kind != "scope" or inst is None or inst.kind != "block" or inst.name != ctor.block:
            raise Unsupported(f"{child.label} is not block {ctor.block}")
        cls = self.classes.get(ctor.block)
        if cls is None:
            raise Unsupported(f"block {ctor.block} is not mirrored")
        chans, args, kwargs = values
        bound = dict(zip(cls.params[len(cls.channel_params):], args))
        bound.update(kwargs)
        for p, name in zip(cls.defn.params, cls.params[len(cls.channel_params):]):
            value = bound[name] if name in bound else evaluate(cls.defaults[name], {}, _Self()) \
                if name in cls.defaults else None
            if not same(value, inst.args[p.name]):
                raise Unsupported(f"argument {p.name} of {child.label} differs")
        if len(chans) != len(inst.inputs) or not all(same(c, self.channels(v)) for c, v in zip(chans, inst.inputs)):
            raise Unsupported(f"input channels of {child.label} differ")
        return self.channels(inst.outputs[0]) if len(inst.outputs) == 1 else None

    def check_op(self, ctor: OpCtor, values: Any, desc: tuple) -> None:
        args, chan, env, me = values
        _, module, fields = desc
        fields = [f for f in fields if f[0] != "inplace"]
        ctor.inplace = ctor.inplace and len(fields) < len(desc[2])  # in place wherever every instance is
        if ctor.fields is None:
            ctor.module = module
            chosen = []
            for hint, kw, default, same_as, value in fields:
                if hint in CHANNEL_FIELDS and same(value, chan):
                    expr = ctor.channels
                elif hint in ctor.args and same(value, args[hint]):
                    expr = ctor.args[hint]
                else:
                    expr = Lit(value)
                chosen.append((hint, kw, default, same_as, expr))
            ctor.fields = chosen
        if module != ctor.module or len(fields) != len(ctor.fields):
            raise Unsupported("an op's module differs")
        for (hint, _, _, _, value), chosen in zip(fields, ctor.fields):
            if hint != chosen[0] or not same(evaluate(chosen[4], env, me), value):
                raise Unsupported(f"field {hint} differs")

    def check_sequential(self, seq: SeqCtor, layers: list, child: Any) -> None:
        inst = child.instance
        if child.kind != "scope" or inst is None or inst.kind != "group":
            raise Unsupported(f"{child.label} is not a group")
        if [c.label for c in inst.children] != [label for label, _, _ in layers]:
            raise Unsupported("a sequential group's labels")
        for k, (label, ctor, values) in enumerate(layers):
            if label != str(k):
                seq.indexed = False
            self.check_child(ctor, values, inst.children[k])
        value = inst.inputs[0] if len(inst.inputs) == 1 else None
        body = inst.body
        if seq.fusable and len(body) == 1 and body[0].kind == "bn_relu_conv":
            s = body[0]  # the pass fused { bn; relu; conv } on a buffer's tensor
            if (s.child, *s.extra) != (0, 1, 2) or s.ins != [value] or inst.outputs != s.outs:
                raise Unsupported("a fused group differs")
            seq.fused = True
            return
        for k, s in enumerate(body):
            if s.kind != "call" or s.child != k or s.ins != [value] or len(s.outs) != 1:
                raise Unsupported("a sequential group that is not a chain")
            value = s.outs[0]
        if len(body) != len(layers) or inst.outputs != [value]:
            raise Unsupported("a sequential group that is not a chain")
        if seq.fusable and self.in_buffer(inst.inputs[0]):  # FusedBnReluConv would fuse what the pass did not
            raise Unsupported("a group unfused on a buffer's tensor")

    # -- forward --

    def run_forward(self, mc: MirrorClass, inst: Instance, me: _Self, program: list) -> None:
        env: dict[str, Any] = {}
        for k, name in enumerate(mc.inputs):
            env[name] = ("in", k)
        ran: list[tuple] = []
        try:
            self._run(program, env, me, ran)
            raise Unsupported("forward does not return")
        except _Return as r:
            result = r.value
        body = list(inst.body)
        value_of: dict[int, Any] = {v: ("in", k) for k, v in enumerate(inst.inputs)}
        spread: dict[int, int] = {}  # columns call -> how many columns it returned
        views: dict[tuple, Any] = {}  # a chain's tail the pass folded: (the link, where it starts)
        self._views = views
        i = 0  # the instance's statement that the program's next step must match
        for k, mine in enumerate(ran):
            s = body[i] if i < len(body) else None
            if mine[0] == "start":  # where the pass gave this chain a buffer, its start is here
                started = s is not None and s.kind == "start"
                if mine[1].param is not None and not started:
                    raise Unsupported("a buffer's start differs")
                _decide(mine[1], started, "a chain's buffer")
                if started:
                    if [value_of.get(v) for v in s.ins] != [mine[2]] or not same(s.nums[0], mine[3]):
                        raise Unsupported("a buffer's start differs")
                    i += 1
                continue
            if mine[0] == "tail":  # the slice a chain's append absorbs, or a slice as written
                if s is not None and s.kind == "slice" and self.same_slice(s, ("slice",) + mine[2:], value_of):
                    value_of[s.outs[0]] = ("v", k)
                    i += 1
                else:  # the stored part of the link it was given, which the append reads
                    _decide(mine[1], True, "a chain's buffer")
                    views[("v", k)] = (mine[2], mine[3])
                continue
            if s is None:
                raise Unsupported("forward runs other statements")
            if mine[0] == "fused":
                i = self.compare_fused(body, i, mine, inst, value_of)
                value_of[body[i - 1].outs[0]] = ("v", k)
                continue
            if mine[0] == "columns":
                self.compare_columns(s, mine, inst, value_of)
                spread[k] = len(s.outs)
                value_of.update((v, ("c", k, j)) for j, v in enumerate(s.outs))
                i += 1
                continue
            mine = mine[:2] + (_expand(mine[2], spread),) + mine[3:] if mine[0] == "call" else mine
            self.compare(s, mine, inst, value_of)
            value_of[s.outs[0]] = ("v", k)
            i += 1
        if i != len(body):
            raise Unsupported("forward runs other statements")
        result = _expand(result if isinstance(result, list) else [result], spread)
        if [value_of.get(v) for v in inst.outputs] != result:
            raise Unsupported("forward returns another value")

    def compare_fused(self, body: list, i: int, mine: tuple, inst: Instance, value_of: dict) -> int:
        """BN -> ReLU -> conv: one fused statement, or three calls on a tensor that is no
        buffer's (where bn_relu_conv1x1 runs the three modules as they are)."""
        _, fused, value = mine
        labels = [lbl.value for lbl in fused.labels]
        s = body[i]
        if s.kind == "bn_relu_conv":
            got = [inst.children[c].label for c in (s.child, *s.extra)]
            if got != labels or [value_of.get(v) for v in s.ins] != [value]:
                raise Unsupported("a fused BN-ReLU-conv differs")
            fused.used = True
            return i + 1
        run = body[i:i + 3]
        if len(run) != 3 or any(t.kind != "call" or len(t.outs) != 1 for t in run):
            raise Unsupported("BN-ReLU-conv differs")
        if [inst.children[t.child].label for t in run] != labels:
            raise Unsupported("BN-ReLU-conv differs")
        if [value_of.get(v) for v in run[0].ins] != [value] or run[1].ins != run[0].outs or run[2].ins != run[1].outs:
            raise Unsupported("BN-ReLU-conv differs")
        if [self.ir.nodes[t.outs[0]]["op"] for t in run] != ["bn", "relu", "conv"]:
            raise Unsupported("BN-ReLU-conv differs")
        bn, conv = (self.ir.nodes[t.outs[0]]["attrs"] for t in (run[0], run[2]))
        one = (1, 1)
        runtime_fuses = bn["affine"] and conv["kernel"] == conv["stride"] == conv["dilation"] == one and (
            conv["pad"] == (0, 0) and conv["groups"] == 1)
        if runtime_fuses and self.in_buffer(run[0].ins[0]):
            raise Unsupported("BN-ReLU-conv unfused on a buffer's tensor")
        return i + 3

    def capacity(self, inst: Instance) -> int | None:
        """The channels of the buffer the pass starts in this instance, if it starts one."""
        return next((b.channels for b in self.ir.graph.get("buffers", []) if b.scope == inst.path), None)

    def in_buffer(self, v: int) -> bool:
        """Is ``v`` a tensor that lives in a shared buffer (its base or a link)?"""
        return self.ir.nodes[v].get("buffer") is not None or v in self.bases

    def same_slice(self, s: Stmt, mine: tuple, value_of: dict) -> bool:
        """The instance's slice and the program's (``("slice", value, lo, hi)``), with
        negative and left-out bounds made plain."""
        full = self.channels(s.ins[0])
        lo, hi = (0 if s.nums[0] is None else s.nums[0]), (full if s.nums[1] is None else s.nums[1])
        mlo = 0 if mine[2] is None else mine[2] + full if mine[2] < 0 else mine[2]
        mhi = full if mine[3] is None else mine[3] + full if mine[3] < 0 else mine[3]
        return [value_of.get(v) for v in s.ins] == [mine[1]] and (lo, hi) == (mlo, mhi)

    def compare_columns(self, s: Stmt, mine: tuple, inst: Instance, value_of: dict) -> None:
        """A ``columns`` call: several outputs where its join merged into this one's; one
        where the callee returned no join at all (a base case), never a join's output."""
        ins = [value_of.get(v) for v in s.ins]
        child = inst.children[s.child] if s.child is not None else None
        if s.kind != "call" or child is None or child.label != mine[1] or ins != mine[2] or s.extra:
            raise Unsupported("a columns call differs")
        if len(s.outs) > 1:
            mine[3].merged = True
            self.classes[child.instance.name].columns_used = True
            return
        callee = child.instance
        last = next((t for t in callee.body if callee.outputs[0] in t.outs), None)
        if last is not None and last.child is not None and callee.children[last.child].kind == "join":
            raise Unsupported("a join's output read as its columns")

    def compare(self, s: Stmt, mine: tuple, inst: Instance, value_of: dict) -> None:
        if len(s.outs) != 1 or s.extra:
            raise Unsupported("a statement with several outputs")
        ins = [value_of.get(v) for v in s.ins]
        if s.kind == "call":
            if mine[0] != "call" or inst.children[s.child].label != mine[1] or ins != mine[2]:
                raise Unsupported(f"call of {inst.children[s.child].label}")
            return
        kind, form = s.kind if isinstance(s.kind, tuple) else (s.kind, ())
        if kind == "slice":
            if mine[0] != "slice" or not self.same_slice(s, mine, value_of):
                raise Unsupported("a slice differs")
            return
        if kind == "append" and mine[0] == "conn" and mine[1].chain is not None:
            _decide(mine[1].chain, True, "a chain's buffer")
            head, tail, new = mine[2][:-2], mine[2][-2], mine[2][-1]  # [head ++] tail ++ new
            link, drop = self._views.get(tail, (tail, None))  # a folded tail: link[drop:]
            if ins[0] != link or ins[1] != new or ins[2:] != head or s.nums[1] != drop:
                raise Unsupported("an append differs")
            return
        if mine[0] == "conn" and mine[1].chain is not None:
            _decide(mine[1].chain, False, "a chain's buffer")
        if kind not in ("add", "concat", "mul", "gate") or mine[0] != "conn" or mine[1].op != kind or ins != mine[2]:
            raise Unsupported(f"{kind} differs")
        if mine[1].form is None:
            mine[1].form = form
        elif mine[1].form != form:
            raise Unsupported(f"the form of a {kind} differs")

    def _run(self, stmts: list, env: dict, me: _Self, ran: list) -> None:
        for s in stmts:
            if isinstance(s, Let):
                env[s.name] = self._tensor(s.value, env, me, ran)
                if s.absorbed is not None:  # a chain's tail: the pass may have left no slice
                    ran[-1] = ("tail", s.absorbed) + ran[-1][1:]
            elif isinstance(s, When):
                if isinstance(s.cond, HasModule):
                    taken = me.modules.get(evaluate(s.cond.label, env, me)) is not None
                else:
                    taken = evaluate(s.cond, env, me)
                self._run(s.body if taken else s.orelse, env, me, ran)
            elif isinstance(s, Each):
                for v in evaluate(s.iterable, env, me):
                    env[s.var] = v
                    self._run(s.body, env, me, ran)
            elif isinstance(s, Give):
                raise _Return(self._tensor(s.value, env, me, ran))
            else:
                raise Unsupported(f"{type(s).__name__} in forward")

    def _tensor(self, t: Any, env: dict, me: _Self, ran: list) -> Any:
        if isinstance(t, Local):
            if t.name not in env:
                raise Unsupported(f"{t.name} is not set in forward")
            return env[t.name]
        if isinstance(t, Spread):
            return ("spread", self._tensor(t.value, env, me, ran))
        if isinstance(t, Start):
            value = self._tensor(t.value, env, me, ran)
            ran.append(("start", t.chain, value, me.attrs.get(t.chain.capacity)))
            return value
        if isinstance(t, Fused):
            ran.append(("fused", t, self._tensor(t.value, env, me, ran)))
            return ("v", len(ran) - 1)
        if isinstance(t, ListOf):
            return [self._tensor(a, env, me, ran) for a in t.items]
        if isinstance(t, Apply):
            args = [self._tensor(a, env, me, ran) for a in t.args]
            ran.append(("call", evaluate(t.label, env, me), args))
        elif isinstance(t, Columns):
            args = [self._tensor(a, env, me, ran) for a in t.args]
            ran.append(("columns", evaluate(t.label, env, me), args, t))
        elif isinstance(t, Connect):
            ran.append(("conn", t, [self._tensor(a, env, me, ran) for a in t.operands]))
        elif isinstance(t, SliceOf):
            value = self._tensor(t.value, env, me, ran)
            lo = None if t.lo is None else evaluate(t.lo, env, me)
            hi = None if t.hi is None else evaluate(t.hi, env, me)
            ran.append(("slice", value, lo, hi))
        else:
            raise Unsupported(f"tensor {type(t).__name__}")
        return ("v", len(ran) - 1)



def _expand(items: list, spread: dict[int, int]) -> list:
    """Operands with each spread columns call replaced by its columns."""
    out: list = []
    for a in items:
        if isinstance(a, tuple) and a[0] == "spread":
            k = a[1][1]
            out.extend(("c", k, j) for j in range(spread.get(k, 0)))
        else:
            out.append(a)
    return out


def _decide(chain: Any, buffered: bool, what: str) -> None:
    """Every instance must agree with the first on whether the pass shared the buffer."""
    if chain.buffered is None:
        chain.buffered = buffered
    elif chain.buffered != buffered:
        raise Unsupported(f"{what}: shared in some instances only")
