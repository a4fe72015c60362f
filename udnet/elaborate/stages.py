"""Stages: making them (an op bound to its arguments, a block to its parameters) and
applying them to tensors (an op node, a block call with its own frame and scope, a
{ ... } group, a chain ``a |> b``), each block instance and labelled group a scope of
the module tree. A mixin of the Elaborator.
"""

from __future__ import annotations

import difflib
from typing import Any

from udnet.elaborate.values import (
    BlockStage,
    ChainStage,
    Frame,
    GroupStage,
    LabelValue,
    OpStage,
    Outputs,
    Stage,
    Tensor,
    Tensors,
    describe,
    value_key,
)
from udnet.elaborate.values import show as _show
from udnet.errors import Span, UdnetError
from udnet import ops as opdefs
from udnet.ops import ArgError, ShapeError, fmt


class Stages:
    """Binding and applying stages; ``self`` is the Elaborator."""

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
