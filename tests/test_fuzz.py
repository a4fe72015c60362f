"""Fuzzing: broken and hostile specs only ever produce a located UdnetError.

Every spec in specs/ is mutated by token and by line (tokens and lines deleted,
duplicated and swapped, numbers changed to 0, negative, huge and float values, names
swapped, control characters, unicode and invalid UTF-8 inserted); random streams of
grammar tokens, damaged generated programs and programs written to run away (deep
nesting, exponential recursion, growing values, huge sizes; tests/programs.py) join them. For
each input, ``build_ir`` must return a verified IR or raise a ``UdnetError`` located at
``file:line:col``; an IR must go through the PyTorch emitter, whose output must compile.
Raw bytes go through the command line, which must exit 1 or 2 without a traceback.

Specs that udnet accepts are checked for what it made of them (tests/fuzz_strategies.py):
labels and block names drawn from the emitter's own generated names, numeric extremes
of every op argument, identity networks and generated programs must give an emitted
module that imports, has the IR's parameter count and runs on a tiny input (finite
values, the IR's output shape); ``in`` must agree with ``==``; labels full of
interpolations must cost a bounded amount of parsing.

This is a fixed (derandomized) sample of about 2,750 cases; the long run with
thousands more, collecting every failure, is benchmarks/fuzz_long.py.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
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

from fuzz_strategies import (
    MembershipGen,
    RandomChoices,
    check_label_work,
    check_membership,
    check_runs,
    extreme_arg_programs,
    identity_programs,
    label_programs,
    membership_programs,
    name_clash_programs,
)
from programs import wellformed_programs

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
PLANNED = {
    "spec": 6 * 120, "bytes": 160, "tokens": 600, "generated": 450, "hostile": 250,
    "names": 80, "extremes": 120, "identity": 40, "membership": 150, "labels": 100, "run": 40,
}  # fmt: skip

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


@settings(max_examples=PLANNED["names"], **COMMON)
@given(name_clash_programs())
def test_generated_names_do_not_collide(text: str):
    """Labels, blocks, parameters and variables named like what the emitter invents
    (``self.join``, slot parameters such as ``conv1_out``, loop counts and slice bounds
    kept on ``self``, ``relu_1``, class names): the module still imports and runs."""
    RUN["names"] += 1
    check_runs(text, "names.ud")


@settings(max_examples=PLANNED["extremes"], **COMMON)
@given(extreme_arg_programs())
def test_extreme_op_arguments(text: str):
    """Every op argument at a numeric extreme: a located error at check time, or a module
    that runs (eval and training mode) with finite results."""
    RUN["extremes"] += 1
    check_runs(text, "extremes.ud", train=True)


@settings(max_examples=PLANNED["identity"], **COMMON)
@given(identity_programs())
def test_identity_networks_run(text: str):
    """Networks whose output is their input (identity, empty bodies, join(x), pruned branches)."""
    RUN["identity"] += 1
    check_runs(text, "identity.ud", train=True)


@settings(max_examples=PLANNED["run"], **COMMON)
@given(wellformed_programs())
def test_emitted_module_runs(text: str):
    """A sample of generated programs: the emitted module is imported and run, not only compiled."""
    RUN["run"] += 1
    check_runs(text, "generated.ud")


@settings(max_examples=PLANNED["membership"], **COMMON)
@given(membership_programs(huge=False))
def test_membership_agrees_with_equality(text: str):
    """``a in [b, c]`` is ``a == b or a == c``, ``[a] == [b]`` is ``a == b``, and a range
    holds what the list of its integers holds (booleans are not numbers)."""
    RUN["membership"] += 1
    check_membership(text)


def test_membership_in_huge_ranges_is_answered_without_walking_them():
    """Membership in ranges of up to 2**62 integers, for every kind of value: answered
    without walking the range (which would never finish). The cases run in a child
    process so that a hang fails the test instead of stalling the suite; the limit is a
    safety net far above the milliseconds the cases take."""
    texts = [MembershipGen(RandomChoices(seed)).program() for seed in range(40)]
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from fuzz_strategies import check_membership\n"
        "for text in sys.argv[1:]:\n"
        "    check_membership(text)\n"
    )
    root = Path(__file__).resolve().parents[1]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *texts], cwd=root, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("membership in a huge range did not finish: the range is walked item by item")
    assert proc.returncode == 0, proc.stderr[-3000:]


@settings(max_examples=PLANNED["labels"], **COMMON)
@given(label_programs())
def test_label_interpolation_work_is_bounded(text: str):
    """Many interpolations in a label, far to the right or on many lines: the parser reads
    a bounded multiple of the spec (no re-reading of everything before each ``{...}``)."""
    RUN["labels"] += 1
    check_label_work(text)


def test_fuzz_case_count():
    """The default suite runs at least 2,000 fuzz cases (when the whole module runs)."""
    if set(RUN) != set(PLANNED):
        pytest.skip("only part of the fuzzing module ran")
    assert sum(RUN.values()) >= 2000, RUN
