"""What to draw (``DrawOptions``) and how much a drawing may hold before layout."""

from __future__ import annotations

from dataclasses import dataclass

from udnet.errors import UdnetError
from udnet.limits import DRAW_TIMEOUT, EDGES_PER_NODE, MAX_DRAW_NODES

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


@dataclass
class DrawOptions:
    """What to draw. ``depth``: None draws every scope; N collapses scopes deeper than N."""

    depth: int | None = None
    expand: bool = False  # do not fold repeated block instances
    shapes: bool = False  # tensor shapes on edges
    rankdir: str = "TB"
    legend: bool = True
    title: bool = True
    stage: str = ""  # in the title: which passes ran (``stage_text``); empty: the elaborated IR
    max_nodes: int | None = MAX_DRAW_NODES  # None: no budget (DOT output)
    timeout: float | None = DRAW_TIMEOUT  # seconds for the renderer; None: no limit


def check_budget(opt: DrawOptions, count: int, what: str) -> None:
    """Refuse a drawing of more ``what`` ("nodes" or "edges") than ``opt.max_nodes`` allows."""
    if opt.max_nodes is None:
        return
    limit = opt.max_nodes if what == "nodes" else EDGES_PER_NODE * opt.max_nodes
    if count <= limit:
        return
    ways = ["collapse deep blocks with --depth N"]
    if opt.expand:
        ways.insert(0, "fold repeated blocks (leave out --expand)")
    raise UdnetError(
        f"the drawing has {count:,} {what}, more than the limit of {limit:,} "
        + ("(--max-draw-nodes)" if what == "nodes" else f"({EDGES_PER_NODE} per node of --max-draw-nodes)")
        + "; Graphviz would take very long to lay it out",
        hint=f"{', or '.join(ways)}; or raise the limit with --max-draw-nodes N "
        "(and --draw-timeout SECONDS); -o FILE.dot writes the DOT source whatever its size",
    )
