"""Fractal blocks drawn as columns, the picture of FractalNet's figure 1.

A block qualifies when its IR is made of chains of ops ("units") between joins, every
chain ending in a join input and the block ending in a join: the shape of any recursive
join-based expansion. The columns come from the joins alone (``join_columns``, the
numbering ``--fractal-column`` uses), not from the spec's names, and are drawn left to
right by depth, the shallowest first.
A chain splits into units where the nearest enclosing block instance changes (each unit
of a fractal is the base case of the recursion, a block instance of its own).

The drawing is one HTML table: a pair of table columns per fractal column (the line
between the pair is the column's wire where it has no unit), units stacked in their
column by depth, and each join a bar spanning exactly the columns it averages. Graphviz
does not lay out the inside of a table, so the geometry is exact with either renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from udnet.ir.graph import IR

from .labels import OP_FILL, _op_text, label_value
from .style import CONNECTION_NODE, EDGE_STYLE

JOIN_STYLE = CONNECTION_NODE["join"]
WIRE = EDGE_STYLE["sequence"]["color"]
NOTE = "#6b6b6b"  # captions


@dataclass
class Unit:
    nodes: list[int]  # its ops, in order
    column: int  # 0 = leftmost, the shallowest
    row: int  # 1 = first below the block's input


@dataclass
class Bar:
    join: int  # the IR join node
    first: int  # leftmost column it averages
    last: int  # rightmost column it averages
    row: int


@dataclass
class ColumnLayout:
    numbers: list[int]  # the column number (join_columns) of each drawn column, left to right
    rows: int
    units: list[Unit]
    bars: list[Bar]


def column_layout(
    ir: IR,
    members: set[int],
    entry: int | None,
    exit_: int | None,
    columns: dict[int, list[int]],
    order: dict[int, int],
) -> ColumnLayout | None:
    """The column layout of the block made of ``members`` (fed by ``entry``, ending in
    ``exit_``), or None when the block is not columns of units between joins.
    ``columns``: ``join_columns(ir)``; ``order``: the IR's topological index of each node."""
    if exit_ not in members or ir.nodes[exit_]["op"] != "join" or entry is None:
        return None
    if not _units_between_joins(ir, members, entry, exit_):
        return None
    topo = sorted(members, key=order.__getitem__)
    # chains: (source sync, ops, join, column number)
    chains = []
    for n in topo:
        if ir.nodes[n]["op"] == "join" or not _is_sync(ir, ir.inputs(n)[0], entry):
            continue
        ops = [n]
        while ir.nodes[ir.consumers(ops[-1])[0]]["op"] != "join":
            ops.append(ir.consumers(ops[-1])[0])
        ((_, join, data),) = ir.out_edges(ops[-1], data=True)
        chains.append((ir.inputs(n)[0], ops, join, columns[join][data["port"]]))
    # Drawn left to right by depth (ops in the column), shallowest first; the numbers are
    # join_columns', which count depth for joins written join(deep, ..., shallow).
    depth: dict[int, int] = {}
    for _, ops, _, c in chains:
        depth[c] = depth.get(c, 0) + len(ops)
    numbers = sorted(depth, key=lambda c: (depth[c], c))
    if len(numbers) < 2 or not _one_path_per_column(chains, numbers, entry, exit_):
        return None
    position = {c: i for i, c in enumerate(numbers)}
    bars = []
    for j in (n for n in topo if ir.nodes[n]["op"] == "join"):
        spanned = sorted(position[c] for *_, target, c in chains if target == j)
        if spanned != list(range(spanned[0], spanned[-1] + 1)):
            return None  # a join of columns that are not side by side: no bar can show it
        bars.append(Bar(j, spanned[0], spanned[-1], 0))
    # Rows: the longest path in units from the block's input (a join is a row of its own).
    level = {entry: 0}
    for n in topo:
        ins = ir.inputs(n)
        if ir.nodes[n]["op"] == "join":
            level[n] = max(level[u] for u in ins) + 1
        else:
            starts = _is_sync(ir, ins[0], entry) or ir.nodes[ins[0]]["block"] != ir.nodes[n]["block"]
            level[n] = level[ins[0]] + starts
    units = []
    for _, ops, _, c in chains:
        start = 0
        for i in range(1, len(ops) + 1):
            if i == len(ops) or level[ops[i]] != level[ops[start]]:
                units.append(Unit(ops[start:i], position[c], level[ops[start]]))
                start = i
    for bar in bars:
        bar.row = level[bar.join]
    return ColumnLayout(numbers, level[exit_], units, bars)


def _is_sync(ir: IR, n: int, entry: int) -> bool:
    return n == entry or ir.nodes[n]["op"] == "join"


def _units_between_joins(ir: IR, members: set[int], entry: int, exit_: int) -> bool:
    """Every op has one input and one consumer, inside the block; every join input is an op."""
    for n in members:
        ins = ir.inputs(n)
        if any(u not in members and u != entry for u in ins):
            return False
        outs = ir.consumers(n)
        if n != exit_ and any(v not in members for v in outs):
            return False
        if ir.nodes[n]["op"] == "join":
            if len(ins) < 2 or any(_is_sync(ir, u, entry) for u in ins):
                return False
            if n != exit_ and any(ir.nodes[v]["op"] == "join" for v in outs):
                return False
        elif len(ins) != 1 or len(outs) != 1:
            return False
    return True


