"""The committed figures (docs/figures/*.svg) show what ``python tools/figures.py`` draws now.

Each figure is drawn again with whatever renderer this machine has (graphviz-pure or the
system dot) and compared with the committed SVG by content: clusters, nodes, edges and
table cells with their classes, texts and tooltips. Coordinates, the generator comment
and ids Graphviz numbers itself differ between renderers and versions, and are left out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from svg_picture import Picture

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import figures  # noqa: E402


def content(pic: Picture) -> dict:
    def words(texts):
        return [" ".join(t.split()) for t in texts]

    return {
        "clusters": sorted((t, sorted(c), words(x)) for t, (c, x) in pic.clusters.items()),
        "nodes": sorted((t, sorted(c), words(x)) for t, (c, x) in pic.nodes.items()),
        "edges": sorted((a, b, sorted(c), words(x)) for a, b, c, x in pic.edges),
        "cells": sorted((k, tip) for k, (tip, _) in pic.cells.items()),
    }


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_committed_figure_is_current(tmp_path, name, capsys):
    committed = ROOT / "docs" / "figures" / name
    assert committed.exists(), f"run python tools/figures.py to draw {name}"
    fresh = tmp_path / name
    figures.draw(name, str(fresh))
    assert content(Picture(fresh.read_bytes())) == content(Picture(committed.read_bytes())), (
        f"docs/figures/{name} is out of date: run python tools/figures.py"
    )


def test_every_figure_in_the_docs_is_drawn_by_the_script():
    used = set()
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        used.update(p.split("/")[-1] for p in re.findall(r"figures/([\w.-]+\.svg)", doc.read_text()))
    assert used <= set(figures.FIGURES)
    assert {p.name for p in (ROOT / "docs" / "figures").glob("*.svg")} == set(figures.FIGURES)
