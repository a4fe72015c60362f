"""Executing statements: a block's or network's body, a { ... } group's body, and each
statement in it (assignments, stages applied to the current tensor, loops, conditionals,
return, assert). A mixin of the Elaborator.
"""

from __future__ import annotations

from typing import Any

from udnet.elaborate.names import assigned_names
from udnet.elaborate.values import Frame, GroupStage, Outputs, Stage, Tensor, describe
from udnet.errors import Span, UdnetError
from udnet.frontend import ast


class _Return(Exception):
    """Unwinds statement execution on `return` (never escapes the elaborator)."""

    def __init__(self, value: Any):
        self.value = value


class Statements:
    """Running bodies statement by statement; ``self`` is the Elaborator."""

    def _run(self, defn: ast.Definition, frame: Frame) -> Tensor:
        if id(defn) not in self.later:  # (setdefault would walk the body on every call)
            self.later[id(defn)] = assigned_names(defn.body)
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

    def _current(self, frame: Frame, span: Span) -> Tensor:
        x = frame.lookup("x")
        if not isinstance(x, Tensor):
            raise UdnetError("there is no current tensor here", span)
        return x

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
