"""Wall-clock time of `udnet draw` on full-detail DenseNets and FractalNet, through the command line.

    python benchmarks/bench_draw.py [--repeats 5] [--naive 60] [--json out.json]

Each case runs `python -m udnet draw SPEC ... --expand -o x.svg` in a fresh process
(interpreter start, parse, elaborate, DOT, layout, SVG, atomic write): the time a user
waits. Budgets from the issues: DenseNet-121 under 2 s, DenseNet-264 under 5 s, FractalNet
with C = 4 columns (five blocks drawn as columns) under 2 s, on the 2-core CI machine.
Every renderer found is timed: graphviz-pure always (with the system `dot` hidden from
PATH) and the system `dot` when there is one.

--naive S also times the naive picture of DenseNet-121, every layer wired to every earlier
layer's output (O(L^2) edges), with the renderer given S seconds; it takes `dot` minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import interleaved, report  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SPEC = os.path.join(ROOT, "specs", "densenet.ud")
#: case -> (spec, its -D arguments, budget in seconds)
CASES = {
    "densenet121": (SPEC, [], 2.0),
    "densenet264": (SPEC, ["-D", "blocks=[6,12,64,48]"], 5.0),
    "fractal C=4": (os.path.join(ROOT, "specs", "fractal.ud"), ["-D", "C=4"], 2.0),
}


def _path_without_dot() -> str:
    return os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not os.path.exists(os.path.join(d, "dot"))
    )


def _draw(spec: str, defines: list[str], out: str, path: str) -> None:
    env = {**os.environ, "PATH": path}
    r = subprocess.run(
        [sys.executable, "-m", "udnet", "draw", spec, *defines, "--expand", "-o", out],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"udnet draw failed:\n{r.stderr}")


def _naive_dot() -> str:
    """DenseNet-121 drawn the naive way: every concat operand wired to every layer that reads it."""
    from udnet.pipeline import build_ir

    ir = build_ir(SPEC)
    leaves: dict[int, list[int]] = {}
    for n in ir.topo():
        if ir.nodes[n]["op"] == "concat":
            leaves[n] = [x for u in ir.inputs(n) for x in leaves.get(u, [u])]
    lines = ["digraph naive {", "node [shape=box];"]
    for n in ir.nodes:
        if n not in leaves:
            lines.append(f'n{n} [label="{ir.nodes[n]["op"]}"];')
    for n in ir.nodes:
        if n in leaves:
            continue
        for u in ir.inputs(n):
            for x in leaves.get(u, [u]):
                lines.append(f"n{x} -> n{n};")
    return "\n".join(lines + ["}"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--naive", type=float, metavar="S", help="also time the naive O(L^2) DenseNet-121 (timeout S)")
    ap.add_argument("--json", metavar="FILE", help="write the results here")
    args = ap.parse_args()

    from udnet.backends.graphviz import _graphviz_pure

    renderers = {"graphviz-pure": _path_without_dot()}
    if shutil.which("dot"):
        renderers["system dot"] = os.environ["PATH"]
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, renderers: "
        + ", ".join(f"{k} ({shutil.which('dot') if k == 'system dot' else _graphviz_pure()})" for k in renderers)
    )
    results: dict = {"cpus": os.cpu_count(), "repeats": args.repeats, "cases": {}}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for case, (spec, defines, budget) in CASES.items():
            fns = {
                f"{case} / {name}": (
                    lambda s=spec, d=defines, p=path, n=name: _draw(s, d, os.path.join(tmp, f"{n}.svg"), p)
                )
                for name, path in renderers.items()
            }
            times = interleaved(fns, args.repeats)
            first = next(iter(fns))
            print("\n".join(report(f"udnet draw {case} --expand (budget {budget:g} s)", times, first)))
            for name, ts in times.items():
                med = sorted(ts)[len(ts) // 2]
                results["cases"][name] = {"median_s": med, "min_s": min(ts), "budget_s": budget}
                failed |= med >= budget
        if args.naive:
            src = _naive_dot()
            edges = src.count("->")
            exe = shutil.which("dot") or _graphviz_pure()
            t = time.perf_counter()
            try:
                subprocess.run(
                    [exe, "-Tsvg", "-o", os.path.join(tmp, "naive.svg")],
                    input=src.encode(),
                    timeout=args.naive,
                    capture_output=True,
                    check=False,
                )
                took = f"{time.perf_counter() - t:.1f} s"
            except subprocess.TimeoutExpired:
                took = f"> {args.naive:g} s (stopped)"
            print(f"naive DenseNet-121 ({edges} edges) with {os.path.basename(exe)}: {took}")
            results["naive_densenet121"] = {"edges": edges, "time": took}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print("all within budget" if not failed else "OVER BUDGET")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
