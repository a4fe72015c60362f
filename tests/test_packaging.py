"""The wheel carries every package, the grammar and the spec library.

An installed (non-editable) udnet must work from any directory: a package left out of
the wheel only shows as a ModuleNotFoundError after `pip install .`, which an editable
install never reveals. .ci/run also installs the wheel in a fresh environment and runs
the commands from an empty directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_every_module_the_grammar_and_the_specs(tmp_path):
    # Built from a copy: a build/ left in the checkout would hand stale files to the wheel.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("udnet", "grammar", "specs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("udnet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "udnet").rglob("*.py")}
    assert modules, "no modules found under udnet/"
    assert sorted(modules - names) == []
    assert "udnet/grammar/udnet.lark" in names
    specs = {f"udnet/specs/{p.name}" for p in (ROOT / "specs").glob("*.ud")}
    assert specs and sorted(specs - names) == []

    # Installed from the wheel (not the checkout), the library finds its specs by name.
    site, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    code = "import udnet, udnet.catalog as c; print(udnet.__file__); print(c.names()); print(c.find('dpn'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=empty, env={**os.environ, "PYTHONPATH": str(site)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    where, found, dpn = r.stdout.splitlines()
    assert where.startswith(str(site))
    assert found == repr(sorted(p.stem for p in (ROOT / "specs").glob("*.ud")))
    assert dpn == str(site / "udnet" / "specs" / "dpn.ud")
