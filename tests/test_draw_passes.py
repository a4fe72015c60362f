"""Drawing after the passes (``udnet draw --compiled``, pass flags on draw and summary) and
the Python function ``udnet.draw``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import udnet
from udnet.cli import main
from udnet.errors import UsageError

from svg_picture import Picture

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
DEAD = """
network N(input = [4, 8, 8]) {
    unused = x |> conv(16, 3, pad = 1)
    conv(8, 3, pad = 1)
    relu
}
"""


def picture(tmp_path: Path, spec: str, *args: str) -> Picture:
    out = tmp_path / "p.svg"
    assert main(["draw", spec, "-o", str(out), *args]) == 0
    return Picture(out.read_bytes())


def title(pic: Picture) -> str:
    graph = pic.root.find("{http://www.w3.org/2000/svg}g")
    return " ".join(t.text for t in graph.findall("{http://www.w3.org/2000/svg}text"))


def test_fractal_column_draws_the_extracted_column(tmp_path):
    pic = picture(tmp_path, str(SPECS / "fractal.ud"), "--fractal-column", "2", "--expand")
    assert "(after prune, share-concat; column 2)" in title(pic)
    texts = [t for _, ts in pic.nodes.values() for t in ts]
    assert not any("join" in t for t in texts) and not pic.cells  # one column: no joins, no columns
    assert sum(t.startswith("3x3 conv") for t in texts) == 5 * 2  # column 2 holds 2 units per block


def test_compiled_drawing_has_no_pruned_path(tmp_path, capsys):
    spec = tmp_path / "dead.ud"
    spec.write_text(DEAD)
    plain = picture(tmp_path, str(spec))
    assert "3x3 conv, 16" in plain.node_texts()
    compiled = picture(tmp_path, str(spec), "--compiled")
    assert "3x3 conv, 16" not in compiled.node_texts() and "3x3 conv, 8" in compiled.node_texts()
    assert "'unused' is computed but never reaches the network output" in capsys.readouterr().err
    assert "3x3 conv, 16" in picture(tmp_path, str(spec), "--no-prune").node_texts()


def test_shared_buffers_are_drawn_as_the_bus(tmp_path):
    dense = picture(tmp_path, str(SPECS / "densenet.ud"), "--compiled")
    assert len(dense.edges_of("bus")) == 4
    assert any(t.startswith("shared buffer (share-concat)") for t in dense.legend())
    unshared = picture(tmp_path, str(SPECS / "densenet.ud"), "--no-share-concat")  # the bus, as a dense block
    assert len(unshared.edges_of("bus")) == 4 and "dense buffer (each layer reads, then appends)" in unshared.legend()
    dpn = picture(tmp_path, str(SPECS / "dpn.ud"), "-D", "variant=68", "--compiled")
    assert dpn.edges_of("bus")  # the dense path of each dual-path stage: one buffer
    assert not picture(tmp_path, str(SPECS / "dpn.ud"), "-D", "variant=68").edges_of("bus")


def test_summary_takes_the_pass_flags(capsys):
    assert main(["summary", str(SPECS / "fractal.ud"), "--fractal-column", "1"]) == 0
    out = capsys.readouterr().out
    assert "specialised to FractalNet column 1" in out and "after prune" in out
    assert main(["summary", str(SPECS / "densenet.ud"), "--no-share-concat"]) == 0
    assert "after share-concat" not in capsys.readouterr().out
    assert main(["summary", str(SPECS / "fractal.ud"), "--no-prune", "--fractal-column", "1"]) == 2
    assert "--fractal-column needs the prune pass" in capsys.readouterr().err


@pytest.mark.usefixtures("graphviz_pure")  # reads table cells back
def test_udnet_draw_returns_svg_or_writes_a_file(tmp_path):
    svg = udnet.draw(str(SPECS / "fractal.ud"), C=4, widths=[64], drop=[0.0])
    assert isinstance(svg, str) and svg._repr_svg_() == svg
    assert len(Picture(svg).cells) == 15 + 4
    out = tmp_path / "r.dot"
    assert udnet.draw(SPECS / "resnet.ud", depth=50, drawing={"depth": 1}, output=out) is None
    assert out.read_text().startswith("digraph ResNet")
    compiled = Picture(udnet.draw(DEAD, compiled=True))
    assert "3x3 conv, 16" not in compiled.node_texts()
    with pytest.raises(UsageError, match="unknown option 'dpeth'"):
        udnet.draw(DEAD, drawing={"dpeth": 1})
    with pytest.raises(UsageError, match="cannot tell the output format"):
        udnet.draw(DEAD, output=tmp_path / "x.jpg")


def test_udnet_draw_imports_no_torch():
    code = (
        "import sys, udnet; svg = udnet.draw('specs/highway.ud', compiled=True); "
        "assert svg.startswith('<?xml'); assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "drawing,message",
    [
        ({"depth": -1}, "depth must be an int >= 0 or None, got int -1"),
        ({"expand": 1}, "expand must be a bool"),
        ({"rankdir": "lr"}, 'rankdir must be "TB", "LR", "BT" or "RL"'),
        ({"timeout": 0}, "timeout must be a number of seconds > 0 or None"),
        ([("depth", 1)], "drawing must be a dict of drawing options"),
    ],
)
def test_udnet_draw_names_a_wrong_drawing_option(drawing, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        udnet.draw(DEAD, drawing=drawing)
