"""Every limit udnet enforces, in one place (docs/limits.md describes each one).

- ``Limits``: the adjustable bounds, each a command-line flag, with their defaults;
- the fixed limits: sizes and values beyond them are always a mistake;
- the drawing budget of ``udnet draw``;
- ``Budget``: the checks elaboration makes while a spec grows (a mixin of the
  Elaborator), and ``recursion_guard``, which turns what still recurses too deeply
  into an error.

The parser checks a spec's size and bracket nesting itself (``udnet/frontend/parser.py``),
the op table every op argument (``udnet/ops/spec.py``), scopes the label length
(``udnet/elaborate/scopes.py``), drawing its budget (``udnet/backends/drawing/options.py``);
they all read their bounds from here. This module imports nothing of udnet but its errors,
so every layer can.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from udnet.errors import Span, UdnetError

# ---- defaults of the adjustable limits ----

#: Larger sources are refused before parsing (a 10 MB spec is a mistake, not a network).
#: Parsing runs at roughly 10-20 us a byte, so the default keeps the worst case to seconds.
#: Raised with --max-source-bytes (``Limits.max_source_bytes``).
MAX_SOURCE_BYTES = 262_144
#: Deepest nesting of brackets, blocks and sub-expressions (``Limits.max_nesting``,
#: --max-nesting): the elaborator recurses once or twice per level.
MAX_NESTING = 256
#: Default cap on the elements of one node's output (per sample, batch excluded) and on
#: one node's parameters: 2**32, 16 GiB in float32. ``Limits.max_elements``, --max-elements.
MAX_ELEMENTS = 2**32


@dataclass(frozen=True)
class Limits:
    """Bounds that stop runaway specs quickly; each is a command-line flag (docs/limits.md)."""

    max_nodes: int = 30_000  # --max-nodes: IR nodes (exponential recursion, huge loops)
    max_depth: int = 100  # --max-depth: nested block calls and labelled groups (the module tree)
    max_steps: int = 1_000_000  # --max-steps: statements, loop iterations, list copying
    max_nesting: int = MAX_NESTING  # --max-nesting: brackets, blocks, sub-expressions, nested lists
    max_source_bytes: int = MAX_SOURCE_BYTES  # --max-source-bytes: size of a spec
    max_elements: int = MAX_ELEMENTS  # --max-elements: per node, tensor elements and parameters


# ---- fixed limits ----

#: No dimension of a tensor may exceed this (a fixed cap: sizes beyond it are always a
#: mistake, such as conv(2**60, 3) or 80 upsample(2) in a row); nor may an op's integer argument.
MAX_DIM = 2**31
#: The largest finite float16. Every number an op argument holds is at most this in
#: magnitude: a bias constant or elu's alpha (its output's bound) must stay finite when the
#: model runs in half precision (autocast, .half()), and hence in float32. docs/language.md.
HALF_MAX = 65504.0
#: Largest magnitude of an integer: literals and every arithmetic result.
INT_LIMIT = 2**62
#: Longest list or string a spec may build (doubling in a loop must not exhaust memory).
LEN_LIMIT = 1_000_000
#: Longest label: labels become attribute names and state_dict keys.
MAX_LABEL = 200
#: Largest size of the network input, each of [C, H, W] or [C].
MAX_INPUT_SIZE = 1 << 20
#: At most this much is read from a spec path when no limit is given (/dev/zero or a
#: huge file must not fill memory); parse() then enforces Limits.max_source_bytes.
READ_CAP = 64 * 2**20
#: Python's recursion limit while elaborating (at least; a higher one is kept).
RECURSION_LIMIT = 20_000

# ---- the drawing budget ----

#: Layout time grows faster than the drawing (graphviz-pure lays out 1,800 nodes in about
#: a second, 4,600 in about six, 24,000 in more than five minutes), so a drawing to render
#: may have at most this many nodes (--max-draw-nodes) and EDGES_PER_NODE times as many
#: edges, checked before the renderer starts. DOT output has no such limit.
MAX_DRAW_NODES = 5_000
EDGES_PER_NODE = 4
#: Seconds the renderer may run before it is stopped (--draw-timeout).
DRAW_TIMEOUT = 120.0


# ---- the checks of elaboration ----


class Budget:
    """The limits checked while a spec grows. A mixin of the Elaborator: ``self`` holds
    ``limits``, the IR ``g`` and the counters ``steps`` (statements and list work),
    ``depth`` (block calls), ``_scope_depth`` (the module tree) and ``_nested`` (the
    sizes and depths of nested list values)."""

    def _tick(self, span: Span, cost: int = 1) -> None:
        self.steps += cost
        if self.steps > self.limits.max_steps:
            raise UdnetError(
                f"elaboration exceeds the limit of {self.limits.max_steps:,} steps "
                "(statements, loop iterations and list copying; --max-steps)",
                span,
                "a loop runs far too often; if that is intended, raise the limit with --max-steps",
            )

    def _list(self, t: tuple, span: Span) -> tuple:
        """Account for a new list value: its copying costs steps (a step per 16 items), and
        its size, nested lists included, and its depth are bounded. Lists share their items,
        so ``l = [l, l]`` in a loop would otherwise describe 2**n items in n steps."""
        weight, depth = len(t), 1
        for item in t:
            if type(item) is tuple:
                entry = self._nested.get(id(item))
                w, d = (entry[1], entry[2]) if entry is not None and entry[0] is item else (len(item), 1)
                weight += w
                depth = max(depth, d + 1)
        self._tick(span, len(t) // 16)
        if weight > LEN_LIMIT:
            raise UdnetError(
                f"this list holds {weight:,} items, nested lists included, more than the limit of {LEN_LIMIT:,}",
                span,
                "a spec's lists hold widths and layer counts; is a loop doubling one?",
            )
        if depth > self.limits.max_nesting:
            raise UdnetError(
                f"lists nest more than the limit of {self.limits.max_nesting} levels deep (--max-nesting)",
                span,
                "is a loop wrapping a list in a list? if the nesting is intended, raise the limit with --max-nesting N",
            )
        if depth > 1:  # flat lists need no entry: their weight is their length
            self._nested[id(t)] = (t, weight, depth)
        return t

    def _check_node_count(self, span: Span) -> None:
        """Before the IR gets one more node."""
        if self.g.number_of_nodes() >= self.limits.max_nodes:
            raise UdnetError(
                f"the network exceeds the limit of {self.limits.max_nodes:,} IR nodes (--max-nodes)",
                span,
                "this is usually runaway recursion or a huge loop; if the network is really this big, "
                "raise the limit with --max-nodes",
            )

    def _check_size(self, op: str, shape, params: int, span) -> None:
        """Absurd sizes stop here (conv(2**60, 3), 80 upsample(2) in a row), not in torch."""
        from udnet.ops import fmt  # (udnet.ops reads its caps from this module)

        for d in shape:
            if d > MAX_DIM:
                raise UdnetError(
                    f"{op} would make a tensor {fmt(shape)}: a dimension above the limit of 2**31",
                    span,
                    "no tensor dimension may exceed 2**31 (a fixed limit); check the widths, scales and padding",
                )
        limit = self.limits.max_elements
        elements = 1
        for d in shape:
            elements *= d
        if elements > limit:
            raise UdnetError(
                f"{op} would make a tensor {fmt(shape)} of {elements:,} elements per sample, "
                f"more than the limit of {limit:,} (--max-elements)",
                span,
                "check the widths and upsampling; if the tensor really is this large, raise the limit "
                "with --max-elements N",
            )
        if params > limit:
            raise UdnetError(
                f"{op} would have {params:,} parameters, more than the limit of {limit:,} for one node "
                "(--max-elements)",
                span,
                "check the widths and kernel sizes; if the layer really is this large, raise the limit "
                "with --max-elements N",
            )

    def _check_call_depth(self, block: str, span: Span) -> None:
        """Before a call of ``block`` nests one level deeper."""
        if self.depth >= self.limits.max_depth:
            raise UdnetError(
                f"block calls nest deeper than the limit of {self.limits.max_depth} (--max-depth)",
                span,
                f"does {block} have a base case? a recursive block must stop on some parameter value; "
                "if the nesting is intended, raise the limit with --max-depth",
            )

    def _check_scope_depth(self, label, span: Span) -> None:
        """Before the module tree grows one level deeper (a block instance or labelled group)."""
        if self._scope_depth >= self.limits.max_depth:
            # The module tree (blocks and labelled groups inside each other) is walked
            # recursively by every backend, and by PyTorch itself: its forward takes three
            # Python frames a level, so a tree much deeper than 100 cannot even run.
            raise UdnetError(
                f"blocks and labelled groups nest deeper than the limit of {self.limits.max_depth} (--max-depth)",
                label.span if label is not None else span,
                "the module tree is this deep: recursive blocks nest their groups inside each other; is a "
                "base case missing? if the tree really is this deep, raise the limit with --max-depth N",
            )


@contextmanager
def recursion_guard(span: Span) -> Iterator[None]:
    """Deeply nested specs recurse deeply in the elaborator (parameter defaults and -D values
    included): raise Python's recursion limit meanwhile, and make a RecursionError a user
    error at ``span``, never a traceback."""
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, RECURSION_LIMIT))
    try:
        yield
    except RecursionError:
        raise UdnetError(
            "the spec nests too deeply to elaborate: deeply nested expressions inside deeply recursive blocks",
            span,
            "flatten deeply nested expressions (assign parts to variables), or lower the recursion; "
            "the limits are --max-nesting and --max-depth",
        ) from None
    finally:
        sys.setrecursionlimit(old_limit)
