"""The shipped spec library: names in place of paths, `udnet list`, a path on disk wins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import udnet
from udnet import catalog
from udnet.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _udnet(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # From a directory that holds no spec: the names must come from the installed package.
    return subprocess.run([sys.executable, "-m", "udnet", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_library_holds_every_spec_of_the_checkout():
    assert catalog.names() == sorted(p.stem for p in (ROOT / "specs").glob("*.ud"))
    assert Path(catalog.find("dpn")).read_text() == (ROOT / "specs" / "dpn.ud").read_text()
    assert catalog.find("dpn.ud") == catalog.find("dpn")
    assert catalog.find("nosuch") is None and catalog.find("../specs/dpn") is None


def test_list_names_every_spec_with_its_networks_and_variants(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in catalog.names():
        assert f"\n{name} " in "\n" + out
    for network in ("DenseNet(k = 32", "DenseNetBC(depth = 100", "DPN(variant = 92", "FractalNet(C = 3",
                    "HighwayCIFAR(", "HighwayMLP(", "ResNet(depth = 18", "RiR(widths", "MobileNetV2(classes",
                    "EfficientNetB0(classes", "ResNet50FPN(layers", "UNet(widths"):
        assert network in out
    assert "densenet169  -D blocks=[6,12,32,32]" in out and "-D variant=68" in out
    assert "bilinear upsampling  -D bilinear=true" in out


def test_names_work_from_an_empty_directory(tmp_path):
    r = _udnet(tmp_path, "check", "dpn", "-D", "variant=68")
    assert r.returncode == 0, r.stderr
    assert "params  12,611,602" in r.stdout
    r = _udnet(tmp_path, "compile", "densenet", "-D", "k=12", "-D", "blocks=[2,2]", "-o", "m.py")
    assert r.returncode == 0, r.stderr
    assert "class DenseNet(" in (tmp_path / "m.py").read_text()
    r = _udnet(tmp_path, "draw", "fractal", "-o", "f.dot")
    assert r.returncode == 0, r.stderr
    r = _udnet(tmp_path, "draw", "highway")  # default output: the working directory, not the library
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "highway.svg").is_file()
    r = _udnet(tmp_path, "summary", "resnet")
    assert r.returncode == 0 and "layer1" in r.stdout


def test_a_path_on_disk_wins_over_a_library_name(tmp_path):
    (tmp_path / "densenet.ud").write_text("network Tiny(input = [3, 8, 8]) {\n    conv(4, 3)\n}\n")
    r = _udnet(tmp_path, "check", "densenet.ud")
    assert r.returncode == 0 and "network Tiny ok" in r.stdout
    r = _udnet(tmp_path, "check", "densenet")
    assert r.returncode == 0 and "network DenseNet ok" in r.stdout


def test_unknown_name_says_no_such_file_and_points_at_the_list(tmp_path):
    r = _udnet(tmp_path, "check", "densnet")
    assert r.returncode == 2
    assert "no such file: densnet" in r.stderr and "udnet list" in r.stderr


def test_python_api_takes_names():
    model = udnet.load("dpn", variant=68)
    assert sum(p.numel() for p in model.parameters()) == 12_611_602
