"""Building the IR: adding a node (after the limits allow it) with its input edges, and
the connections that tensors make: ``+`` (residual sum), ``++`` (channel concat), ``*``,
channel slices, gate and join, extending a fresh sum, concat or join rather than nesting
one in another. A mixin of the Elaborator.
"""

from __future__ import annotations

from typing import Any

from udnet.elaborate.values import Tensor, describe
from udnet.elaborate.values import show as _show
from udnet.errors import UdnetError
from udnet.frontend import ast
from udnet import ops as opdefs
from udnet.ops import ArgError, ShapeError

_JOIN = opdefs.CONNECTIONS["join"].signature


class Build:
    """Adding IR nodes and edges; ``self`` is the Elaborator."""

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
            shape = _infer(opdefs.infer_add, [t.shape for t in operands], e.span)
            if node is None:
                node = self._connection("add", operands, shape, e.span)
            else:
                self.g.add_edge(b.node, node, port=len(operands) - 1, kind="residual", channels=None)
            return Tensor(node, shape, "add")
        if e.op == "++":
            operands, node = self._extend("concat", a, b)
            shape = _infer(opdefs.infer_concat, [t.shape for t in operands], e.span)
            if node is None:
                offsets = _offsets([t.shape[0] for t in operands])
                node = self._connection("concat", operands, shape, e.span, channels=offsets)
            else:
                lo = a.shape[0]
                self.g.add_edge(b.node, node, port=len(operands) - 1, kind="concat", channels=(lo, shape[0]))
                self.g.nodes[node]["shape"] = shape
            return Tensor(node, shape, "concat")
        if e.op == "*":
            shape = _infer(opdefs.infer_mul, [a.shape, b.shape], e.span)
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

    def _slice_channels(self, v: Tensor, lo: int | None, hi: int | None, e: ast.SliceExpr) -> Tensor:
        """``v[lo:hi]`` of a tensor: its channels lo to hi (negative bounds count from the end)."""
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



def _infer(rule, shapes: list, span) -> tuple:
    """The shape ``rule`` gives the operands' ``shapes``; a mismatch is an error at ``span``."""
    try:
        return rule(shapes)
    except ShapeError as err:
        raise UdnetError(err.message, span, err.hint) from None


def _offsets(widths: list[int]) -> list[tuple[int, int]]:
    """Where each operand of a concat lands in its result: ``(lo, hi)`` channel ranges."""
    out, lo = [], 0
    for w in widths:
        out.append((lo, lo + w))
        lo += w
    return out
