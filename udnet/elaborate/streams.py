"""Several tensors in and out of one stage: blocks with several tensor inputs
(``block Up(c)(x, skip)``, applied as ``(a, b) |> Up(c)``) and named outputs
(``return {p2: a, p3: b}``, read as ``o.p2``). A mixin of the Elaborator.
"""

from __future__ import annotations

from typing import Any

from udnet.elaborate.values import Frame, Outputs, Stage, Tensor, Tensors, describe
from udnet.errors import Span, UdnetError
from udnet.frontend import ast

_PIPE_THEM = "declare them, block Up(c)(x, skip) { ... }, and pipe them in: (a, b) |> Up(c)"


class Streams:
    """Evaluation of tuples of tensors and named outputs; ``self`` is the Elaborator."""

    # ---- declarations ----

    def _declare_inputs(self, d: ast.Definition, params: dict[str, ast.Param]) -> None:
        seen: set[str] = set()
        for k, p in enumerate(d.inputs):
            if p.name in seen or p.name in params:
                raise UdnetError(f"'{p.name}' is named twice in the signature of {d.name}", p.span)
            if p.name == "x" and k:
                raise UdnetError("x is the first input of a block", p.span,
                                 f"put it first: block {d.name}(...)(x, ...), or rename this input")
            seen.add(p.name)

    # ---- values ----

    def _eval_TupleExpr(self, e: ast.TupleExpr, frame: Frame) -> Tensors:
        items = []
        for item in e.items:
            v = self._eval(item, frame)
            if not isinstance(v, Tensor):
                raise UdnetError(f"(a, b, ...) groups the tensors a block takes; this is {describe(v)}", item.span,
                                 "pipe several tensors into a block with several inputs: (a, b) |> Up(c)")
            items.append(v.settled())
        return Tensors(tuple(items))

    def _eval_Field(self, e: ast.Field, frame: Frame) -> Tensor:
        return self._output_named(self._eval(e.value, frame), e.name, e)

    def _output_named(self, v: Any, name: str, e: ast.Node) -> Tensor:
        """``o.name`` or ``o["name"]``: one of several named outputs."""
        if not isinstance(v, Outputs):
            raise UdnetError(f"'.{name}' picks one of several named outputs; this is {describe(v)}", e.span,
                             "pipe a tensor into an op or block instead: t |> relu" if isinstance(v, Tensor) else None)
        t = v.get(name)
        if t is None:
            raise UdnetError(f"no output named '{name}'; the outputs are {v.names()}", e.span)
        return t

    def _return_named(self, s: ast.ReturnNamed, frame: Frame) -> Outputs:
        items: list[tuple[str, Tensor]] = []
        seen: dict[str, Span] = {}
        for out in s.outputs:
            label = self._label(out.label, frame)
            if "." in label.text:
                raise UdnetError(f"output name '{label.text}' has a dot", label.span,
                                 "an output name is one name or number: p2:, 0:, pool:")
            if label.text in seen:
                raise UdnetError(f"output '{label.text}' is named twice", label.span).with_note(
                    seen[label.text], "first named here")
            seen[label.text] = label.span
            value = self._eval(out.value, frame)
            if not isinstance(value, Tensor):
                raise UdnetError(f"output '{label.text}' must be a tensor, got {describe(value)}", out.value.span)
            items.append((label.text, value.settled()))
        return Outputs(tuple(items))

    def _set_x(self, frame: Frame, value: Any, span: Span) -> None:
        """Make ``value``, what a statement's stage produced, the current tensor."""
        if isinstance(value, Outputs):
            raise UdnetError(f"this gives {describe(value)}, and x holds one tensor", span,
                             "bind them to a name and pick one: o = x |> ...; x = o.name")
        frame.vars["x"] = value

    def _check_block_argument(self, defn: ast.Definition, name: str, value: Any, span: Span) -> None:
        """Block arguments are values: a tensor reaches a block only as one of its inputs
        (a list holding tensors used to smuggle them in; nothing inside the block said so)."""
        if isinstance(value, Stage):
            raise UdnetError(f"block arguments are values; '{name}' got {describe(value)}", span,
                             "apply the stage inside the block, or make the block take it as a block call")
        if _holds_tensor(value):
            raise UdnetError(f"block arguments are values; '{name}' of {defn.name} got {describe(value)}"
                             + ("" if isinstance(value, (Tensor, Outputs)) else ", which holds tensors"),
                             span, "a block receives tensors as its inputs: " + _PIPE_THEM)

    # ---- block inputs ----

    def _bind_inputs(self, defn: ast.Definition, t: Tensor | Tensors, frame: Frame, span: Span) -> None:
        """Bind the tensors piped into block ``defn``: x is the first, each input its name."""
        tensors = t.items if isinstance(t, Tensors) else (t,)
        want = [p.name for p in defn.inputs] or ["x"]
        if len(tensors) != len(want):
            got = "one tensor" if len(tensors) == 1 else f"{len(tensors)} tensors"
            raise UdnetError(
                f"block {defn.name} takes {len(want)} tensor(s) ({', '.join(want)}), got {got}",
                span,
                f"pipe them in together: ({', '.join(want)}) |> {defn.name}(...)" if len(want) > 1
                else f"{defn.name} takes one tensor: t |> {defn.name}(...)",
            )
        for name, tensor in zip(want, tensors):
            frame.vars[name] = tensor
        frame.vars["x"] = tensors[0]

    def _first_input(self, t: Tensor | Tensors) -> Tensor:
        return t.items[0] if isinstance(t, Tensors) else t

    def _several_into(self, stage: Stage, t: Tensors) -> UdnetError:
        what = describe(stage)
        return UdnetError(f"{len(t.items)} tensors are piped into {what}, which takes one", None,
                          "only a block with several inputs takes several tensors: " + _PIPE_THEM)

    # ---- the network's outputs ----

    def _output_nodes(self, result: Tensor | Outputs, span: Span) -> list[int]:
        named = result.items if isinstance(result, Outputs) else ((None, result),)
        return [self._node("output", {} if name is None else {"name": name}, t.shape, span,
                           [(t, "sequence", None)], None) for name, t in named]


_TENSORS = (Tensor, Outputs, Tensors)


def _holds_tensor(v: Any) -> bool:
    if isinstance(v, _TENSORS):
        return True
    return type(v) is tuple and any(_holds_tensor(i) for i in v if type(i) is tuple or isinstance(i, _TENSORS))
