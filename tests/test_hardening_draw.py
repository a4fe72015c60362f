"""Hardening of ``udnet draw`` and ``udnet summary``.

* a drawing too big to lay out is refused before the renderer starts (--max-draw-nodes),
  and a renderer that runs too long is stopped and reported (--draw-timeout);
* values and module trees nested as deep as the limits allow print and draw without
  recursion errors;
* control characters, escape sequences and bidi controls from a spec are shown escaped
  in every text that summary and draw write, and never break the DOT source.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from udnet.backends import graphviz as gv
from udnet.backends.drawing import options as draw_options
from udnet.backends.drawing.labels import quoted
from udnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SVG = "{http://www.w3.org/2000/svg}"
NODE_LINE = re.compile(r"^\t+(?!(?:graph|node|edge) )(\w+) \[", re.MULTILINE)  # a node statement of the DOT source
EDGE_LINE = re.compile(r"^\t+\w+ -> \w+", re.MULTILINE)

# Characters that must never appear raw in a printout or a drawing.
CONTROLS = "\x00\x01\x07\x08\x0b\x0c\x0d\x1b\x7f\x85\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"


def _unprintable(text: str) -> set[str]:
    return {c for c in text if not c.isprintable() and c not in "\n\t"}


# ---- 10. a budget for the renderer ------------------------------------------------------


def _no_renderer(monkeypatch):
    """Make starting any renderer a test failure."""

    def fail(*a, **k):
        raise AssertionError("the renderer was started")

    monkeypatch.setattr(gv.subprocess, "Popen", fail)


def test_big_expanded_drawing_is_refused_before_the_renderer_starts(tmp_path, monkeypatch, capsys):
    """DenseNet with 5,600 IR nodes, inside every default limit: expanded, it is more than
    --max-draw-nodes allows; the error comes before Graphviz ever runs."""
    _no_renderer(monkeypatch)
    out = tmp_path / "big.svg"
    rc = main(["draw", str(SPECS / "densenet.ud"), "-D", "blocks=[200,200,200,200]", "--expand", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "udnet: error: the drawing has 5,6" in err
    assert "nodes, more than the limit of 5,000 (--max-draw-nodes)" in err
    hint = err.split("hint:", 1)[1]
    assert "leave out --expand" in hint and "--depth N" in hint and "--max-draw-nodes N" in hint
    assert "Traceback" not in err
    assert not out.exists()


def test_dot_output_has_no_budget(tmp_path, monkeypatch, capsys):
    _no_renderer(monkeypatch)
    out = tmp_path / "big.dot"
    args = ["draw", str(SPECS / "densenet.ud"), "-D", "blocks=[200,200,200,200]", "--expand", "-o", str(out)]
    assert main(args) == 0
    assert len(NODE_LINE.findall(out.read_text())) > 5_000


def test_max_draw_nodes_lowers_and_raises_the_budget(tmp_path, capsys):
    spec = str(SPECS / "densenet.ud")
    out = tmp_path / "d.svg"
    dot = tmp_path / "d.dot"
    assert main(["draw", spec, "--expand", "-o", str(dot)]) == 0
    drawn = len(NODE_LINE.findall(dot.read_text())) - 1  # the legend is no node of the network
    capsys.readouterr()
    assert main(["draw", spec, "--expand", "--max-draw-nodes", str(drawn - 1), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"the drawing has {drawn:,} nodes, more than the limit of {drawn - 1:,} (--max-draw-nodes)" in err
    assert not out.exists()
    assert main(["draw", spec, "--expand", "--max-draw-nodes", str(drawn), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"<?xml") or b"<svg" in out.read_bytes()
    # folded, DenseNet-121 is small: the default budget is far away
    assert main(["draw", spec, "--max-draw-nodes", "60", "-o", str(tmp_path / "f.svg")]) == 0


def test_edge_budget(tmp_path, monkeypatch, capsys):
    """Edges are bounded too: EDGES_PER_NODE per node of the budget."""
    _no_renderer(monkeypatch)
    monkeypatch.setattr(draw_options, "EDGES_PER_NODE", 1)  # DenseNet has about two edges per node
    rc = main(["draw", str(SPECS / "densenet.ud"), "--expand", "--max-draw-nodes", "450", "-o", str(tmp_path / "d.svg")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "edges, more than the limit of 450 (1 per node of --max-draw-nodes)" in err


@pytest.mark.parametrize(
    "flag,value", [("--max-draw-nodes", "0"), ("--draw-timeout", "0"), ("--draw-timeout", "-1"), ("--draw-timeout", "nan")]
)
def test_bad_budget_flags_are_usage_errors(tmp_path, flag, value, capsys):
    assert main(["draw", str(SPECS / "resnet.ud"), flag, value, "-o", str(tmp_path / "r.svg")]) == 2
    assert f"{flag} must be" in capsys.readouterr().err


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (killed; its parent may not reap it at once)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # exited between the two looks
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for dot")
def test_draw_timeout_stops_the_renderer_and_its_children(tmp_path, monkeypatch, capsys):
    """A `dot` that never finishes (a script first on PATH that sleeps in a child of its
    own): --draw-timeout stops it, and every process it started, with a located error."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dot").write_text(
        "#!/bin/sh\n"
        f'echo $$ > "{tmp_path}/dot.pid"\n'
        "sleep 600 &\n"
        f'echo $! > "{tmp_path}/sleep.pid"\n'
        "wait\n"
    )
    (fake / "dot").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ.get('PATH', '')}")
    assert gv.find_renderer().path == str(fake / "dot")
    out = tmp_path / "r.svg"
    rc = main(["draw", str(SPECS / "resnet.ud"), "--draw-timeout", "2", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.startswith("udnet: error: dot did not finish the drawing within 2 s (--draw-timeout) and was stopped")
    assert "hint:" in err and "--depth N" in err and "--draw-timeout SECONDS" in err
    assert not out.exists()
    # (a fake dot killed before it wrote its pid files started nothing that could be left)
    pids = [int(p.read_text()) for p in (tmp_path / "dot.pid", tmp_path / "sleep.pid") if p.exists() and p.read_text().strip()]
    for _ in range(100):  # SIGKILL is delivered asynchronously; bounded wait, not a timing check
        if all(_gone(p) for p in pids):
            break
        time.sleep(0.05)
    assert all(_gone(p) for p in pids)


# ---- 12. deep values and deep module trees ----------------------------------------------


DEEP_LIST = """block B(v, s = "x") {
    r: relu
}
network N(input = [3, 8, 8], depth = 340, p = 1) {
    l = [1]
    m = [1]
    for i in 1..depth {
        l = [l]
        m = [m]
    }
    b1: B(l)
    b2: B(m)
    b3: B(l)
    conv(4, 3)
}
"""


def _depth_of(v) -> int:
    depth = 0
    while isinstance(v, list):
        (v,) = v
        depth += 1
    return depth


@pytest.mark.parametrize("depth,nesting", [(340, 400), (5000, 6000)])
def test_deeply_nested_list_arguments_summarise_and_draw(tmp_path, depth, nesting, capsys):
    spec = tmp_path / "deep.ud"
    spec.write_text(DEEP_LIST)
    lim = ["-D", f"depth={depth}", "--max-nesting", str(nesting)]
    assert main(["summary", str(spec), *lim]) == 0
    text = capsys.readouterr().out
    assert "b1     B(v=[[[[" in text and "[...]" in text
    assert main(["summary", str(spec), *lim, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # valid JSON with the real values
    call = next(r["call"] for r in data["rows"] if r["scope"] == "b2")
    assert call.startswith("B(v=[[[[") and "[...]" in call
    for fmt in ("dot", "svg"):
        out = tmp_path / f"deep.{fmt}"
        assert main(["draw", str(spec), *lim, "-o", str(out)]) == 0, capsys.readouterr().err
    dot = (tmp_path / "deep.dot").read_text()
    assert "x3" in dot and "[...]" in dot  # three equal instances, folded; equal values, compared iteratively
    assert main(["draw", str(spec), *lim, "--expand", "-o", str(tmp_path / "e.dot")]) == 0


def test_deeply_nested_network_parameter_in_json_is_the_real_value(tmp_path, capsys):
    spec = tmp_path / "deep.ud"
    spec.write_text(DEEP_LIST.replace("p = 1", "p = " + "[" * 340 + "7" + "]" * 340))
    assert main(["summary", str(spec), "--max-nesting", "400", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert _depth_of(data["arguments"]["p"]) == 340
    assert main(["summary", str(spec), "--max-nesting", "400"]) == 0
    assert "p=" + "[" * 24 + "[...]" + "]" * 24 + ")" in capsys.readouterr().out


def test_deep_module_tree_summarises_and_draws(tmp_path, capsys):
    """Block instances nested 1,100 deep (--max-depth allows it): every walker is iterative."""
    spec = tmp_path / "rec.ud"
    spec.write_text(
        "block R(n) {\n    if n > 0 { r: R(n - 1) } else { relu }\n}\n"
        "network N(input = [3, 8, 8], n = 1100) {\n    top: R(n)\n    conv(4, 3)\n}\n"
    )
    lim = ["--max-depth", "1200"]
    assert main(["summary", str(spec), *lim, "--depth", "100000"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("top")]
    assert len(rows) == 1102  # top, 1,100 nested R, the relu
    out = tmp_path / "rec.dot"
    assert main(["draw", str(spec), *lim, "-o", str(out)]) == 0
    assert len(re.findall(r"subgraph \"?cluster_", out.read_text())) == 1101


# ---- 13. control and bidi characters ----------------------------------------------------


def _spec(tmp_path: Path, s: str, t: str) -> Path:
    spec = tmp_path / "strings.ud"
    spec.write_text(
        "block B(s) {\n    r: relu\n}\n"
        f'network N(input = [3, 8, 8], t = "{t}") {{\n'
        f'    b1: B("{s}")\n    b2: B("plain")\n    b3: B("{s}")\n    conv(4, 3)\n}}\n',
        encoding="utf-8",
    )
    return spec


# No raw CR: a lone CR ends a line (as LF and CR LF do), so it cannot stand inside a string.
EVIL = "a\x00b\x1b[2J\x07\u202eevil\u2066\x7f\x85\u2028z\tend"


def test_summary_escapes_control_and_bidi_characters(tmp_path, capsys):
    spec = _spec(tmp_path, EVIL, "T" + EVIL)
    assert main(["summary", str(spec)]) == 0
    text = capsys.readouterr().out
    assert not _unprintable(text) and "\t" not in text
    assert r't="Ta\x00b\x1b[2J\x07\u202eevil\u2066\x7f\x85\u2028z\tend")' in text  # the network's call
    assert r'B(s="a\x00b\x1b[2J' in text  # a row (cut to the terminal's width)
    assert main(["summary", str(spec), "--json"]) == 0
    raw = capsys.readouterr().out
    assert not _unprintable(raw)
    data = json.loads(raw)
    assert data["arguments"]["t"] == "T" + EVIL  # JSON holds the real value


def test_summary_escapes_the_spec_file_name(tmp_path, capsys):
    spec = _spec(tmp_path, "x", "y")
    evil = tmp_path / "n\x1b]0;title\x07\u202e.ud"
    spec.rename(evil)
    assert main(["summary", str(evil)]) == 0
    text = capsys.readouterr().out
    assert not _unprintable(text)
    assert "n\\x1b]0;title\\x07\\u202e.ud: network N(" in text


def _drawn(path: Path) -> tuple[int, int, int]:
    svg = ET.fromstring(path.read_bytes())  # parses: no control characters in the XML
    count = {"node": 0, "edge": 0, "cluster": 0}
    for g in svg.iter(f"{SVG}g"):
        for kind in count:
            if kind in (g.get("class") or "").split():
                count[kind] += 1
    return count["node"], count["edge"], count["cluster"]


def test_drawing_escapes_control_characters_and_keeps_its_nodes(tmp_path, capsys):
    """A NUL in a string used to end the label inside Graphviz, which then re-paired the
    quotes and drew spurious nodes; now the drawing is the one of a plain string."""
    plain = tmp_path / "plain"
    plain.mkdir()
    ref_spec = _spec(plain, "plainvalue", "plain")
    for fmt in ("dot", "svg"):
        assert main(["draw", str(ref_spec), "--expand", "-o", str(plain / f"s.{fmt}")]) == 0
    spec = _spec(tmp_path, EVIL, "T" + EVIL)
    for fmt in ("dot", "svg"):
        assert main(["draw", str(spec), "--expand", "-o", str(tmp_path / f"s.{fmt}")]) == 0, capsys.readouterr().err
    dot = (tmp_path / "s.dot").read_text(encoding="utf-8")
    assert not _unprintable(dot)
    assert not set(CONTROLS) & set(dot)
    ref_dot = (plain / "s.dot").read_text()
    assert len(NODE_LINE.findall(dot)) == len(NODE_LINE.findall(ref_dot)) == 7  # legend, input, 3 relus, conv, output
    assert len(EDGE_LINE.findall(dot)) == len(EDGE_LINE.findall(ref_dot))
    assert r'label="b1: B(s=\"a\\x00b\\x1b[2J\\x07\\u202eevil' in dot
    svg = (tmp_path / "s.svg").read_text(encoding="utf-8")
    assert not _unprintable(svg) and not set(CONTROLS) & set(svg)
    assert _drawn(tmp_path / "s.svg") == _drawn(plain / "s.svg")
    nodes, _, clusters = _drawn(tmp_path / "s.svg")
    assert (nodes, clusters) == (7, 3)


def test_dot_labels_are_safe_whatever_their_text(tmp_path):
    """The last line of defence: any text attribute, not only spec values, is escaped."""
    attrs = quoted({"label": "a\x00b\nc\x1b\u202e", "tooltip": 'q"\\\x07', "class": "op"})
    assert str(attrs["label"]) == "a\\\\x00b\nc\\\\x1b\\\\u202e"
    assert str(attrs["tooltip"]) == 'q\\"\\\\\\\\x07'


def test_summary_command_line_prints_no_raw_escapes(tmp_path):
    """Through a real process and pipe, as a terminal would receive it."""
    spec = _spec(tmp_path, EVIL, "T" + EVIL)
    r = subprocess.run(
        [sys.executable, "-m", "udnet", "summary", str(spec)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode("utf-8")
    assert not _unprintable(text)
