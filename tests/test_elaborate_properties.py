"""Property tests over generated programs.

The generator (``ProgramGen`` in tests/programs.py, shared with the fuzzing suite) writes
random spec source text: blocks that call earlier blocks, recursive (fractal) blocks,
``for`` loops, ``if``/``else``, labelled groups, residual sums (with a projection where the
shape changes), channel concats, highway gates, fractal joins and channel slices, with
random widths, strides and input sizes.

* The well-formed generator guards every shape-dependent step (``if height >= 2``,
  projections, widths read from ``channels``), so all of its programs must elaborate.
* The ill-formed generator drops those guards and projections, picks arbitrary slice
  bounds, kernels, labels and argument counts; the mutator damages well-formed text.

The property for a well-formed program: ``build_ir(text)`` returns an IR that passes
``verify`` and whose emitted PyTorch source compiles (a ``UdnetError`` fails the test).
For ill-formed and mutated programs: such an IR or a located ``UdnetError``; never any
other exception. The fuzzing suite (tests/test_fuzz.py) applies the same property to
mutated specs and random token streams.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from programs import check_program, illformed_programs, mutated_programs, sample, wellformed_programs

from udnet.errors import UdnetError

COMMON = {
    "deadline": None,
    "derandomize": True,  # a fixed sample in CI; run with more examples locally to hunt
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "database": None,
}


@settings(max_examples=250, **COMMON)
@given(wellformed_programs())
def test_wellformed_programs_elaborate(text):
    """The well-formed generator means to write valid programs: an error is a bug."""
    result = check_program(text, emit=True)
    assert not isinstance(result, UdnetError), result.format()


@settings(max_examples=250, **COMMON)
@given(illformed_programs())
def test_illformed_programs_fail_cleanly(text):
    check_program(text, emit=True)


@settings(max_examples=250, **COMMON)
@given(mutated_programs())
def test_mutated_programs_fail_cleanly(text):
    check_program(text, emit=True)


_sample = sample


def test_wellformed_generator_always_succeeds():
    """Every program of a fixed sample of the well-formed generator elaborates."""
    results = [check_program(t) for t in _sample(ok=True)]
    failures = [r for r in results if isinstance(r, UdnetError)]
    assert not failures, Counter(f.message for f in failures).most_common(5)
    # ... and the sample really exercises the connection kinds the generator writes.
    ops = Counter(d["op"] for ir in results if not isinstance(ir, UdnetError) for _, d in ir.nodes(data=True))
    for op in ("conv", "add", "concat", "gate", "join", "slice"):
        assert ops[op] > 0, ops


def test_illformed_generator_fails_often():
    """The ill-formed generator does produce errors (and still only UdnetError)."""
    results = [check_program(t) for t in _sample(ok=False)]
    assert sum(isinstance(r, UdnetError) for r in results) >= len(results) // 4
