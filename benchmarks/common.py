"""Timing helpers for the benchmarks: interleaved runs, medians, side-by-side ratios.

These machines are noisy, so candidates are timed in alternation within one process
and compared as ratios of medians rather than as absolute numbers.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def report(title: str, times: dict[str, list[float]], baseline: str) -> list[str]:
    base = statistics.median(times[baseline])
    lines = [title, f"  {'candidate':<28} {'median ms':>10} {'min ms':>9} {'ratio':>7}"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"  {name:<28} {med * 1e3:>10.1f} {min(ts) * 1e3:>9.1f} {med / base:>7.3f}")
    return lines


def proc_status(key: str) -> int:
    """A byte count from /proc/self/status (``VmRSS``, ``VmHWM``: the peak resident set)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)
