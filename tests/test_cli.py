"""The ``udnet`` command line: help, version, ``check`` output, overrides, networks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import udnet
from udnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
DENSENET = ROOT / "specs" / "densenet.ud"


def _udnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "udnet", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _check(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["check", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _field(out: str, name: str) -> str:
    m = re.search(rf"^\s+{name}\s+(.+)$", out, re.MULTILINE)
    assert m, f"no {name} line in:\n{out}"
    return m.group(1).strip()


def test_help():
    r = _udnet("--help")
    assert r.returncode == 0, r.stderr
    assert "usage: udnet" in r.stdout
    assert "check" in r.stdout


def test_check_help():
    r = _udnet("check", "--help")
    assert r.returncode == 0, r.stderr
    for flag in ("-D", "--network", "--max-nodes", "--max-depth", "--max-steps"):
        assert flag in r.stdout


def test_version():
    r = _udnet("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"udnet {udnet.__version__}"


def test_no_command_is_usage_error():
    r = _udnet()
    assert r.returncode == 2
    assert "usage:" in r.stderr
    assert "Traceback" not in r.stderr


def test_check_densenet_subprocess():
    r = _udnet("check", "specs/densenet.ud")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.startswith("specs/densenet.ud: network DenseNet ok")
    assert _field(r.stdout, "params") == "7,978,856"


def test_check_densenet(capsys):
    rc, out, err = _check(capsys, str(DENSENET))
    assert rc == 0, err
    assert err == ""
    assert out.splitlines()[0] == f"{DENSENET}: network DenseNet ok"
    assert _field(out, "input") == "[3, 224, 224]"
    assert _field(out, "output") == "[1000]"
    nodes = int(_field(out, "nodes").replace(",", ""))
    assert nodes > 121  # at least one node per layer of DenseNet-121
    assert _field(out, "params") == "7,978,856"
    macs = _field(out, "MACs")
    m = re.fullmatch(r"([\d,]+) \((2\.8\d) G\)", macs)
    assert m, macs
    # DenseNet-121 is quoted at about 2.87 GFLOPs (multiply-adds) in the paper's figure 3.
    assert 2.7e9 < int(m.group(1).replace(",", "")) < 3.0e9


@pytest.mark.parametrize(
    "defines, params",
    [
        (["blocks=[6,12,32,32]"], "14,149,480"),  # densenet169
        (["blocks=[6,12,48,32]"], "20,013,928"),  # densenet201
        (["k=48", "blocks=[6,12,36,24]", "init=96"], "28,681,000"),  # densenet161
    ],
)
def test_defines(capsys, defines, params):
    args = [str(DENSENET)]
    for d in defines:
        args += ["-D", d]
    rc, out, err = _check(capsys, *args)
    assert rc == 0, err
    assert _field(out, "params") == params


def test_define_classes_changes_output(capsys):
    rc, out, err = _check(capsys, str(DENSENET), "--define", "classes=10")
    assert rc == 0, err
    assert _field(out, "output") == "[10]"


def test_define_input_changes_shapes(capsys):
    rc, out, err = _check(capsys, str(DENSENET), "-D", "input=[3, 64, 64]")
    assert rc == 0, err
    assert _field(out, "input") == "[3, 64, 64]"
    assert _field(out, "params") == "7,978,856"  # global pooling: params do not depend on the size


def test_network_densenet_bc(capsys):
    rc, out, err = _check(capsys, str(DENSENET), "--network", "DenseNetBC")
    assert rc == 0, err
    assert out.splitlines()[0] == f"{DENSENET}: network DenseNetBC ok"
    assert _field(out, "input") == "[3, 32, 32]"
    assert _field(out, "output") == "[10]"
    # DenseNet-BC (L=100, k=12): 0.8M parameters in the paper's table 2.
    params = int(_field(out, "params").replace(",", ""))
    assert 0.7e6 < params < 0.85e6


def test_network_densenet_bc_with_defines(capsys):
    rc, out, err = _check(capsys, str(DENSENET), "--network", "DenseNetBC", "-D", "depth=40", "-D", "classes=100")
    assert rc == 0, err
    assert _field(out, "output") == "[100]"


def test_network_densenet_bc_bad_depth(capsys):
    rc, _, err = _check(capsys, str(DENSENET), "--network", "DenseNetBC", "-D", "depth=41")
    assert rc == 1
    assert "DenseNet-BC depth must be 6n + 4" in err.splitlines()[0]


def test_unknown_network_lists_networks(capsys):
    rc, out, err = _check(capsys, str(DENSENET), "--network", "ResNet")
    assert rc == 2
    assert out == ""
    assert "no network named 'ResNet'" in err
    assert "DenseNet, DenseNetBC" in err
    assert "Traceback" not in err


def test_unknown_network_subprocess():
    r = _udnet("check", "specs/densenet.ud", "--network", "Nope")
    assert r.returncode == 2
    assert "DenseNet, DenseNetBC" in r.stderr
    assert "Traceback" not in r.stderr


def test_spec_error_exit_code_subprocess(tmp_path):
    spec = tmp_path / "bad.ud"
    spec.write_text("network N(input = [3, 8, 8]) {\n    cnov(4, 3)\n}\n", encoding="utf-8")
    r = _udnet("check", str(spec))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith(f"{spec}:2:5: error: unknown name 'cnov'")
    assert "Traceback" not in r.stderr


def test_check_never_imports_torch():
    code = (
        "import sys, udnet.cli\n"
        "sys.argv = ['udnet', 'check', 'specs/densenet.ud']\n"
        "rc = udnet.cli.main(sys.argv[1:])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "print('no torch')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "no torch" in r.stdout
    assert "7,978,856" in r.stdout
