"""The emitted modules of four shipped networks, byte for byte against tests/golden/.

A failure here means the emitted code changed. If the change is intended, rewrite the
files with `python tools/golden.py` and commit them with it: the diff is what users of
model.py will see.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import golden  # noqa: E402


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_emitted_module_equals_the_golden_file(name):
    spec, defines = golden.CASES[name]
    expected = (golden.GOLDEN / name).read_text(encoding="utf-8")
    actual = golden.emitted(spec, defines)
    assert actual == expected, f"emitted code of tests/golden/{name} changed: rerun python tools/golden.py if intended"
