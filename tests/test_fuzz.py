"""Fuzzing: broken and hostile specs only ever produce a located UdnetError.

Every spec in specs/ is mutated by token and by line (tokens and lines deleted,
duplicated and swapped, numbers changed to 0, negative, huge and float values, names
swapped, control characters, unicode and invalid UTF-8 inserted); random streams of
grammar tokens, damaged generated programs and programs written to run away (deep
nesting, exponential recursion, growing values, huge sizes; tests/programs.py) join them. For
each input, ``build_ir`` must return a verified IR or raise a ``UdnetError`` located at
``file:line:col``; an IR must go through the PyTorch emitter, whose output must compile.
Raw bytes go through the command line, which must exit 1 or 2 without a traceback.

This is a fixed (derandomized) sample of a little over 2,000 cases; the long run with
thousands more, collecting every failure, is benchmarks/fuzz_long.py.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from programs import (
    FUZZ_LIMITS,
    LOCATED,
    SPEC_FILES,
    check_program,
    hostile_programs,
    mutated_generated_programs,
    mutated_spec_bytes,
    mutated_specs,
    token_streams,
)

from udnet.cli import main
from udnet.errors import Source

COMMON = {
    "deadline": None,
    "derandomize": True,  # a fixed sample in CI; benchmarks/fuzz_long.py hunts with fresh seeds
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}

#: Cases run per test in this session (the last test checks the total).
RUN: Counter = Counter()
PLANNED = {"spec": 6 * 120, "bytes": 160, "tokens": 600, "generated": 450, "hostile": 250}

LIMIT_FLAGS = ["--max-nodes", str(FUZZ_LIMITS.max_nodes), "--max-steps", str(FUZZ_LIMITS.max_steps)]


def test_every_spec_is_fuzzed():
    assert len(SPEC_FILES) >= 6, SPEC_FILES
    for path in SPEC_FILES:  # unmutated, each compiles (so mutations start from working specs)
        assert not isinstance(check_program(Source(str(path), path.read_text()), emit=False), Exception)


@pytest.mark.parametrize("spec", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_mutated_spec(spec: Path):
    @settings(max_examples=PLANNED["spec"] // len(SPEC_FILES), **COMMON)
    @given(mutated_specs(spec))
    def run(text: str):
        RUN["spec"] += 1
        check_program(Source(spec.name, text), FUZZ_LIMITS, emit=True)

    run()


@settings(max_examples=PLANNED["tokens"], **COMMON)
@given(token_streams())
def test_random_token_streams(text: str):
    RUN["tokens"] += 1
    check_program(Source("tokens.ud", text), FUZZ_LIMITS, emit=True)


@settings(max_examples=PLANNED["generated"], **COMMON)
@given(mutated_generated_programs())
def test_mutated_generated_programs(text: str):
    RUN["generated"] += 1
    check_program(Source("generated.ud", text), FUZZ_LIMITS, emit=True)


@settings(max_examples=PLANNED["hostile"], **COMMON)
@given(hostile_programs())
def test_hostile_programs(text: str):
    """Deep nesting, exponential recursion, growing values, huge sizes, odd labels."""
    RUN["hostile"] += 1
    check_program(Source("hostile.ud", text), FUZZ_LIMITS, emit=True)


@settings(max_examples=PLANNED["bytes"], **COMMON)
@given(mutated_spec_bytes())
def test_mutated_bytes_through_the_command_line(case):
    """Invalid UTF-8, NUL, BOM and random bytes in a spec file: exit 1 (located) or 2, no traceback."""
    RUN["bytes"] += 1
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["check", str(path), *LIMIT_FLAGS])
    text = err.getvalue()
    assert "Traceback" not in text
    assert rc in (0, 1), text  # a spec file that exists is never a usage error
    if rc == 1:
        assert text.startswith(f"{path}:") and LOCATED.match(text.splitlines()[0]), text
    else:
        assert out.getvalue().startswith(f"{path}: network ")


def test_fuzz_case_count():
    """The default suite runs at least 2,000 fuzz cases (when the whole module runs)."""
    if set(RUN) != set(PLANNED):
        pytest.skip("only part of the fuzzing module ran")
    assert sum(RUN.values()) >= 2000, RUN
