"""Elaboration: evaluate a network's parameters, loops, conditionals and block
calls at compile time into the IR, inferring every shape on the way.

``Elaborator`` is the entry point (declarations, the network and its parameters); its
jobs are mixins, one module each:

- statements.py: executing bodies and statements;
- expressions.py: evaluating expressions (arithmetic, comparisons, indexing, pipes);
- names.py: reading and binding names, the names no spec may bind, unknown-name errors;
- builtins.py: calls, the built-in functions and introspection;
- stages.py: binding ops and blocks to their arguments and applying them (block calls);
- build.py: adding IR nodes and edges (connections of tensors);
- scopes.py: the module tree, labels and the names of scopes and ops;
- streams.py: several tensor inputs and named outputs;
- udnet/limits.py: every limit, and the checks elaboration makes (``Budget``).
"""

from __future__ import annotations

import difflib
import gc
from typing import Any

from udnet.elaborate.build import Build
from udnet.elaborate.builtins import Builtins
from udnet.elaborate.expressions import Expressions
from udnet.elaborate.names import Names
from udnet.elaborate.scopes import Scopes, ScopeNode
from udnet.elaborate.stages import Stages
from udnet.elaborate.statements import Statements
from udnet.elaborate.streams import Streams
from udnet.elaborate.values import Frame, Stage, Tensor, describe, type_name
from udnet.elaborate.values import show as _show
from udnet.errors import Span, UdnetError, UsageError
from udnet.frontend import ast
from udnet.frontend.parser import text_lines
from udnet.ir.graph import IR
from udnet.limits import MAX_INPUT_SIZE, Budget, Limits, recursion_guard
from udnet.reserved import reserved_kind

#: Limits is importable from here too, its first home (the API's messages name it so).
__all__ = ["Elaborator", "Limits"]

_DEFAULTS = Limits()


class Elaborator(Statements, Expressions, Names, Builtins, Stages, Build, Budget, Streams, Scopes):
    """Elaborates one file: ``Elaborator(module, limits).elaborate(network, overrides)`` gives the IR."""

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
        reserved = reserved_kind(d.name)
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
        g.graph.update(network=defn.name, params=params, source=defn.span.source.name, scopes={},
                       docs={d.name: d.doc for d in self.module.definitions if d.doc}, blocks=self.blocks)
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


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _compatible(default: Any, value: Any) -> bool:
    a, b = type_name(default), type_name(value)
    return a == b or (a == "float" and b == "int")
