"""The same spec and overrides give a byte-identical model.py: across runs in one process,
and across processes with different string hashing (PYTHONHASHSEED), through the real
``udnet compile -o`` path (passes included).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from udnet.pipeline import compile_to_torch

ROOT = Path(__file__).resolve().parents[1]

#: (spec, network or None, -D overrides): every spec, every network, and overrides.
CONFIGS = [
    ("densenet.ud", None, []),
    ("densenet.ud", "DenseNetBC", ["depth=40", "k=12"]),
    ("densenet.ud", None, ["k=12", "blocks=[2,3,4]", "init=24"]),
    ("dpn.ud", None, []),
    ("dpn.ud", None, ["variant=68"]),
    ("fractal.ud", None, []),
    ("fractal.ud", None, ["C=2", "drop_local=0.0"]),
    ("highway.ud", None, []),
    ("highway.ud", "HighwayMLP", ["depth=7", "units=20"]),
    ("resnet.ud", None, []),
    ("resnet.ud", None, ["depth=50"]),
    ("rir.ud", None, []),
    ("mobilenet.ud", None, []),
    ("efficientnet.ud", None, []),
    ("fpn.ud", None, []),
    ("unet.ud", None, ["bilinear=true"]),
]

#: Run in a fresh interpreter: compile every configuration with the command line and
#: print the SHA-256 of each written model.py.
SCRIPT = r"""
import hashlib, json, os, sys, tempfile
from udnet.cli import main
configs = json.loads(sys.argv[1])
out = []
with tempfile.TemporaryDirectory() as tmp:
    for k, (spec, network, defines) in enumerate(configs):
        path = os.path.join(tmp, f"model{k}.py")
        args = ["compile", os.path.join("specs", spec), "-o", path]
        if network:
            args += ["--network", network]
        for d in defines:
            args += ["-D", d]
        rc = main(args)
        assert rc == 0, (spec, rc)
        with open(path, "rb") as f:
            out.append(hashlib.sha256(f.read()).hexdigest())
print(json.dumps(out))
"""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _in_process() -> list[str]:
    return [_digest(compile_to_torch(str(ROOT / "specs" / s), n, d or None)) for s, n, d in CONFIGS]


def test_same_output_twice_in_one_process():
    first = _in_process()
    assert _in_process() == first
    assert len(set(first)) == len(first)  # the configurations really differ


def test_same_output_across_hash_seeds():
    """Subprocesses with different PYTHONHASHSEED (set and dict order of strings differ)."""
    expected = _in_process()
    results = {}
    for seed in ("0", "1", "4242", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(CONFIGS)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        results[seed] = json.loads(r.stdout.strip().splitlines()[-1])
    for seed, digests in results.items():
        assert digests == expected, f"PYTHONHASHSEED={seed} gave different model.py files"
