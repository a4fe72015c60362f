"""The pass manager: ordered passes over the IR, each re-verified, each switchable.

A pass is a function ``run(ir, options) -> Report`` that rewrites the IR in place.
``verify`` runs after every pass, so a broken pass is caught where it happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from udnet.errors import Span
from udnet.ir.graph import IR
from udnet.ir.verify import verify


@dataclass
class Warning_:
    span: Span | None
    message: str

    def format(self) -> str:
        from udnet.errors import _located

        return _located(self.span, "warning", self.message)


@dataclass
class Report:
    """What a pass changed, for ``udnet compile -v``."""

    name: str
    lines: list[str] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)


@dataclass
class Options:
    fractal_column: int | None = None


@dataclass(frozen=True)
class Pass:
    name: str  # also the flag: --no-<name>; what the pass does is its module's docstring
    run: Callable[[IR, Options], Report]


def registry() -> list[Pass]:
    from udnet.passes import prune, share_concat

    return [Pass("prune", prune.run), Pass("share-concat", share_concat.run)]


def run_passes(ir: IR, disabled: set[str] = frozenset(), options: Options | None = None) -> list[Report]:
    options = options or Options()
    known = {p.name for p in registry()}
    unknown = set(disabled) - known
    if unknown:
        raise ValueError(f"unknown passes: {sorted(unknown)}")
    reports = []
    for p in registry():
        if p.name in disabled:
            continue
        report = p.run(ir, options)
        verify(ir, f"pass {p.name}")
        reports.append(report)
    return reports
