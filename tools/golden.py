"""Rewrite the golden emitted modules in tests/golden/ from the current code generator.

tests/test_golden.py compares the emitted source of four shipped networks with these
files byte for byte, so every change to emitted code shows up in review as a diff of
the files a user gets. After an intended change to the emitted code, run

    python tools/golden.py

and commit the rewritten files together with the change.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"

#: golden file -> (spec in specs/, -D overrides)
CASES = {
    "densenet121.py": ("densenet.ud", {}),
    "dpn92.py": ("dpn.ud", {"variant": "92"}),
    "fractal.py": ("fractal.ud", {}),
    "resnet18.py": ("resnet.ud", {"depth": "18"}),
}


def emitted(spec: str, defines: dict) -> str:
    """The source `udnet compile specs/SPEC -D k=v ... -o FILE` writes, byte for byte."""
    from udnet.pipeline import compile_to_torch

    path = ROOT / "specs" / spec
    return compile_to_torch(path, defines=[f"{k}={v}" for k, v in defines.items()], spec_name=spec)


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name, (spec, defines) in CASES.items():
        (GOLDEN / name).write_text(emitted(spec, defines), encoding="utf-8")
        print("wrote", (GOLDEN / name).relative_to(ROOT))


if __name__ == "__main__":
    main()
