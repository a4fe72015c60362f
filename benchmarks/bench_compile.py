"""Whole-process wall time and peak memory of `udnet check` and `udnet compile` side by
side: emitting PyTorch source must stay near-linear in the size of the module tree.

The deep tree is 98 nested labelled groups in the network (99 levels), each level with
100 conv-bn-relu triples: 29,702 IR nodes. `loops` labels them c1, n1, r1, ... (the
emitter folds them into loops); `unrolled` labels them c1x1, ... (no pattern, every
module printed).

    python benchmarks/bench_compile.py [--runs 3] [--depth 98] [--steps 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SPECS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "specs")


def deep_tree(depth: int, steps: int, patterned: bool = True) -> str:
    """``depth`` nested labelled groups, each with ``steps`` conv-bn-relu triples (labels
    c1, c2, ... fold into loops; unpatterned ones, c1x1, c2x2, ..., stay unrolled)."""
    tail = "" if patterned else "x{i}"
    lines = ["network Deep(input = [4, 8, 8]) {"]
    for d in range(depth + 1):
        ind = "    " * (d + 1)
        lines += [f"{ind}for i in 1..{steps} {{", f"{ind}    c{{i}}{tail}: conv(4, 1)", f"{ind}    n{{i}}{tail}: bn",
                  f"{ind}    r{{i}}{tail}: relu", f"{ind}}}"]
        if d < depth:
            lines.append(f"{ind}g{d + 1}: {{")
    lines += ["    " * (d + 1) + "}" for d in reversed(range(depth))]
    return "\n".join(lines + ["}"]) + "\n"


#: `udnet ARGS...` in a fresh interpreter that reports its peak resident memory (KiB) last.
CHILD = (
    "import resource, sys\n"
    "from udnet.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one `udnet` process."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    return wall, int(done.stderr.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--depth", type=int, default=98)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = {"densenet264": [os.path.join(SPECS, "densenet.ud"), "-D", "blocks=[6,12,64,48]"]}
        for patterned, name in ((True, "loops"), (False, "unrolled")):
            path = os.path.join(tmp, f"deep_{name}.ud")
            with open(path, "w") as f:
                f.write(deep_tree(args.depth, args.steps, patterned))
            cases[f"deep tree, {name}"] = [path]
        out = os.path.join(tmp, "model.py")
        print(f"{'case':<22} {'check s':>8} {'compile s':>10} {'check MiB':>10} {'compile MiB':>12}")
        for name, argv in cases.items():
            row = {}
            for command in ("check", "compile"):
                cmd = [command, *argv] + (["-o", out] if command == "compile" else [])
                runs = [run(cmd) for _ in range(args.runs)]
                row[command] = (statistics.median(w for w, _ in runs), max(m for _, m in runs))
            print(f"{name:<22} {row['check'][0]:>8.2f} {row['compile'][0]:>10.2f} {row['check'][1]:>10.0f}"
                  f" {row['compile'][1]:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
