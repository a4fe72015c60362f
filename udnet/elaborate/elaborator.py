"""Elaboration: evaluate a network's parameters, loops, conditionals and block
calls at compile time into the IR, inferring every shape on the way.
"""

from __future__ import annotations

import difflib
import gc
from typing import Any

from udnet.elaborate.scopes import Scopes, ScopeNode
from udnet.elaborate.streams import Streams
from udnet.elaborate.suggest import unknown_name_hint
from udnet.elaborate.values import (
    show as _show,
    MISSING,
    BlockStage,
    ChainStage,
    Frame,
    GroupStage,
    LabelValue,
    OpStage,
    Outputs,
    Stage,
    Tensors,
    Incomparable,
    Tensor,
    contains,
    describe,
    equal,
    type_name,
    value_key,
)
from udnet.errors import Span, UdnetError, UsageError
from udnet.frontend import ast
from udnet.frontend.parser import text_lines
from udnet import ops as opdefs
from udnet.ir.graph import IR
from udnet.limits import INT_LIMIT, LEN_LIMIT, MAX_INPUT_SIZE, Budget, Limits, recursion_guard
from udnet.ops import OPS, ArgError, ShapeError, fmt


#: Names a spec cannot bind: they read the current tensor.
INTROSPECTION = ("channels", "height", "width", "shape")
#: Built-in functions (besides the ops and the connection functions gate/join).
FUNCTIONS = ("len", "min", "max", "abs", "int", "float", "round", "sum")
CONNECTIONS = ("gate", "join")


_DEFAULTS = Limits()


class _Return(Exception):
    """Unwinds statement execution on `return` (never escapes the elaborator)."""

    def __init__(self, value: Any):
        self.value = value


