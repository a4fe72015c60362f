"""Whole-process wall time of `udnet check` (start-up included): the compile path
must start fast, so it never imports torch.

    python benchmarks/bench_check.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SPECS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "specs")
CASES = {
    "densenet121": ["densenet.ud"],
    "densenet264": ["densenet.ud", "-D", "blocks=[6,12,64,48]"],
    "dpn131": ["dpn.ud", "-D", "variant=131"],
    "fractal C=4": ["fractal.ud", "-D", "C=4"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    print(f"{'case':<14} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, argv in CASES.items():
        cmd = [sys.executable, "-m", "udnet", "check", os.path.join(SPECS, argv[0]), *argv[1:]]
        subprocess.run(cmd, check=True, capture_output=True)  # warm caches (the LALR table cache included)
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        print(f"{name:<14} {statistics.median(times):>9.3f} {min(times):>7.3f} {max(times):>7.3f}")


if __name__ == "__main__":
    main()
