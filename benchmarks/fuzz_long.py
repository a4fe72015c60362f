"""The long fuzz run: thousands of mutated and random specs, every failure collected.

The default test suite runs a fixed (derandomized) sample of the same generators
(tests/test_fuzz.py); this script runs as many cases as you like from a seed and, unlike
a Hypothesis test, does not stop at the first failure: it groups failures by exception
and place and prints the smallest input of each group.

    python benchmarks/fuzz_long.py                      # 5,000 cases
    python benchmarks/fuzz_long.py --cases 50000 --jobs 2 --seed 7
    python benchmarks/fuzz_long.py --passes             # also run the optimisation passes

A case passes when ``build_ir`` returns a verified IR whose emitted PyTorch source
compiles, or raises a located ``UdnetError``; raw-bytes cases go through the command
line and must exit 0, 1 or 2 with no traceback. Anything else is a failure. Cases
slower than --slow seconds are reported as well (udnet must stop quickly).
Exit status: 0 when no case failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from programs import (
    FUZZ_LIMITS,
    SPEC_FILES,
    HostileGen,
    Mutator,
    ProgramGen,
    RandomChoices,
    TokenStream,
    check_program,
    spec_text,
)

from udnet.errors import Source

KINDS = [f"spec:{p.name}" for p in SPEC_FILES] + [
    "spec-bytes",
    "tokens",
    "generated-ok",
    "generated-bad",
    "generated-mutated",
    "hostile",
]
LIMIT_FLAGS = [
    "--max-nodes", str(FUZZ_LIMITS.max_nodes),
    "--max-steps", str(FUZZ_LIMITS.max_steps),
    "--max-depth", str(FUZZ_LIMITS.max_depth),
]  # fmt: skip


def make_case(kind: str, seed: int) -> str | bytes:
    c = RandomChoices(seed)
    if kind.startswith("spec:"):
        return Mutator(c).mutate(spec_text(ROOT / "specs" / kind[5:]))
    if kind == "spec-bytes":
        path = c.pick(SPEC_FILES)
        text = Mutator(c).mutate(spec_text(path), 0, 2)
        return Mutator(c).mutate_bytes(text.encode("utf-8", "surrogatepass"))
    if kind == "tokens":
        return TokenStream(c).program()
    if kind == "generated-ok":
        return ProgramGen(c, ok=True).program()
    if kind == "generated-bad":
        return ProgramGen(c, ok=False).program()
    if kind == "hostile":
        return HostileGen(c).program()
    return Mutator(c).mutate(ProgramGen(c, ok=c.chance(0.6)).program(), 0, 3)


def run_case(case: str | bytes, tmpdir: str, passes: bool) -> str:
    """'ok', 'error' (a clean UdnetError) or raises."""
    if isinstance(case, bytes):
        from udnet.cli import main

        path = os.path.join(tmpdir, "case.ud")
        with open(path, "wb") as f:
            f.write(case)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["check", path, *LIMIT_FLAGS])
        text = err.getvalue()
        if rc not in (0, 1, 2) or "Traceback" in text:
            raise AssertionError(f"exit {rc}: {text[:300]}")
        if rc == 1 and not text.startswith(f"{path}:"):
            raise AssertionError(f"unlocated error: {text[:300]}")
        return "ok" if rc == 0 else "error"
    result = check_program(Source("<fuzz>", case), FUZZ_LIMITS, emit=True)
    if passes and not isinstance(result, Exception):  # what `udnet compile` does: passes, then emit
        from udnet.backends.pytorch import emit_module
        from udnet.pipeline import optimize

        optimize(result)
        compile(emit_module(result, "fuzz.ud"), "<emitted model.py>", "exec")
    return "error" if isinstance(result, Exception) else "ok"


def where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in tb if "/udnet/" in f.filename] or tb
    f = inside[-1]
    return f"{Path(f.filename).name}:{f.lineno} in {f.name}"


def run(start: int, count: int, seed: int, passes: bool, slow: float) -> dict:
    outcomes: Counter = Counter()
    failures: dict[str, dict] = {}
    slowest: list[tuple[float, str, int]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for i in range(start, start + count):
            kind = KINDS[i % len(KINDS)]
            case_seed = seed * 1_000_003 + i
            case = make_case(kind, case_seed)
            t = time.perf_counter()
            try:
                outcome = run_case(case, tmpdir, passes)
            except Exception as exc:  # noqa: BLE001 - every escape is a finding
                outcome = "FAIL"
                key = f"{type(exc).__name__} at {where(exc)}"
                entry = failures.setdefault(
                    key, {"count": 0, "message": str(exc)[:300], "kind": kind, "seed": case_seed, "case": None}
                )
                entry["count"] += 1
                shown = case if isinstance(case, str) else case.decode("utf-8", "backslashreplace")
                if entry["case"] is None or len(shown) < len(entry["case"]):
                    entry.update(case=shown, kind=kind, seed=case_seed, traceback=traceback.format_exc()[-2000:])
            dt = time.perf_counter() - t
            outcomes[(kind, outcome)] += 1
            if dt > slow:
                slowest.append((dt, kind, case_seed))
    return {
        "outcomes": {f"{k}|{o}": n for (k, o), n in outcomes.items()},
        "failures": failures,
        "slow": sorted(slowest, reverse=True)[:20],
    }


def merge(parts: list[dict]) -> dict:
    total: dict = {"outcomes": Counter(), "failures": {}, "slow": []}
    for p in parts:
        total["outcomes"].update(p["outcomes"])
        for key, f in p["failures"].items():
            have = total["failures"].get(key)
            if have is None:
                total["failures"][key] = f
            else:
                have["count"] += f["count"]
                if len(f["case"]) < len(have["case"]):
                    have.update({k: v for k, v in f.items() if k != "count"})
        total["slow"] += p["slow"]
    total["slow"] = sorted(total["slow"], reverse=True)[:20]
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (each runs a share of the cases)")
    ap.add_argument("--passes", action="store_true", help="also run the optimisation passes on each IR")
    ap.add_argument("--slow", type=float, default=2.0, help="report cases slower than this many seconds")
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # worker mode
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.json:
        print(json.dumps(run(args.start, args.cases, args.seed, args.passes, args.slow)))
        return 0
    if args.jobs > 1:
        share = -(-args.cases // args.jobs)
        procs = []
        for j in range(args.jobs):
            n = min(share, args.cases - j * share)
            if n <= 0:
                break
            cmd = [
                sys.executable,
                __file__,
                "--json",
                "--start",
                str(j * share),
                "--cases",
                str(n),
                "--seed",
                str(args.seed),
                "--slow",
                str(args.slow),
            ] + (["--passes"] if args.passes else [])
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        parts = []
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:  # a worker that died (segfault, out of memory) is a finding too
                print(f"worker exited with status {p.returncode}", file=sys.stderr)
                return 1
            parts.append(json.loads(out))
        result = merge(parts)
    else:
        result = merge([run(0, args.cases, args.seed, args.passes, args.slow)])
    elapsed = time.perf_counter() - t0

    outcomes = result["outcomes"]
    total = sum(outcomes.values())
    failed = sum(n for k, n in outcomes.items() if k.endswith("|FAIL"))
    print(f"{total:,} cases in {elapsed:.1f} s (seed {args.seed}, {args.jobs} job(s)): {failed} failures")
    print(f"  {'kind':<24} {'ok':>7} {'error':>7} {'FAIL':>6}")
    for kind in KINDS:
        row = [outcomes.get(f"{kind}|{o}", 0) for o in ("ok", "error", "FAIL")]
        print(f"  {kind:<24} {row[0]:>7} {row[1]:>7} {row[2]:>6}")
    for key, f in sorted(result["failures"].items(), key=lambda kv: -kv[1]["count"]):
        print(f"\nFAIL x{f['count']}: {key}\n  {f['message']}\n  smallest: kind {f['kind']}, seed {f['seed']}")
        print("  " + f["case"][:1500].replace("\n", "\n  "))
        print(f.get("traceback", ""))
    if result["slow"]:
        print(f"\ncases slower than {args.slow} s:")
        for dt, kind, seed in result["slow"]:
            print(f"  {dt:6.2f} s  {kind} seed {seed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