def _one_path_per_column(chains, numbers: list[int], entry: int, exit_: int) -> bool:
    """Each column is one path from the block's input to its last join, through joins."""
    for c in numbers:
        at = entry
        mine = {source: join for source, _, join, col in chains if col == c}
        if len(mine) != sum(1 for *_, col in chains if col == c):
            return False  # two chains of one column leave the same join
        for _ in range(len(mine)):
            if at not in mine:
                return False
            at = mine.pop(at)
        if at != exit_ or mine:
            return False
    return True


# ---------------------------------------------------------------------------
# The table


def unit_text(ir: IR, ops: list[int]) -> str:
    return ", ".join(_op_text(ir.nodes[n]["op"], ir.nodes[n]["attrs"]) for n in ops)


def join_text(ir: IR, join: int) -> str:
    """The bar's text: drop-path rates, local / global (the legend says which is which)."""
    a = ir.nodes[join]["attrs"]
    rates = [a.get(k, 0) for k in ("drop_local", "drop_global")]
    if not any(rates):
        return "join (mean)"
    return "join, drop-path " + " / ".join(label_value(r) for r in rates)


def columns_label(ir: IR, layout: ColumnLayout, node_id: str, compact: bool = False) -> str:
    """The HTML label of the table; ``compact``: units and bars as small boxes without text
    (the caption says what they hold), as in the paper's overview of a whole network.
    Cell ids (``ID_unit_FIRST_LAST``, ``ID_join_J``: IR node numbers) and tooltips (IR
    path and column) let a reader of the SVG find every unit and bar."""
    k = len(layout.numbers)
    units = {unit_text(ir, u.nodes) for u in layout.units}
    joins = {join_text(ir, b.join) for b in layout.bars}
    caption = ["each unit: " + units.pop() if len(units) == 1 else "units differ (see their labels)"]
    if compact and len(joins) == 1:
        caption.append("every " + joins.pop())
    note = "<br/>".join(escape(c) for c in caption)
    rows = [f'<tr><td colspan="{2 * k}"><font point-size="7" color="{NOTE}">{note}</font></td></tr>']
    if not compact:
        heads = "".join(
            f'<td colspan="2"><font point-size="7" color="{NOTE}">column {c}</font></td>' for c in layout.numbers
        )
        rows.append(f"<tr>{heads}</tr>")
    grid = {(u.row, u.column): u for u in layout.units}
    bar_at = {(b.row, b.first): b for b in layout.bars}
    wires = _wires(layout)
    text_in_units = not compact and len(units) == 0  # all alike: the first op says enough
    for r in range(1, layout.rows + 1):
        cells = []
        col = 0
        while col < k:
            if (r, col) in bar_at:
                bar = bar_at[r, col]
                cells.append(_bar_cell(ir, bar, layout, node_id, compact))
                col = bar.last + 1
                continue
            if (r, col) in grid:
                cells.append(_unit_cell(ir, grid[r, col], layout, node_id, compact, text_in_units))
            elif (r, col) in wires:  # the column's wire, on the line between its two table columns
                span = wires[r, col]
                cells.append(
                    f'<td rowspan="{span}" sides="R" border="1" color="{WIRE}"></td><td rowspan="{span}"></td>'
                )
            col += 1
        rows.append("<tr>" + "".join(cells) + "</tr>")
    pad = 0 if compact else 2
    return f'<<table border="0" cellborder="0" cellspacing="2" cellpadding="{pad}">' + "".join(rows) + "</table>>"


def _wires(layout: ColumnLayout) -> dict[tuple[int, int], int]:
    """(first row, column) -> rows, for each run of rows where a column has neither a
    unit nor a bar: one cell of that many rows draws the wire unbroken."""
    busy = {(u.row, u.column) for u in layout.units}
    busy |= {(b.row, c) for b in layout.bars for c in range(b.first, b.last + 1)}
    runs: dict[tuple[int, int], int] = {}
    for c in range(len(layout.numbers)):
        start = None
        for r in range(1, layout.rows + 2):
            free = r <= layout.rows and (r, c) not in busy
            if free and start is None:
                start = r
            elif not free and start is not None:
                runs[start, c] = r - start
                start = None
    return runs


def _unit_cell(ir: IR, unit: Unit, layout: ColumnLayout, node_id: str, compact: bool, first_only: bool) -> str:
    first = ir.nodes[unit.nodes[0]]
    tip = f"{first['scope']} (column {layout.numbers[unit.column]}): {unit_text(ir, unit.nodes)}"
    look = f'bgcolor="{OP_FILL.get(first["op"], "#f2f2f2")}" color="#5a6f96"'
    cell_id = f"{node_id}_unit_{unit.nodes[0]}_{unit.nodes[-1]}"
    cell = f'<td colspan="2" border="1" style="rounded" {look} id="{cell_id}" tooltip="{escape(tip)}"'
    if compact:
        return f'{cell} width="16" height="5" fixedsize="true"></td>'
    text = _op_text(first["op"], first["attrs"]) if first_only else unit_text(ir, unit.nodes)
    return f'{cell}><font point-size="9">{escape(text)}</font></td>'


def _bar_cell(ir: IR, bar: Bar, layout: ColumnLayout, node_id: str, compact: bool) -> str:
    cols = layout.numbers[bar.first : bar.last + 1]
    tip = f"{ir.path(bar.join)}: mean of columns {', '.join(map(str, cols))}; {join_text(ir, bar.join)}"
    cell = (
        f'<td colspan="{2 * len(cols)}" border="1" bgcolor="{JOIN_STYLE["fillcolor"]}" color="{JOIN_STYLE["color"]}" '
        f'id="{node_id}_join_{bar.join}" tooltip="{escape(tip)}"'
    )
    if compact:
        return f'{cell} height="4"></td>'
    return f'{cell}><font point-size="8">{escape(join_text(ir, bar.join))}</font></td>'
