"""Fractal blocks drawn as columns (FractalNet's figure 1), checked on the rendered SVG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from udnet.backends.graphviz import to_dot
from udnet.cli import main
from udnet.pipeline import Source, build_ir

from svg_picture import Picture

pytestmark = pytest.mark.usefixtures("graphviz_pure")  # reads table cells back

SPECS = Path(__file__).resolve().parents[1] / "specs"
UNIT = re.compile(r"(c\d+)_unit_(\d+)_(\d+)")
JOIN = re.compile(r"(c\d+)_join_(\d+)")
COLUMN = re.compile(r"^(block\d+)\.\S* \(column (\d+)\)")


def fractal(tmp_path: Path, *args: str) -> Picture:
    out = tmp_path / "fractal.svg"
    assert main(["draw", str(SPECS / "fractal.ud"), "-o", str(out), *args]) == 0
    return Picture(out.read_bytes())


def units_by_column(pic: Picture) -> dict[tuple[str, int], list[tuple[int, int, tuple]]]:
    """(block, column) -> [(first IR node, last IR node, box)] of its unit cells."""
    out: dict = {}
    for cell, (tip, box) in pic.cells.items():
        m = UNIT.fullmatch(cell)
        if m:
            block, column = COLUMN.match(tip).groups()
            out.setdefault((block, int(column)), []).append((int(m[2]), int(m[3]), box))
    return out


@pytest.mark.parametrize("C", [3, 4])
def test_fractal_blocks_are_columns_with_join_bars(tmp_path, C):
    pic = fractal(tmp_path, "-D", f"C={C}")
    ir = build_ir(str(SPECS / "fractal.ud"), None, [f"C={C}"])
    topo = {n: i for i, n in enumerate(ir.topo())}
    columns = units_by_column(pic)
    assert {b for b, _ in columns} == {f"block{b}" for b in range(1, 6)}
    last_unit = {}  # IR node ending a unit -> (block, column)
    for block in (f"block{b}" for b in range(1, 6)):
        lefts = []
        for c in range(1, C + 1):
            units = sorted(columns[block, c], key=lambda u: topo[u[0]])
            assert len(units) == 2 ** (c - 1)  # the paper's count: column c holds 2^(c-1) units
            xs = {(round(box[0], 2), round(box[2], 2)) for *_, box in units}
            assert len(xs) == 1, f"{block} column {c}: units at different x: {xs}"
            ys = [box[1] for *_, box in units]
            assert ys == sorted(ys) and len(set(ys)) == len(ys)  # stacked downwards, in order
            lefts.append(xs.pop())
            last_unit.update((last, (block, c)) for _, last, _ in units)
        assert lefts == sorted(lefts)  # shallowest on the left
        assert all(a[1] < b[0] for a, b in zip(lefts, lefts[1:]))  # side by side, apart
    bars = 0
    for cell, (_, box) in pic.cells.items():
        m = JOIN.fullmatch(cell)
        if not m:
            continue
        bars += 1
        join = int(m[2])
        averaged = {last_unit[u] for u in ir.inputs(join)}
        (block,) = {b for b, _ in averaged}
        spans = [columns[block, c][0][2] for _, c in averaged]
        assert box[0] == pytest.approx(min(s[0] for s in spans), abs=0.5)
        assert box[2] == pytest.approx(max(s[2] for s in spans), abs=0.5)
        for c in range(1, C + 1):  # and no column it does not average
            if (block, c) not in averaged:
                x0, _, x1, _ = columns[block, c][0][2]
                assert x1 < box[0] or x0 > box[2]
        assert len(averaged) == len(ir.inputs(join))
    assert bars == 5 * 2 ** (C - 2) == sum(1 for _, d in ir.nodes(data=True) if d["op"] == "join")
    assert not pic.foreign_crossings()


def test_fractal_title_legend_and_drop_path(tmp_path):
    pic = fractal(tmp_path)
    assert pic.cluster_label("block1") == "block1: Fractal(C=3, c=64, p=0, drop_local=0.15, drop_global=0.5)"
    assert set(pic.clusters) == {f"cluster_block{b}" for b in range(1, 6)}  # no clusters of the recursion
    tables = [texts for classes, texts in pic.nodes.values() if "columns" in classes]
    assert len(tables) == 5
    texts = next(t for t in tables if "each unit: 3x3 conv, 128, bn, relu, dropout 0.1" in t)
    assert texts.count("join, drop-path 0.15 / 0.5") == 2
    assert ["column 1", "column 2", "column 3"] == [t for t in texts if t.startswith("column")]
    assert "fractal join: mean of the columns under the bar;" in pic.legend()


def test_depth_draws_compact_columns_and_folding_still_folds(tmp_path):
    pic = fractal(tmp_path, "-D", "C=4", "--depth", "1")
    assert set(pic.clusters) == {f"cluster_block{b}" for b in range(1, 6)}
    columns = units_by_column(pic)
    assert len(columns) == 5 * 4 and all(len(columns[b, c]) == 2 ** (c - 1) for b, c in columns)
    texts = [t for _, ts in pic.nodes.values() for t in ts]
    assert "every join, drop-path 0.15 / 0.5" in texts and "3x3 conv, 64" not in texts
    assert not pic.foreign_crossings()
    top = fractal(tmp_path, "--depth", "0")
    assert "block1 | Fractal(C=3, c=64, p=0, drop_local=0.15, drop_global=0.5) | join" in top.node_texts()
    same = fractal(tmp_path, "-D", "widths=[64, 64, 64]", "-D", "drop=[0, 0, 0]")
    assert "block1..3 | Fractal(C=3, c=64, p=0, drop_local=0.15, drop_global=0.5) | x3 (join)" in same.node_texts()


RECURSION = """
block Tree(n) {
    if n == 0 {
        c: conv(8, 3, pad = 1)
        r: relu
        return x
    }
    left = x |> a: Tree(n - 1) |> b: Tree(n - 1)
    return join(left, x |> s: Tree(0))
}
network T(input = [8, 8, 8]) {
    t: Tree(2)
}
"""


def test_any_recursive_join_block_is_drawn_as_columns():
    """The layout reads the joins, not the names: a recursion named otherwise gets it too."""
    dot = to_dot(build_ir(Source("t.ud", RECURSION)))
    assert "class=columns" in dot
    assert dot.count("_unit_") == 2**3 - 1 and dot.count("_join_") == 2


def test_a_join_block_that_is_not_columns_is_drawn_as_ops():
    spec = """
