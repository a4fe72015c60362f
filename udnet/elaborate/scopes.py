"""The module tree a spec builds: scope nodes (blocks, labelled groups, containers),
labels and the checks on them, and the names every scope and op ends up with.
A mixin of the Elaborator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from udnet.elaborate.values import Frame, LabelValue, describe
from udnet.errors import Span, UdnetError
from udnet.frontend import ast
from udnet.ir.graph import Scope
from udnet.limits import MAX_LABEL
from udnet.reserved import MODULE_ATTRS

_LABEL_PART_RE = r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)"
#: A label is a name, or a dotted path of names (``features.0``): its leading parts are containers.
_LABEL_RE = re.compile(rf"{_LABEL_PART_RE}(?:\.{_LABEL_PART_RE})*")


@dataclass(eq=False)
class ScopeNode:
    """The module tree being built; names are assigned once elaboration ends."""

    label: LabelValue | None
    kind: str  # network, block, group, container, op
    block: str | None = None
    args: dict = field(default_factory=dict)
    span: Span | None = None
    node: int | None = None  # IR node for op leaves
    input: int | None = None  # the tensor a scope was applied to
    output: int | None = None  # and the one it produced
    inputs: list[int] = field(default_factory=list)  # all of them, for a block with several inputs
    outputs: list[tuple[str, int]] = field(default_factory=list)  # its named outputs
    auto: str = ""  # base of an automatic name
    children: list["ScopeNode"] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    labels: dict[str, LabelValue] = field(default_factory=dict)
    containers: dict[str, "ScopeNode"] = field(default_factory=dict)  # by label: convs of convs.0


class Scopes:
    """Building and naming the module tree; ``self`` is the Elaborator."""

    def _child(self, label: LabelValue | None, kind: str, **kw) -> ScopeNode:
        parent = self.scope
        if label is not None and "." in label.text:  # convs.0: the module goes into container convs
            *outer, last = label.text.split(".")
            for part in outer:
                parent = self._container(parent, part, label)
            label = LabelValue(last, label.span)
        node = ScopeNode(label, kind, **kw)
        if label is not None:
            first = parent.labels.get(label.text)
            if first is not None:
                where = self._scope_path_hint(parent)
                err = UdnetError(f"duplicate label '{label.text}'{where}", label.span)
                if first.span.line == label.span.line and first.span.col == label.span.col:
                    err.hint = "the label is inside a loop; make it unique by interpolation: layer{i}:"
                else:
                    err.with_note(first.span, "first used here")
                raise err
            parent.labels[label.text] = label
        parent.children.append(node)
        return node

    def _container(self, parent: ScopeNode, part: str, label: LabelValue) -> ScopeNode:
        """The container ``part`` of ``parent`` (a module list holding labelled modules only),
        made on first use."""
        if part in parent.containers:
            return parent.containers[part]
        first = parent.labels.get(part)
        if first is not None:
            where = self._scope_path_hint(parent)
            raise UdnetError(
                f"label '{label.text}' puts a module into '{part}'{where}, which is a module itself",
                label.span,
                f"'{part}' can hold labelled modules ({part}.0:, {part}.1:, ...) or be one, not both",
            ).with_note(first.span, "first used here")
        node = ScopeNode(LabelValue(part, label.span), "container", span=label.span)
        parent.labels[part] = node.label
        parent.containers[part] = node
        parent.children.append(node)
        return node

    def _scope_path_hint(self, scope: ScopeNode) -> str:
        if scope.kind == "network":
            return ""
        if scope.label is not None:
            return f" in '{scope.label.text}'"
        return f" in block {scope.block}" if scope.block else ""

    def _name_scopes(self) -> None:
        scopes: dict[str, Scope] = self.g.graph["scopes"]
        nodes = self.g.nodes

        def walk(s: ScopeNode, path: str, block: str) -> None:
            for n in s.connections:
                if n in nodes:
                    nodes[n]["scope"], nodes[n]["block"] = path, block
            taken = set(s.labels)
            bases: dict[str, int] = {}
            for c in s.children:
                if c.label is None:
                    bases[c.auto] = bases.get(c.auto, 0) + 1
            counters: dict[str, int] = {}
            for c in s.children:
                if c.label is not None:
                    name = c.label.text
                else:
                    counters[c.auto] = counters.get(c.auto, 0) + 1
                    name = c.auto if bases[c.auto] == 1 else f"{c.auto}_{counters[c.auto]}"
                    if name.startswith("__"):  # from a block named __x: Python would mangle it
                        name = "_" + name.lstrip("_")
                    while name in taken or name in MODULE_ATTRS:  # a block named forward, eval, ...
                        name += "_"
                    taken.add(name)
                full = f"{path}.{name}" if path else name
                if c.kind == "op":
                    nodes[c.node].update(name=name, scope=path, block=block)
                else:
                    scopes[full] = Scope(full, c.kind, c.block, c.args, c.span, c.input, c.output, c.inputs,
                                         c.outputs)
                    walk(c, full, full if c.kind == "block" else block)

        walk(self.root, "", "")
        for n in [self.g.graph["input"], *self.g.graph["outputs"]]:
            nodes[n].update(scope="", block="")

    def _label(self, label: ast.Label | None, frame: Frame) -> LabelValue | None:
        if label is None:
            return None
        if len(label.parts) == 1 and label.parts[0] in self._good_labels:  # checked before
            return LabelValue(label.parts[0], label.span)
        text = ""
        for part in label.parts:
            if isinstance(part, str):
                text += part
                continue
            v = self._eval(part, frame)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise UdnetError(f"a label can interpolate an integer or a string, got {describe(v)}", part.span)
            text += str(v)
            if len(text) > MAX_LABEL:
                break
        if len(text) > MAX_LABEL:
            raise UdnetError(
                f"this label is longer than the limit of {MAX_LABEL} characters", label.span,
                "a label becomes a PyTorch attribute and a state_dict key; keep it short",
            )
        if not _LABEL_RE.fullmatch(text):
            raise UdnetError(
                f"label '{text}' is not a valid module name",
                label.span,
                "labels are letters, digits and underscores, not starting with a digit (or all digits), "
                "or a dotted path of those (convs.0)",
            )
        for part in text.split("."):
            if part in MODULE_ATTRS or (part.startswith("__") and part.endswith("__")):
                what = f"label '{text}'" if part == text else f"'{part}' in label '{text}'"
                raise UdnetError(f"{what} is reserved by PyTorch's nn.Module", label.span, "choose another name")
        if len(label.parts) == 1 and isinstance(label.parts[0], str):
            self._good_labels.add(text)
        return LabelValue(text, label.span)
