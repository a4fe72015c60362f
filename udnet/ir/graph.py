"""The IR: a ``networkx.MultiDiGraph`` of op nodes with static shapes.

Node attributes
    op       "input", "output", a built-in op (``udnet.ops.OPS``) or a connection
             op: "add" (residual), "concat", "gate", "join", "slice"
    attrs    the op's complete, checked arguments (slice: lo, hi; join: drop rates)
    shape    output shape without the batch dimension: (C,) or (C, H, W)
    name     the node's label inside its scope (None for connection ops)
    scope    dotted path of the enclosing module scope ("" at the network root)
    block    dotted path of the nearest enclosing block instance ("" if none)
    span     source Span of the expression that created the node
    var      (optional) the spec variable first bound to the node's value
    params   parameter count of the node (from the IR alone)
    macs     multiply-accumulates per sample

Edge attributes
    port     input position on the target; ports of a node are 0..n-1, in order
    kind     sequence, residual, concat, gate, join or slice
    channels (lo, hi) channel range: where a concat operand lands in the result,
             or which channels a slice takes; None otherwise

Graph attributes: network, params (the network's evaluated parameters), source,
input (node id), outputs (the output nodes' ids, in order) and scopes: {path: Scope}
for every block instance, labelled group and container, in creation order; docs
(the comment above each definition) and blocks (each block's syntax tree, by name:
what the PyTorch backend translates into one class per block).

Outputs: a network has one output node per result, each an "output" node with one
input. One unnamed output (attrs {}) is a network that returns a tensor; named outputs
(attrs {"name": "p2"}, names unique, in the order of ``return {p2: a, p3: b}``) are a
network that returns an ordered dict. ``IR.outputs()`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from udnet.errors import Span


@dataclass
class Scope:
    """A module scope: a block instance, a labelled group of statements, or a container
    (``convs`` of the labels ``convs.0:``, ``convs.1:``): a module list that holds
    labelled modules and runs nothing itself."""

    path: str
    kind: str  # "block", "group" or "container"
    block: str | None  # block name for block instances
    args: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None
    input: int | None = None  # node whose output the scope was applied to
    output: int | None = None  # node whose output the scope produces (None: named outputs)
    inputs: list[int] = field(default_factory=list)  # a block's several tensor inputs, in order
    outputs: list[tuple[str, int]] = field(default_factory=list)  # its named outputs, in order


def leaf(path: str) -> str:
    """The last name of a dotted path: a scope's label in the scope around it."""
    return path.rpartition(".")[2]


def within(path: str, scope: str) -> bool:
    """Is scope ``path`` the scope ``scope`` or nested in it (everything is in the root)?"""
    return path == scope or path.startswith(scope + ".") or not scope


class IR(nx.MultiDiGraph):
    """The graph IR with a few order-aware accessors on top of networkx."""

    def inputs(self, node: int) -> list[int]:
        """Producers of ``node`` in port order."""
        return [u for u, _, _ in self.in_edges_by_port(node)]

    def in_edges_by_port(self, node: int) -> list[tuple[int, int, dict]]:
        edges = [(u, v, d) for u, v, d in self.in_edges(node, data=True)]
        edges.sort(key=lambda e: e[2]["port"])
        return edges

    def consumers(self, node: int) -> list[int]:
        return [v for _, v in self.out_edges(node)]

    def topo(self) -> list[int]:
        """Topological order, ties broken by node id (creation order): deterministic."""
        return list(nx.lexicographical_topological_sort(self))

    def path(self, node: int) -> str:
        d = self.nodes[node]
        name = d.get("name") or f"{d['op']}#{node}"
        return f"{d['scope']}.{name}" if d.get("scope") else name

    def op_nodes(self) -> Iterator[tuple[int, dict]]:
        for n, d in self.nodes(data=True):
            if d["op"] not in ("input", "output"):
                yield n, d

    @property
    def input_node(self) -> int:
        return self.graph["input"]

    def outputs(self) -> list[tuple[str | None, int]]:
        """(name, output node) of every network output, in order; the name is None for
        the one output of a network that returns a tensor."""
        return [(self.nodes[n]["attrs"].get("name"), n) for n in self.graph["outputs"]]

    def named_outputs(self) -> bool:
        """Does the network return named outputs (an ordered dict) rather than a tensor?"""
        return self.outputs()[0][0] is not None

    @property
    def output_node(self) -> int:
        """The output node of a network with one unnamed output."""
        if self.named_outputs():
            raise ValueError("the network has named outputs: read IR.outputs()")
        return self.graph["outputs"][0]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[self.output_node]["shape"]

    def param_count(self) -> int:
        return sum(d["params"] for _, d in self.nodes(data=True))

    def mac_count(self) -> int:
        return sum(d["macs"] for _, d in self.nodes(data=True))

    def _repr_svg_(self) -> str:
        """Jupyter shows an IR as its diagram (folded; see udnet.backends.graphviz)."""
        from udnet.backends.graphviz import to_svg

        return to_svg(self)