network N(input = [8, 8, 8]) {
    b: B
}
block B {
    a = x |> conv(8, 3, pad = 1)
    j = join(a |> conv(8, 3, pad = 1), a)
    return join(j, x |> conv(8, 3, pad = 1))
}
"""
    dot = to_dot(build_ir(Source("n.ud", spec)))
    assert "class=columns" not in dot and "join (mean)" in dot


def test_the_crossing_check_sees_an_edge_through_a_foreign_cluster():
    svg = """<svg xmlns="http://www.w3.org/2000/svg"><g class="graph">
<g class="cluster"><title>cluster_k</title><polygon points="0,0 0,-50 50,-50 50,0 0,0"/></g>
<g class="node"><title>a</title><polygon points="-40,10 -40,0 -30,0 -30,10 -40,10"/></g>
<g class="node"><title>b</title><polygon points="80,-60 80,-70 90,-70 90,-60 80,-60"/></g>
<g class="edge"><title>a&#45;&gt;b</title><path d="M-35,0C0,-20 20,-30 85,-60"/></g>
</g></svg>"""
    assert Picture(svg).foreign_crossings() == [("a", "b", "cluster_k")]
    assert not Picture(svg.replace("C0,-20 20,-30", "C-35,-80 0,-90")).foreign_crossings()


def test_columns_are_drawn_by_depth_whatever_the_join_order():
    """join(shallow, deep): the deep column is still drawn on the right, under its number."""
    ir = build_ir(Source("t.ud", RECURSION.replace("join(left, x |> s: Tree(0))", "join(x |> s: Tree(0), left)")))
    label = next(line for line in to_dot(ir).splitlines() if "_unit_" in line)
    heads = re.findall(r"column (\d+)</font>", label)
    assert heads == ["3", "2", "1"]  # join_columns counts join inputs from the right
    first_row = label.split("<tr>")[3]  # after the caption and the heads: all three columns start
    assert first_row.count("_unit_") == 3
