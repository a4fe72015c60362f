"""The long fuzz run: thousands of mutated, random and generated specs, every failure collected.

The default test suite runs a fixed (derandomized) sample of the same generators
(tests/test_fuzz.py); this script runs as many cases as you like from a seed and, unlike
a Hypothesis test, does not stop at the first failure: it groups failures by exception
and place and prints the smallest input of each group.

    python benchmarks/fuzz_long.py                      # 5,000 cases
    python benchmarks/fuzz_long.py --cases 50000 --jobs 2 --seed 7
    python benchmarks/fuzz_long.py --seconds 300 --kinds names,extremes,membership
    python benchmarks/fuzz_long.py --passes             # also run the optimisation passes

A damaged-spec case passes when ``build_ir`` returns a verified IR whose emitted PyTorch
source compiles, or raises a located ``UdnetError``; raw-bytes cases go through the
command line and must exit 0, 1 or 2 with no traceback. The kinds from
tests/fuzz_strategies.py check more: ``names``, ``extremes``, ``identity`` and
``run-generated`` import and run the emitted module (parameter count, output shape,
finite values), ``membership`` asserts that ``in`` agrees with ``==``, ``labels`` bounds
the characters the parser reads. Anything else is a failure, and so is a case that runs
longer than --case-timeout seconds (it is killed: udnet must stop quickly); cases slower
than --slow seconds are listed. Cases run in worker processes.
Exit status: 0 when no case failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import selectors
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

from fuzz_strategies import GENERATORS, check_label_work, check_membership, check_runs  # noqa: E402

from udnet.errors import Source

KINDS = (
    [f"spec:{p.name}" for p in SPEC_FILES]
    + [
        "spec-bytes",
        "tokens",
        "generated-ok",
        "generated-bad",
        "generated-mutated",
        "hostile",
    ]
    + list(GENERATORS)
)
#: The oracles of the kinds from tests/fuzz_strategies.py.
ORACLES = {
    "names": lambda text: check_runs(text, "names.ud"),
    "extremes": lambda text: check_runs(text, "extremes.ud", train=True),
    "identity": lambda text: check_runs(text, "identity.ud", train=True),
    "run-generated": lambda text: check_runs(text, "generated.ud"),
    "membership": check_membership,
    "labels": check_label_work,
}
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
    if kind in GENERATORS:
        return GENERATORS[kind](c)
    return Mutator(c).mutate(ProgramGen(c, ok=c.chance(0.6)).program(), 0, 3)


def run_case(case: str | bytes, tmpdir: str, passes: bool, kind: str = "") -> str:
    """'ok', 'error' (a clean UdnetError) or raises."""
    if kind in ORACLES:
        result = ORACLES[kind](case)
        return "error" if isinstance(result, Exception) else "ok"
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
        from udnet.backends.pytorch.codegen import emit_module
        from udnet.pipeline import optimize

        optimize(result)
        compile(emit_module(result, "fuzz.ud"), "<emitted model.py>", "exec")
    return "error" if isinstance(result, Exception) else "ok"


def where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in tb if "/udnet/" in f.filename or f.filename.startswith("<udnet-generated")] or tb
    f = inside[-1]
    if f.filename.startswith("<udnet-generated"):  # one file name per emitted module: group by function
        return f"the emitted module, in {f.name}"
    return f"{Path(f.filename).name}:{f.lineno} in {f.name}"


def work(start: int, count: int, seed: int, passes: bool, kinds: list[str], deadline: float) -> None:
    """Worker: run cases start .. start + count - 1, one JSON line before and after each."""
    with tempfile.TemporaryDirectory() as tmpdir:
        for i in range(start, start + count):
            if time.time() > deadline:
                break
            kind = kinds[i % len(kinds)]
            case_seed = seed * 1_000_003 + i
            print(json.dumps({"begin": i}), flush=True)
            t = time.perf_counter()
            fail = None
            try:
                case = make_case(kind, case_seed)
                outcome = run_case(case, tmpdir, passes, kind)
            except Exception as exc:  # noqa: BLE001 - every escape is a finding
                outcome = "FAIL"
                key = f"{type(exc).__name__} at {where(exc)}"
                if kind in ORACLES:  # failures of the emitted module all arise in torch: tell them apart by message
                    key += ": " + re.sub(r"\d+", "#", str(exc).split("\n")[0])[:90]
                fail = {
                    "key": key,
                    "message": str(exc)[:300],
                    "traceback": traceback.format_exc()[-2000:],
                }
            dt = time.perf_counter() - t
            print(
                json.dumps({"end": i, "kind": kind, "seed": case_seed, "outcome": outcome, "dt": dt, "fail": fail}),
                flush=True,
            )


def shown(kind: str, case_seed: int) -> str:
    try:
        case = make_case(kind, case_seed)
    except Exception as exc:  # noqa: BLE001
        return f"<the generator failed: {exc}>"
    return case if isinstance(case, str) else case.decode("utf-8", "backslashreplace")


def run(args, kinds: list[str]) -> dict:
    """Parent: share the cases among --jobs workers; a worker silent for longer than
    --case-timeout is killed, its case recorded as a failure, and a new worker goes on."""
    outcomes: Counter = Counter()
    failures: dict[str, dict] = {}
    slowest: list[tuple[float, str, int]] = []
    deadline = time.time() + args.seconds if args.seconds else float("inf")
    share = -(-args.cases // args.jobs)
    todo = [(j * share, min(share, args.cases - j * share)) for j in range(args.jobs)]
    todo = [(a, n) for a, n in todo if n > 0]
    sel = selectors.DefaultSelector()
    live: dict = {}  # proc -> {"end": last index, "current": index or None, "since": time, "buf": str}

    def spawn(a: int, end: int) -> None:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--start",
            str(a),
            "--cases",
            str(end - a),
            "--seed",
            str(args.seed),
            "--kinds",
            ",".join(kinds),
            "--deadline",
            repr(deadline),
        ]
        cmd += ["--passes"] if args.passes else []
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        live[proc] = {"end": end, "current": None, "since": time.time(), "buf": b""}
        sel.register(proc.stdout, selectors.EVENT_READ, proc)

    def record(kind: str, case_seed: int, outcome: str, fail: dict | None) -> None:
        outcomes[(kind, outcome)] += 1
        if fail is None:
            return
        entry = failures.setdefault(
            fail["key"], {"count": 0, "message": fail["message"], "kind": kind, "seed": case_seed, "case": None}
        )
        entry["count"] += 1
        case = shown(kind, case_seed)
        if entry["case"] is None or len(case) < len(entry["case"]):
            entry.update(
                case=case, kind=kind, seed=case_seed, message=fail["message"], traceback=fail.get("traceback", "")
            )

    for a, n in todo:
        spawn(a, a + n)
    while live:
        for key, _ in sel.select(timeout=1.0):
            proc = key.data
            st = live[proc]
            data = os.read(proc.stdout.fileno(), 1 << 16)  # raw reads: no line left behind in a buffer
            if not data:  # the worker finished (or died)
                sel.unregister(proc.stdout)
                proc.wait()
                del live[proc]
                if proc.returncode != 0 and st["current"] is not None:  # died inside a case: a finding
                    i = st["current"]
                    kind = kinds[i % len(kinds)]
                    record(
                        kind,
                        args.seed * 1_000_003 + i,
                        "FAIL",
                        {"key": f"worker exited with status {proc.returncode}", "message": "crash"},
                    )
                    if i + 1 < st["end"]:
                        spawn(i + 1, st["end"])
                continue
            *lines, st["buf"] = (st["buf"] + data).split(b"\n")
            for line in lines:
                msg = json.loads(line)
                if "begin" in msg:
                    st["current"], st["since"] = msg["begin"], time.time()
                else:
                    st["current"] = None
                    record(msg["kind"], msg["seed"], msg["outcome"], msg["fail"])
                    if msg["dt"] > args.slow:
                        slowest.append((msg["dt"], msg["kind"], msg["seed"]))
        now = time.time()
        for proc, st in list(live.items()):
            if st["current"] is not None and now - st["since"] > args.case_timeout:
                i = st["current"]
                kind = kinds[i % len(kinds)]
                proc.kill()
                proc.wait()
                sel.unregister(proc.stdout)
                del live[proc]
                record(
                    kind,
                    args.seed * 1_000_003 + i,
                    "FAIL",
                    {
                        "key": f"Timeout: a {kind} case ran longer than {args.case_timeout:g} s",
                        "message": "killed: unbounded work (a hang, or super-linear time)",
                    },
                )
                slowest.append((now - st["since"], kind, args.seed * 1_000_003 + i))
                if i + 1 < st["end"]:
                    spawn(i + 1, st["end"])
    return {"outcomes": outcomes, "failures": failures, "slow": sorted(slowest, reverse=True)[:20]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=0, help="stop starting cases after this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (each runs a share of the cases)")
    ap.add_argument("--kinds", default="", help=f"comma-separated kinds to run (default: all): {', '.join(KINDS)}")
    ap.add_argument("--passes", action="store_true", help="also run the optimisation passes on each IR")
    ap.add_argument("--slow", type=float, default=2.0, help="list cases slower than this many seconds")
    ap.add_argument("--case-timeout", type=float, default=60.0, help="kill a case after this many seconds: a failure")
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=float("inf"), help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k] or KINDS
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")

    if args.worker:
        work(args.start, args.cases, args.seed, args.passes, kinds, args.deadline)
        return 0
    t0 = time.perf_counter()
    result = run(args, kinds)
    elapsed = time.perf_counter() - t0

    outcomes = result["outcomes"]
    total = sum(outcomes.values())
    failed = sum(n for (k, o), n in outcomes.items() if o == "FAIL")
    print(f"{total:,} cases in {elapsed:.1f} s (seed {args.seed}, {args.jobs} job(s)): {failed} failures")
    print(f"  {'kind':<24} {'ok':>7} {'error':>7} {'FAIL':>6}")
    for kind in kinds:
        row = [outcomes.get((kind, o), 0) for o in ("ok", "error", "FAIL")]
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
