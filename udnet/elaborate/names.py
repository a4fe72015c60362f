"""What a name in a spec means: a variable, a built-in (which no spec may bind), a block,
an op, or an unknown name (with a hint: a name assigned later, a close match). Binding a
variable. A mixin of the Elaborator; the names a scope or op ends up with are in scopes.py.
"""

from __future__ import annotations

from typing import Any

from udnet.elaborate.builtins import introspect
from udnet.elaborate.suggest import unknown_name_hint
from udnet.elaborate.values import MISSING, Frame, Tensor, describe
from udnet.errors import Span, UdnetError
from udnet.frontend import ast
from udnet.ops import OPS
from udnet.reserved import CONNECTIONS, FUNCTIONS, INTROSPECTION, reserved_kind


class Names:
    """Reading and binding names; ``self`` is the Elaborator."""

    def _assign(self, name: str, value: Any, s: ast.Node, frame: Frame) -> None:
        kind = reserved_kind(name) or (f"the block {name}" if name in self.blocks else None)
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

    def _eval_Name(self, e: ast.Name, frame: Frame) -> Any:
        v = frame.lookup(e.id)
        if v is not MISSING:
            return v
        if e.id in INTROSPECTION:
            return introspect(e.id, self._current_for(frame, e), e.span)
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


def assigned_names(body: ast.Body) -> dict[str, Span]:
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