class Elaborator(Budget, Streams, Scopes):
    def __init__(self, module: ast.Module, limits: Limits = _DEFAULTS):
        self.module = module
        self.limits = limits
        self.blocks: dict[str, ast.Definition] = {}
        self.networks: dict[str, ast.Definition] = {}
        for d in module.definitions:
            self._declare(d)
        self.g = IR()
        self._next_id = 0
        self._owner: dict[int, ScopeNode | None] = {}
        self.steps = 0
        self.depth = 0
        self.absorbed: set[int] = set()
        self.calls: list[tuple[Span, str]] = []
        self.later: dict[int, dict[str, Span]] = {}
        self._bound: dict[tuple, dict] = {}
        self._good_labels: set[str] = set()  # plain labels that passed the checks
        self._scope_depth = 0  # blocks and labelled groups around the current statement
        self._nested: dict[int, tuple[tuple, int, int]] = {}  # id -> (list, size, depth): nested lists

    # ---- declarations ----

    def _declare(self, d: ast.Definition) -> None:
        reserved = _reserved_kind(d.name)
        if reserved:
            raise UdnetError(f"'{d.name}' is {reserved}; a {d.kind} cannot take that name", d.name_span)
        other = self.blocks.get(d.name) or self.networks.get(d.name)
        if other:
            raise UdnetError(f"'{d.name}' is defined twice", d.name_span).with_note(
                other.name_span, "first defined here"
            )
        seen: dict[str, ast.Param] = {}
        for p in d.params:
            if p.name in seen:
                raise UdnetError(f"parameter '{p.name}' appears twice", p.span)
            # Parameters may reuse built-in names (a paper's "width", a per-block "dropout"):
            # in value position the parameter wins, in call position the op or block does.
            if p.name == "x":
                raise UdnetError("parameter 'x' would shadow the block's input tensor", p.span, "rename the parameter")
            seen[p.name] = p
        self._declare_inputs(d, seen)
        (self.blocks if d.kind == "block" else self.networks)[d.name] = d

    # ---- entry point ----

    def elaborate(self, network: str | None, overrides: dict[str, tuple[ast.Expr, Span]]) -> IR:
        defn = self._pick_network(network)
        with recursion_guard(defn.name_span):
            # Elaboration allocates many small objects and frees almost none: the cyclic
            # collector's full passes would make it superlinear (a third of the time at the
            # node limit). Pause it; what elaboration leaves behind is bounded by the limits.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                return self._elaborate(defn, overrides)
            finally:
                if gc_was_enabled:
                    gc.enable()

    def _elaborate(self, defn: ast.Definition, overrides: dict[str, tuple[ast.Expr, Span]]) -> IR:
        params = self._network_params(defn, overrides)
        shape = params.get("input")
        g = self.g
        g.graph.update(network=defn.name, params=params, source=defn.span.source.name, scopes={})
        self.root = ScopeNode(None, "network", block=defn.name, args=params, span=defn.span)
        self.scope = self.root
        self.inst = self.root
        inp = self._node("input", {}, shape, defn.span, [], None)
        frame = Frame()
        frame.vars.update(params)
        frame.vars["x"] = Tensor(inp, shape)
        result = self._run(defn, frame)
        g.graph["input"], g.graph["outputs"] = inp, self._output_nodes(result, defn.span)
        for n in self.absorbed:
            if g.out_degree(n) == 0:
                g.remove_node(n)
        self._name_scopes()
        return g

    def _pick_network(self, name: str | None) -> ast.Definition:
        if name is not None:
            if name in self.networks:
                return self.networks[name]
            known = ", ".join(self.networks) or "none"
            if name in self.blocks:
                raise UsageError(f"'{name}' is a block, not a network (networks in this file: {known})")
            raise UsageError(f"no network named '{name}' (networks in this file: {known})")
        if not self.networks:
            src = self.module.span.source
            lines = text_lines(src.text)
            span = Span(src, len(lines), 1, len(lines), len(lines[-1]) + 1)
            raise UdnetError(
                "this file defines no network",
                span,
                "add one, e.g. network Net(classes = 10, input = [3, 32, 32]) { ... }",
            )
        return next(iter(self.networks.values()))

    def _network_params(self, defn: ast.Definition, overrides: dict[str, tuple[ast.Expr, Span]]) -> dict:
        names = [p.name for p in defn.params]
        for key, (_, name_span) in overrides.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, 1)
                hint = f"did you mean '{close[0]}'?" if close else "parameters: " + (", ".join(names) or "none")
                raise UdnetError(f"network {defn.name} has no parameter '{key}'", name_span, hint)
        frame = Frame()
        for p in defn.params:
            if p.name in overrides:
                expr, _ = overrides[p.name]
                value = self._eval(expr, Frame())
                if p.default is not None:
                    default = self._eval(p.default, frame)
                    if not _compatible(default, value):
                        raise UdnetError(
                            f"parameter '{p.name}' is {_a(type_name(default))} "
                            f"(default {_show(default)}), got {describe(value)}",
                            expr.span,
                        )
            elif p.default is not None:
                value = self._eval(p.default, frame)
            else:
                raise UdnetError(
                    f"network {defn.name} needs a value for parameter '{p.name}'",
                    p.span,
                    f"give it a default or pass -D {p.name}=...",
                )
            if isinstance(value, (Tensor, Stage)):
                raise UdnetError(f"parameter '{p.name}' must be a value, got {describe(value)}", p.span)
            frame.vars[p.name] = value
        if "input" not in frame.vars:
            raise UdnetError(
                f"network {defn.name} has no input shape",
                defn.name_span,
                "add a parameter input = [C, H, W] (or [C] for vectors)",
            )
        shape = frame.vars["input"]
        ok = isinstance(shape, tuple) and len(shape) in (1, 3)
        ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_INPUT_SIZE for d in shape)
        if not ok:
            span = overrides["input"][0].span if "input" in overrides else next(
                p.span for p in defn.params if p.name == "input"
            )
            raise UdnetError(
                f"input must be [C, H, W] or [C] with positive sizes, got {_show(shape)}", span
            )
        return frame.vars

    # ---- nodes ----

    def _node(self, op, attrs, shape, span, inputs, spec) -> int:
        g = self.g
        self._check_node_count(span)
        in_shape = inputs[0][0].shape if inputs else None
        params = spec.params(in_shape, attrs) if spec else 0
        self._check_size(op, shape, params, span)
        nid = self._next_id
        self._next_id += 1
        macs = spec.macs(in_shape, shape, attrs) if spec else 0
        g.add_node(nid, op=op, attrs=attrs, shape=shape, name=None, scope="", block="", span=span,
                   params=params, macs=macs)
        for port, (t, kind, channels) in enumerate(inputs):
            g.add_edge(t.node, nid, port=port, kind=kind, channels=channels)
        self._owner[nid] = self.scope if op != "input" else None
        return nid

    def _connection(self, op: str, operands: list[Tensor], shape, span, attrs=None, channels=None) -> int:
        kind = opdefs.CONNECTION_KINDS[op]
        chans = channels or [None] * len(operands)
        n = self._node(op, attrs or {}, shape, span, [(t, kind, c) for t, c in zip(operands, chans)], None)
        self.scope.connections.append(n)
        return n

    # ---- statements ----

    def _run(self, defn: ast.Definition, frame: Frame) -> Tensor:
        if id(defn) not in self.later:  # (setdefault would walk the body on every call)
            self.later[id(defn)] = _assigned_names(defn.body)
        self._defn_stack = getattr(self, "_defn_stack", [])
        self._defn_stack.append(defn)
        try:
            self._exec_body(defn.body, frame)
            value = frame.vars["x"]
        except _Return as r:
            value = r.value
        finally:
            self._defn_stack.pop()
        if isinstance(value, Outputs):
            return value
        if not isinstance(value, Tensor):
            raise UdnetError(
                f"{defn.kind} {defn.name} must produce a tensor, but returns {describe(value)}", defn.name_span
            )
        return value.settled()

    def _exec_body(self, body: ast.Body, frame: Frame) -> None:
        for stmt in body.stmts:
            self._exec(stmt, frame)

    def _exec(self, s: ast.Stmt, frame: Frame) -> None:
        self._tick(s.span)
        if isinstance(s, ast.Assign):
            self._assign(s.name, self._eval(s.value, frame), s, frame)
        elif isinstance(s, ast.ExprStmt):
            value = self._eval(s.value, frame)
            label = self._label(s.label, frame)
            if isinstance(value, Stage):
                self._set_x(frame, self._apply(value, self._current(frame, s.span), label, s.span), s.span)
            elif isinstance(value, Tensor):
                raise UdnetError(
                    "this tensor is computed and then dropped",
                    s.value.span,
                    "assign it (x = ...) or return it",
                )
            else:
                raise UdnetError(f"a statement must be a stage, but this is {describe(value)}", s.value.span)
        elif isinstance(s, ast.ScopeStmt):
            label = self._label(s.label, frame)
            stage = GroupStage(s.body, frame)
            self._set_x(frame, self._apply(stage, self._current(frame, s.span), label, s.span), s.span)
        elif isinstance(s, ast.For):
            items = self._eval(s.iterable, frame)
            if not isinstance(items, (tuple, range)):
                raise UdnetError(f"for needs a list or a range a..b, got {describe(items)}", s.iterable.span)
            for item in items:
                self._tick(s.span)
                self._assign(s.var, item, s, frame)
                self._exec_body(s.body, frame)
        elif isinstance(s, ast.If):
            if self._cond(s.cond, frame):
                self._exec_body(s.body, frame)
            elif isinstance(s.orelse, ast.If):
                self._exec(s.orelse, frame)
            elif s.orelse is not None:
                self._exec_body(s.orelse, frame)
        elif isinstance(s, ast.Return):
            value = self._eval(s.value, frame)
            raise _Return(value.settled() if isinstance(value, Tensor) else value)
        elif isinstance(s, ast.ReturnNamed):
            raise _Return(self._return_named(s, frame))
        elif isinstance(s, ast.Assert):
            if not self._cond(s.cond, frame):
                msg = "assertion failed"
                if s.message is not None:
                    m = self._eval(s.message, frame)
                    msg = m if isinstance(m, str) else f"assertion failed: {describe(m)}"
                    if len(msg) > 1000:  # a message built in a loop can be a million characters
                        msg = msg[:1000] + "..."
                raise UdnetError(msg, s.cond.span)
        else:  # pragma: no cover - the parser builds nothing else
            raise AssertionError(type(s))

    def _assign(self, name: str, value: Any, s: ast.Node, frame: Frame) -> None:
        kind = _reserved_kind(name) or (f"the block {name}" if name in self.blocks else None)
        if kind or name in self.networks:
            raise UdnetError(f"cannot assign to '{name}': it is {kind or 'a network'}", s.span)
        if name == "x" and not isinstance(value, Tensor):
            raise UdnetError(f"x holds the current tensor; cannot assign {describe(value)} to it", s.span)
        if isinstance(value, Tensor):
            value = value.settled()
            # Name the value after the spec variable only where it was made (the backends
            # use it for readable code), not where a caller binds a block's result.
            if self._owner.get(value.node) is self.scope:
                self.g.nodes[value.node].setdefault("var", name)
        frame.vars[name] = value

    def _current(self, frame: Frame, span: Span) -> Tensor:
        x = frame.lookup("x")
        if not isinstance(x, Tensor):
            raise UdnetError("there is no current tensor here", span)
        return x

    def _cond(self, e: ast.Expr, frame: Frame) -> bool:
        v = self._eval(e, frame)
        if not isinstance(v, bool):
            raise UdnetError(f"a condition must be true or false, got {describe(v)}", e.span, "compare it: n > 0")
        return v

    # ---- applying stages ----

    def _apply(self, stage: Stage, t: Tensor | Tensors, label: LabelValue | None, span: Span) -> Any:
        if isinstance(t, Tensors):
            if not isinstance(stage, (BlockStage, ChainStage)):
                err = self._several_into(stage, t)
                err.span = span
                raise err
        else:
            t = t.settled()
        if isinstance(stage, OpStage):
            spec = stage.spec
            try:
                shape = opdefs.infer_op(spec, t.shape, stage.attrs)
            except ShapeError as e:
                raise UdnetError(f"{e.message}", stage.span, e.hint).with_note(
                    None, f"the input of this {spec.name} is {fmt(t.shape)}"
                ) from None
            leaf = self._child(label, "op", span=stage.span, auto=spec.name)
            n = self._node(spec.name, dict(stage.attrs), shape, stage.span, [(t, "sequence", None)], spec)
            leaf.node = n
            return Tensor(n, shape)
        if isinstance(stage, BlockStage):
            return self._call_block(stage, t, label, span)
        if isinstance(stage, GroupStage):
            frame = Frame(stage.frame)
            frame.vars["x"] = t
            if label is None:  # an unlabelled group only groups statements
                return self._group_body(stage.body, frame)
            return self._in_scope(label, "group", None, {}, stage.body.span,
                                  lambda: self._group_body(stage.body, frame), t)
        if isinstance(stage, ChainStage):
            def run() -> Any:
                out = t
                for s, lab, sp in stage.stages:
                    if isinstance(out, Outputs):
                        raise UdnetError(f"{describe(out)} are piped into {describe(s)}", sp,
                                         "bind them to a name and pick one: o = t |> ...; o.name |> ...")
                    out = self._apply(s, out, lab, sp)
                return out

            return run() if label is None else self._in_scope(label, "group", None, {}, span, run, t)
        raise AssertionError(type(stage))

    def _group_body(self, body: ast.Body, frame: Frame) -> Tensor | Outputs:
        try:
            self._exec_body(body, frame)
            value = frame.vars["x"]
        except _Return as r:
            value = r.value
        if isinstance(value, Outputs):
            return value
        if not isinstance(value, Tensor):
            raise UdnetError(f"a {{ ... }} group must produce a tensor, got {describe(value)}", body.span)
        return value.settled()

    def _in_scope(self, label, kind, block, args, span, run, t: Tensor | Tensors) -> Any:
        self._check_scope_depth(label, span)
        node = self._child(label, kind, block=block, args=args, span=span, auto=(block or "group").lower())
        node.input = self._first_input(t).node
        node.inputs = [u.node for u in t.items] if isinstance(t, Tensors) else []
        outer = self.scope
        self.scope = node
        self._scope_depth += 1
        try:
            out = run()
        finally:
            self.scope = outer
            self._scope_depth -= 1
        if isinstance(out, Outputs):
            node.outputs = [(name, u.node) for name, u in out.items]
        else:
            node.output = out.node
        return out

    def _call_block(self, stage: BlockStage, t: Tensor, label: LabelValue | None, span: Span) -> Tensor:
        defn = stage.defn
        self._check_call_depth(defn.name, stage.span)
        frame = Frame()
        self._bind_inputs(defn, t, frame, stage.span)
        first = frame.vars["x"]
        for p in defn.params:
            if p.name in stage.args:
                frame.vars[p.name] = stage.args[p.name]
            else:  # defaults may use earlier parameters and the input tensors
                frame.vars["x"] = first
                frame.vars[p.name] = self._eval(p.default, frame)
                self._check_block_argument(defn, p.name, frame.vars[p.name], p.span)
        frame.vars["x"] = first
        args = {p.name: frame.vars[p.name] for p in defn.params}
        self.depth += 1
        try:
            return self._in_scope(label, "block", defn.name, args, stage.span, lambda: self._run(defn, frame), t)
        except UdnetError as err:
            if len(err.notes) < 4:
                shown = ", ".join(_show(v) for v in args.values())
                err.with_note(stage.span, f"in {defn.name}({shown}) used here")
            raise
        finally:
            self.depth -= 1

    # ---- expressions ----

    def _eval(self, e: ast.Expr, frame: Frame) -> Any:
        method = _EVAL.get(type(e))
        if method is None:
            method = _EVAL[type(e)] = getattr(Elaborator, "_eval_" + type(e).__name__)
        return method(self, e, frame)

    def _eval_Literal(self, e: ast.Literal, frame: Frame) -> Any:
        return e.value

    def _eval_ListExpr(self, e: ast.ListExpr, frame: Frame) -> Any:
        return self._list(tuple(self._eval(i, frame) for i in e.items), e.span)

    def _eval_Name(self, e: ast.Name, frame: Frame) -> Any:
        v = frame.lookup(e.id)
        if v is not MISSING:
            return v
        if e.id in INTROSPECTION:
            return _introspect(e.id, self._current_for(frame, e), e.span)
        if e.id in self.blocks:
            return self._block_stage(self.blocks[e.id], [], {}, e.span, {})
        if e.id in OPS:
            return self._op_stage(OPS[e.id], [], {}, e.span, {}, e.span)
        if e.id in FUNCTIONS or e.id in CONNECTIONS:
            raise UdnetError(f"'{e.id}' is a function; call it: {e.id}(...)", e.span)
        if e.id in self.networks:
            raise UdnetError(f"'{e.id}' is a network; only blocks can be used inside a network", e.span)
        raise self._unknown(e, frame)

    def _current_for(self, frame: Frame, e: ast.Name) -> Tensor:
        x = frame.lookup("x")
        if not isinstance(x, Tensor):
            raise UdnetError(f"'{e.id}' reads the current tensor, and there is none here", e.span)
        return x

    def _unknown(self, e: ast.Name, frame: Frame) -> UdnetError:
        err = UdnetError(f"unknown name '{e.id}'", e.span)
        if self._defn_stack_top() is not None:
            later = self.later.get(id(self._defn_stack_top()), {}).get(e.id)
            if later is not None and (later.line, later.col) > (e.span.line, e.span.col):
                err.hint = f"'{e.id}' is assigned later, at line {later.line}; assign it before using it"
                return err
        candidates = set(self.blocks) | set(FUNCTIONS) | set(CONNECTIONS) | set(INTROSPECTION)
        f: Frame | None = frame
        while f is not None:
            candidates |= set(f.vars)
            f = f.parent
        err.hint = unknown_name_hint(e.id, OPS, candidates)
        return err

    def _defn_stack_top(self) -> ast.Definition | None:
        stack = getattr(self, "_defn_stack", [])
        return stack[-1] if stack else None

    def _eval_UnaryOp(self, e: ast.UnaryOp, frame: Frame) -> Any:
        v = self._eval(e.operand, frame)
        if e.op == "not":
            if not isinstance(v, bool):
                raise UdnetError(f"'not' needs true or false, got {describe(v)}", e.operand.span)
            return not v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UdnetError(f"unary '{e.op}' needs a number, got {describe(v)}", e.operand.span)
        return -v if e.op == "-" else v

    def _eval_BinOp(self, e: ast.BinOp, frame: Frame) -> Any:
        op = e.op
        if op in ("and", "or"):
            left = self._cond(e.left, frame)
            if (op == "and" and not left) or (op == "or" and left):
                return left
            return self._cond(e.right, frame)
        a = self._eval(e.left, frame)
        b = self._eval(e.right, frame)
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return self._tensor_binop(e, a, b)
        cost = [0]
        try:
            r = _arith(op, a, b, cost)
        except _TypeMismatch as m:
            raise UdnetError(str(m), e.span) from None
        except ZeroDivisionError:
            raise UdnetError("division by zero", e.right.span) from None
        except OverflowError:
            raise UdnetError(f"the result of '{op}' is too large", e.span) from None
        if type(r) is tuple:
            return self._list(r, e.span)
        if type(a) in (tuple, str) or type(b) in (tuple, str):  # copying, comparing, searching
            self._tick(e.span, (len(a) if type(a) in (tuple, str) else 0) // 16
                       + (len(b) if type(b) in (tuple, str) else 0) // 16 + cost[0] // 16)
        elif cost[0] >= 16:
            self._tick(e.span, cost[0] // 16)
        return r

    def _tensor_binop(self, e: ast.BinOp, a: Any, b: Any) -> Tensor:
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            other = e.right if isinstance(a, Tensor) else e.left
            v = b if isinstance(a, Tensor) else a
            raise UdnetError(
                f"'{e.op}' combines a tensor with {describe(v)}",
                other.span,
                "tensors combine with tensors: + (residual sum), ++ (channel concat), * (element-wise product)",
            )
        if e.op == "+":
            operands, node = self._extend("add", a, b)
            try:
                shape = opdefs.infer_add([t.shape for t in operands])
            except ShapeError as err:
                raise UdnetError(err.message, e.span, err.hint) from None
            if node is None:
                node = self._connection("add", operands, shape, e.span)
            else:
                self.g.add_edge(b.node, node, port=len(operands) - 1, kind="residual", channels=None)
            return Tensor(node, shape, "add")
        if e.op == "++":
            operands, node = self._extend("concat", a, b)
            try:
                shape = opdefs.infer_concat([t.shape for t in operands])
            except ShapeError as err:
                raise UdnetError(err.message, e.span, err.hint) from None
            if node is None:
                offsets = _offsets([t.shape[0] for t in operands])
                node = self._connection("concat", operands, shape, e.span, channels=offsets)
            else:
                lo = a.shape[0]
                self.g.add_edge(b.node, node, port=len(operands) - 1, kind="concat", channels=(lo, shape[0]))
                self.g.nodes[node]["shape"] = shape
            return Tensor(node, shape, "concat")
        if e.op == "*":
            try:
                shape = opdefs.infer_mul([a.shape, b.shape])
            except ShapeError as err:
                raise UdnetError(err.message, e.span, err.hint) from None
            return Tensor(self._connection("mul", [a.settled(), b.settled()], shape, e.span), shape)
        raise UdnetError(f"'{e.op}' is not defined on tensors", e.span,
                         "tensors combine with + (residual sum), ++ (channel concat), * (element-wise product), "
                         "gate(...) and join(...)")

    def _extend(self, op: str, a: Tensor, b: Tensor) -> tuple[list[Tensor], int | None]:
        """Operands for `a op b`; reuses a's node when a is a fresh, unused result of the same op."""
        if a.fresh == op and self.g.out_degree(a.node) == 0 and a.node != b.node:
            prior = [Tensor(u, self.g.nodes[u]["shape"]) for u in self.g.inputs(a.node)]
            return prior + [b], a.node
        return [a, b], None

    def _eval_RangeExpr(self, e: ast.RangeExpr, frame: Frame) -> range:
        lo, hi = self._eval(e.lo, frame), self._eval(e.hi, frame)
        for v, sub in ((lo, e.lo), (hi, e.hi)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise UdnetError(f"a range a..b needs integers, got {describe(v)}", sub.span)
        if hi - lo >= INT_LIMIT:
            raise UdnetError(f"the range {lo}..{hi} is too large", e.span)
        return range(lo, hi + 1)

    def _eval_Ternary(self, e: ast.Ternary, frame: Frame) -> Any:
        return self._eval(e.then if self._cond(e.cond, frame) else e.orelse, frame)

    def _eval_Index(self, e: ast.Index, frame: Frame) -> Any:
        v = self._eval(e.value, frame)
        i = self._eval(e.index, frame)
        if isinstance(v, Outputs) and isinstance(i, str):
            return self._output_named(v, i, e)
        if isinstance(v, Tensor):
            raise UdnetError(
                "a tensor is indexed by channel ranges, not single positions",
                e.span,
                f"write a slice: [{_show(i)}:...]",
            )
        if not isinstance(v, (tuple, str, range)):
            raise UdnetError(f"cannot index {describe(v)}", e.value.span)
        if isinstance(i, bool) or not isinstance(i, int):
            raise UdnetError(f"an index must be an integer, got {describe(i)}", e.index.span)
        if not -len(v) <= i < len(v):
            raise UdnetError(f"index {i} is out of range for a list of {len(v)}", e.index.span,
                             "indices start at 0; the last is len(list) - 1")
        return v[i]

    def _eval_SliceExpr(self, e: ast.SliceExpr, frame: Frame) -> Any:
        v = self._eval(e.value, frame)
        bounds = []
        for sub in (e.lo, e.hi):
            b = None if sub is None else self._eval(sub, frame)
            if b is not None and (isinstance(b, bool) or not isinstance(b, int)):
                raise UdnetError(f"a slice bound must be an integer, got {describe(b)}", sub.span)
            bounds.append(b)
        lo, hi = bounds
        if isinstance(v, range):  # a range stays a range: no items are made
            return v[lo:hi]
        if isinstance(v, (tuple, str)):
            part = v[lo:hi]
            if isinstance(part, tuple):
                return self._list(part, e.span)
            self._tick(e.span, len(part) // 16)
            return part
        if not isinstance(v, Tensor):
            raise UdnetError(f"cannot slice {describe(v)}", e.value.span)
        c = v.shape[0]
        a = 0 if lo is None else (lo + c if lo < 0 else lo)
        z = c if hi is None else (hi + c if hi < 0 else hi)
        if not (0 <= a <= z <= c):
            raise UdnetError(
                f"channel slice [{_show(lo) if lo is not None else ''}:{_show(hi) if hi is not None else ''}] "
                f"is out of range for a tensor with {c} channels",
                e.span,
                f"valid bounds are 0..{c}, with start <= end",
            )
        shape = opdefs.infer_slice(v.shape, a, z)
        n = self._connection("slice", [v.settled()], shape, e.span, {"lo": a, "hi": z}, channels=[(a, z)])
        return Tensor(n, shape)

    def _eval_Pipe(self, e: ast.Pipe, frame: Frame) -> Any:
        value = self._eval(e.value, frame)
        label = self._label(e.label, frame)
        if isinstance(e.stage, ast.Body):
            stage: Any = GroupStage(e.stage, frame)
        else:
            stage = self._eval(e.stage, frame)
            if not isinstance(stage, Stage):
                raise UdnetError(
                    f"the right side of |> must be an op, a block or a {{ ... }} group, not {describe(stage)}",
                    e.stage.span,
                )
        if isinstance(value, (Tensor, Tensors)):
            return self._apply(stage, value, label, e.span)
        if isinstance(value, Outputs):
            raise UdnetError(f"{describe(value)} are piped into {describe(stage)}", e.value.span,
                             "pick one by name: o.name |> ...")
        if isinstance(value, Stage):
            head = value.stages if isinstance(value, ChainStage) else ((value, None, e.value.span),)
            return ChainStage(head + ((stage, label, e.span),))
        raise UdnetError(f"the left side of |> must be a tensor or a stage, not {describe(value)}", e.value.span)

    def _eval_Call(self, e: ast.Call, frame: Frame) -> Any:
        if isinstance(e.func, ast.Field):
            raise UdnetError("ops and blocks are not methods of a tensor", e.func.span,
                             f"pipe the tensor into it: t |> {e.func.name}(...)")
        if not isinstance(e.func, ast.Name):
            raise UdnetError("only blocks, ops and built-in functions can be called", e.func.span)
        name = e.func.id
        bound = frame.lookup(name)
        callable_name = name in self.blocks or name in OPS or name in CONNECTIONS or name in FUNCTIONS
        if bound is not MISSING and not (callable_name or name in INTROSPECTION):
            raise UdnetError(f"'{name}' is {describe(bound)}, not something to call", e.func.span)
        args = [self._eval(a, frame) for a in e.args]
        kwargs: dict[str, Any] = {}
        kspans: dict[str, Span] = {}
        for k in e.kwargs:
            if k.name in kwargs:
                raise UdnetError(f"argument '{k.name}' is given twice", k.span)
            kwargs[k.name] = self._eval(k.value, frame)
            kspans[k.name] = k.span
        aspans = [a.span for a in e.args]
        if name in self.blocks:
            return self._block_stage(self.blocks[name], args, kwargs, e.span, kspans, aspans)
        if name in OPS:
            return self._op_stage(OPS[name], args, kwargs, e.span, kspans, e.func.span, aspans)
        if name in CONNECTIONS:
            return self._connect(name, e, args, kwargs, kspans)
        if name in INTROSPECTION:
            if len(args) != 1 or kwargs or not isinstance(args[0], Tensor):
                raise UdnetError(f"{name}(t) takes one tensor", e.span)
            return _introspect(name, args[0], e.span)
        if name in FUNCTIONS:
            if kwargs:
                raise UdnetError(f"{name} takes no keyword arguments", e.kwargs[0].span)
            self._tick(e.span, sum(len(a) // 16 for a in args if isinstance(a, (tuple, str))))
            try:
                return _function(name, args)
            except _TypeMismatch as m:
                raise UdnetError(str(m), e.span) from None
        if name in self.networks:
            raise UdnetError(f"'{name}' is a network; only blocks can be used inside a network", e.func.span,
                             f"turn it into a block: block {name}(...)")
        raise self._unknown(e.func, frame)

    def _op_stage(self, spec, args, kwargs, span, kspans, name_span, aspans=()) -> OpStage:
        for v in list(args) + list(kwargs.values()):
            if isinstance(v, (Tensor, Stage)):
                raise UdnetError(
                    f"{spec.name} takes values as arguments, not {describe(v)}",
                    span,
                    f"pipe the tensor into it: t |> {spec.name}(...)",
                )
        # Binding checks every argument; blocks called thousands of times bind the same
        # few argument lists, so successful bindings are remembered (keys tell 1, 1.0
        # and true apart, and -0.0 from 0.0).
        key = (spec.name, value_key(tuple(args)), value_key(tuple(sorted(kwargs.items()))))
        attrs = self._bound.get(key)
        if attrs is not None:
            return OpStage(spec, attrs, span)
        try:
            attrs = self._bound[key] = spec.bind(list(args), kwargs)
        except ArgError as err:
            where = span
            if isinstance(err.arg, int) and err.arg < len(aspans):
                where = aspans[err.arg]
            elif isinstance(err.arg, str) and err.arg in kspans:
                where = kspans[err.arg]
            raise UdnetError(err.message, where, err.hint) from None
        return OpStage(spec, attrs, span)

    def _block_stage(self, defn, args, kwargs, span, kspans, aspans=()) -> BlockStage:
        params = [p.name for p in defn.params]
        if len(args) > len(params):
            raise UdnetError(
                f"block {defn.name} takes {len(params)} argument(s), got {len(args)}",
                aspans[len(params)] if len(aspans) > len(params) else span,
                f"signature: {defn.name}({', '.join(params)})",
            )
        bound = dict(zip(params, args))
        for k, v in kwargs.items():
            if k not in params:
                close = difflib.get_close_matches(k, params, 1)
                raise UdnetError(f"block {defn.name} has no parameter '{k}'", kspans.get(k, span),
                                 f"did you mean '{close[0]}'?" if close else f"parameters: {', '.join(params)}")
            if k in bound:
                raise UdnetError(f"argument '{k}' of {defn.name} is given twice", kspans.get(k, span))
            bound[k] = v
        missing = [p.name for p in defn.params if p.name not in bound and p.default is None]
        if missing:
            raise UdnetError(
                f"block {defn.name} needs argument(s) {', '.join(missing)}",
                span,
                f"signature: {defn.name}({', '.join(params)})",
            )
        for k, v in bound.items():
            self._check_block_argument(defn, k, v, span)
        return BlockStage(defn, bound, span)

    def _connect(self, name, e: ast.Call, args, kwargs, kspans) -> Tensor:
        for i, a in enumerate(args):
            if not isinstance(a, Tensor):
                raise UdnetError(f"{name} combines tensors; argument {i + 1} is {describe(a)}", e.args[i].span)
        if name == "gate":
            if len(args) != 3 or kwargs:
                raise UdnetError(
                    f"gate takes three tensors, gate(h, x, t), got {len(args)}",
                    e.span,
                    "h: transform, x: carried input, t: transform gate; y = t*h + (1-t)*x",
                )
            try:
                shape = opdefs.infer_same("gate operands differ", [t.shape for t in args], ["h", "x", "t"])
            except ShapeError as err:
                raise UdnetError(err.message, e.args[err.operand].span,
                                 "h, x and t must have one shape; project x if the width changes") from None
            return Tensor(self._connection("gate", [a.settled() for a in args], shape, e.span), shape)
        # join: a flat mean; a join fed straight into a join merges into it.
        if not args:
            raise UdnetError("join needs at least one tensor", e.span)
        try:
            attrs = _JOIN.bind([], kwargs)
        except ArgError as err:
            raise UdnetError(err.message, kspans.get(err.arg, e.span), err.hint) from None
        operands: list[Tensor] = []
        for a in args:
            d = self.g.nodes[a.node]
            if d["op"] == "join" and self.g.out_degree(a.node) == 0:
                operands.extend(Tensor(u, self.g.nodes[u]["shape"]) for u in self.g.inputs(a.node))
                self.absorbed.add(a.node)
            else:
                operands.append(a.settled())
        try:
            shape = opdefs.infer_same("join operands differ", [t.shape for t in operands])
        except ShapeError as err:
            raise UdnetError(err.message, e.span, "every column that ends at a join must have one shape") from None
        return Tensor(self._connection("join", operands, shape, e.span, attrs), shape)


#: ast node type -> Elaborator._eval_<type> (filled on first use).
_EVAL: dict[type, Any] = {}

_JOIN = opdefs.CONNECTIONS["join"].signature


def _reserved_kind(name: str) -> str | None:
    if name in OPS:
        return f"the built-in op {name}"
    if name in FUNCTIONS or name in CONNECTIONS:
        return f"the built-in function {name}"
    if name in INTROSPECTION:
        return f"the built-in '{name}' (it reads the current tensor)"
    return None


def _assigned_names(body: ast.Body) -> dict[str, Span]:
    """First assignment of every name in a body, for 'used before assignment' hints."""
    found: dict[str, Span] = {}

    def walk(stmts):
        for s in stmts:
            if isinstance(s, ast.Assign):
                found.setdefault(s.name, s.span)
            elif isinstance(s, ast.For):
                found.setdefault(s.var, s.span)
                walk(s.body.stmts)
            elif isinstance(s, ast.If):
                walk(s.body.stmts)
                o = s.orelse
                while isinstance(o, ast.If):
                    walk(o.body.stmts)
                    o = o.orelse
                if o is not None:
                    walk(o.stmts)

    walk(body.stmts)
    return found


def _introspect(name: str, t: Tensor, span: Span | None = None) -> Any:
    if name == "channels":
        return t.shape[0]
    if name == "shape":
        return tuple(t.shape)
    if len(t.shape) != 3:
        raise UdnetError(f"'{name}' needs a [C, H, W] tensor, the current one is {fmt(t.shape)}", span)
    return t.shape[1] if name == "height" else t.shape[2]


class _TypeMismatch(Exception):
    pass


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _arith(op: str, a: Any, b: Any, cost: list[int] | None = None) -> Any:
    """``a op b`` on values; ``cost[0]`` counts the items a comparison or search walked."""
    if op in ("==", "!="):
        try:
            same = equal(a, b, cost)
        except Incomparable as err:
            raise _TypeMismatch(str(err)) from None
        return same if op == "==" else not same
    if op in ("<", "<=", ">", ">="):
        if not ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))):
            raise _TypeMismatch(f"'{op}' compares numbers, not {describe(a)} and {describe(b)}")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "in":
        if not isinstance(b, (tuple, range, str)):
            raise _TypeMismatch(f"'in' needs a list or a range on the right, got {describe(b)}")
        if isinstance(b, str):
            if not isinstance(a, str):
                raise _TypeMismatch(f"'in' a string needs a string on the left, got {describe(a)}")
            return a in b
        try:
            return contains(b, a, cost)
        except Incomparable as err:
            raise _TypeMismatch(str(err)) from None
    if op in ("++", "+") and (
        (isinstance(a, (tuple, range)) and isinstance(b, (tuple, range))) or (isinstance(a, str) and isinstance(b, str))
    ):
        if len(a) + len(b) > LEN_LIMIT:
            n = len(a) + len(b)
            raise _TypeMismatch(f"'{op}' would build a {type_name(a)} of {n:,} items (limit {LEN_LIMIT:,})")
        return a + b if isinstance(a, str) else tuple(a) + tuple(b)
    if not (_num(a) and _num(b)):
        raise _TypeMismatch(f"'{op}' needs numbers, got {describe(a)} and {describe(b)}")
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op == "/":
        r = a / b
    elif op == "//":
        r = a // b
    elif op == "%":
        r = a % b
    elif op == "**":
        if isinstance(a, int) and isinstance(b, int) and b >= 0 and abs(a) > 1 and b > 62:
            raise _TypeMismatch(f"{a} ** {b} is too large")
        if isinstance(b, int) and b < 0 and a == 0:
            raise ZeroDivisionError
        r = a**b
        if isinstance(r, complex):
            raise _TypeMismatch(f"{a} ** {b} is not a real number")
    else:
        raise _TypeMismatch(f"'{op}' needs tensors or lists, got {describe(a)} and {describe(b)}")
    if isinstance(r, int) and abs(r) > INT_LIMIT:
        raise _TypeMismatch(f"integer result of '{op}' is too large (limit 2**62)")
    if isinstance(r, float) and (r != r or r in (float("inf"), float("-inf"))):
        raise _TypeMismatch(f"'{op}' gives a non-finite number")
    return r


def _function(name: str, args: list) -> Any:
    if name == "len":
        if len(args) != 1 or not isinstance(args[0], (tuple, str, range)):
            raise _TypeMismatch("len takes one list or string")
        return len(args[0])
    if name in ("min", "max", "sum"):
        items = args[0] if len(args) == 1 and isinstance(args[0], (tuple, range)) else args
        if not items and name != "sum":
            raise _TypeMismatch(f"{name} of nothing")
        if isinstance(items, range):  # closed forms: a range may be far too long to walk
            n = len(items)
            if name == "sum":
                r = (items[0] + items[-1]) * n // 2 if n else 0
            else:
                r = items[0] if name == "min" else items[-1]
        else:
            if not all(_num(v) for v in items):
                raise _TypeMismatch(f"{name} takes numbers")
            r = {"min": min, "max": max, "sum": sum}[name](items) if items else 0
        if isinstance(r, int) and abs(r) > INT_LIMIT:
            raise _TypeMismatch(f"the result of {name} is too large (limit 2**62)")
        return r
    if len(args) != 1 or not _num(args[0]):
        raise _TypeMismatch(f"{name} takes one number")
    v = args[0]
    if name == "abs":
        return abs(v)
    if name == "float":
        return float(v)
    r = int(v) if name == "int" else int(round(v))
    if abs(r) > INT_LIMIT:
        raise _TypeMismatch(f"{name}({v}) is too large for an integer (limit 2**62)")
    return r


def _offsets(widths: list[int]) -> list[tuple[int, int]]:
    out, lo = [], 0
    for w in widths:
        out.append((lo, lo + w))
        lo += w
    return out


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _compatible(default: Any, value: Any) -> bool:
    a, b = type_name(default), type_name(value)
    return a == b or (a == "float" and b == "int")


