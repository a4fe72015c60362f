"""Mutation testing of the runtime helpers that an emitted model.py carries.

The code generator copies the helpers (the FractalNet join and its drop-path from
``udnet/backends/pytorch/fractal_join.py``, the shared concat buffer from
``shared_buffer.py``, an op's own helpers such as ``DROP_PATH`` from ``drop_path.py``)
into each model.py as source text, read from their modules without importing them, so
mutmut, which mutates the functions of imported modules, never reaches the copies that
the emitted modules run. This script mutates the code of those texts, one change at a
time, and runs the tests that reach it with the mutated text in every emitted model.py
and in the module's own functions, which its unit tests call:

    .venv/bin/python tools/mutate_runtime.py                # every mutant
    .venv/bin/python tools/mutate_runtime.py JOIN           # the mutants of one helper
    .venv/bin/python tools/mutate_runtime.py --list         # list the mutants, run nothing
    .venv/bin/python tools/mutate_runtime.py --lines 83,96  # only the mutants of these lines

Each mutant runs in a forked child (torch and pytest are imported once, here); it is
killed when a test fails or when it runs past ``--timeout`` times the clean run. The
survivors are printed with their lines; docs/testing.md says why each is equivalent.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import importlib.util
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The helpers under test, and the tests that reach each: the module's own unit tests,
#: and the emitted modules that use it, compared with torch and with the reference
#: interpreter.
TESTS = {
    "JOIN": [
        "tests/test_model_helpers.py::test_join_in_eval_is_the_mean_of_its_inputs",
        "tests/test_model_helpers.py::test_join_in_training_without_drop_path_is_the_mean",
        "tests/test_model_helpers.py::test_local_drop_path_averages_a_nonempty_subset_of_inputs_per_sample",
        "tests/test_model_helpers.py::test_global_drop_path_keeps_only_each_samples_column",
        "tests/test_model_helpers.py::test_drop_path_columns_are_cleared_in_eval_and_local_without_global_drop",
        "tests/test_semantics_reference.py::test_join_eval_is_the_mean_of_its_inputs",
        "tests/test_semantics_reference.py::test_local_drop_path_keeps_each_input_with_probability_one_minus_p",
        "tests/test_semantics_reference.py::test_global_drop_path_keeps_one_column_per_sample",
        "tests/test_semantics_reference.py::test_eval_ignores_drop_path",
        "tests/test_passes.py::test_fractal_column_extracts_the_student_network",
        "tests/test_torch_backend.py::test_drop_path_train_and_eval_semantics",
    ],
    "CONCAT_BUFFER": [
        # The module's own unit tests first (they run each mutant too, see MODULES), less
        # the two that read the file itself, which a mutant leaves as it is.
        "tests/test_shared_buffer.py",
        "--deselect", "tests/test_shared_buffer.py::test_emitted_files_carry_the_module_unchanged",
        "--deselect", "tests/test_shared_buffer.py::test_module_is_ruff_clean_as_emitted_code_is",
        # the fused reader against plain BN-ReLU-conv in float64, chains against naive modules
        "tests/test_passes.py::test_fused_reader_equals_bn_relu_conv_over_the_concatenation",
        "tests/test_passes.py::test_chain_corner_cases_keep_semantics",
        "tests/test_passes.py::test_bn_running_stats_update_once_per_step",
        "tests/test_passes.py::test_eval_mode_copies_no_prefix",
        "tests/test_passes.py::test_second_backward_over_the_same_graph_matches_naive",
        "tests/test_passes.py::test_autocast_eval_runs_chains_with_heads",
        "tests/test_semantics_reference.py::test_training_peak_memory_grows_linearly_with_shared_buffers",
        "tests/test_hardening_runtime.py",
        "tests/test_tensor_boundaries.py",
    ],
    "DROP_PATH": [
        "tests/test_model_helpers.py::test_drop_path_is_the_identity_in_eval_and_with_p_zero",
        "tests/test_model_helpers.py::test_drop_path_in_training_zeroes_samples_and_scales_the_rest",
        "tests/test_op_training.py",
        "tests/test_op_table.py",
    ],
}

#: The module that exposes each helper's text (as the code generator reads it).
HOMES = {
    "JOIN": "udnet.backends.pytorch.runtime",
    "CONCAT_BUFFER": "udnet.backends.pytorch.runtime",
    "DROP_PATH": "udnet.ops.regularise",
}

#: The module each helper's text is read from: a mutant replaces the module's functions
#: too (executed over its namespace), so that its unit tests run the mutant.
MODULES = {
    "JOIN": "udnet.backends.pytorch.fractal_join",
    "CONCAT_BUFFER": "udnet.backends.pytorch.shared_buffer",
    "DROP_PATH": "udnet.backends.pytorch.drop_path",
}

# One change per mutant, as mutmut makes them: each operator for its neighbour.
_SWAP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.And: ast.Or, ast.Or: ast.And,
    ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
}


@dataclass(frozen=True)
class Mutant:
    name: str  # the helper: JOIN, CONCAT_BUFFER
    file: str  # the module its text is read from: fractal_join.py, shared_buffer.py
    line: int  # in that file
    before: str
    after: str
    text: str  # the whole mutated helper text

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.name}): {self.before}  ->  {self.after}"


def _variants(node: ast.AST):
    """Each single-operator change of ``node`` itself (not of its children)."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _SWAP:
                new = copy.deepcopy(node)
                new.ops[i] = _SWAP[type(op)]()
                yield new
    elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in _SWAP:
        new = copy.deepcopy(node)
        new.op = _SWAP[type(node.op)]()
        yield new
    elif isinstance(node, ast.AugAssign):
        if type(node.op) in _SWAP:
            new = copy.deepcopy(node)
            new.op = _SWAP[type(node.op)]()
            yield new
        yield ast.Assign(targets=[copy.deepcopy(node.target)], value=copy.deepcopy(node.value), lineno=0)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        yield copy.deepcopy(node.operand)
    elif isinstance(node, ast.Constant) and type(node.value) in (bool, int, float):
        yield ast.Constant(not node.value if isinstance(node.value, bool) else node.value + 1)


def _offsets(text: str) -> list[int]:
    starts, pos = [], 0
    for line in text.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line)
    return starts


def mutants(name: str, text: str, file: str, first_line: int) -> list[Mutant]:
    starts = _offsets(text)
    out = []
    for node in ast.walk(ast.parse(text)):
        for new in _variants(node):
            lo = starts[node.lineno - 1] + node.col_offset
            hi = starts[node.end_lineno - 1] + node.end_col_offset
            replacement = ast.unparse(ast.fix_missing_locations(new))
            if isinstance(new, ast.expr):
                replacement = f"({replacement})"
            mutated = text[:lo] + replacement + text[hi:]
            ast.parse(mutated)  # a mutant is always valid Python
            before = " ".join(text[lo:hi].split())
            out.append(Mutant(name, file, first_line + node.lineno - 1, before, replacement, mutated))
    return sorted(out, key=lambda m: (m.line, m.before, m.after))


def helper_strings() -> dict[str, tuple[str, str, int]]:
    """The helpers under test: name -> (text, the file it is read from, the line of that
    file where the text's first line is). The files are found, not imported: importing
    them would import torch before ``--list`` needs it."""
    found = {}
    for name in TESTS:
        text = getattr(importlib.import_module(HOMES[name]), name)
        file = Path(importlib.util.find_spec(MODULES[name]).origin)
        body = text.lstrip("\n")
        source = file.read_text(encoding="utf-8")
        at = source.find(body)
        if at < 0:
            raise SystemExit(f"{HOMES[name]}.{name}: its text is not in {file}")
        found[name] = (text, file.name, source.count("\n", 0, at) + 1 - (len(text) - len(body)))
    return found


def _put_in_place(name: str, text: str) -> None:
    """Make every emitted model.py carry ``text`` for the helper ``name``, the module that
    exposes it say it too, and its own module's functions be the mutant's."""
    from udnet.backends.pytorch.codegen import Emitter

    home = importlib.import_module(HOMES[name])
    original = getattr(home, name)
    setattr(home, name, text)
    helpers = Emitter._helpers
    Emitter._helpers = lambda self: [text if h == original else h for h in helpers(self)]
    module = importlib.import_module(MODULES[name])
    exec(compile(text, module.__file__, "exec"), module.__dict__)


def run_tests(tests: list[str], replace: tuple[str, str] | None, timeout: float) -> tuple[int | None, float]:
    """pytest's exit status over ``tests`` in a forked child (None past the timeout), and
    the seconds it took; ``replace`` = (helper name, mutated text)."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest

            if replace is not None:
                _put_in_place(*replace)
            code = int(pytest.main([*tests, "-x", "-q", "-p", "no:cacheprovider"]))
        except BaseException:
            code = 99
        os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - start
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, time.monotonic() - start
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help=f"helpers to mutate (default: {', '.join(TESTS)})")
    ap.add_argument("--list", action="store_true", help="list the mutants and run nothing")
    ap.add_argument("--lines", help="only the mutants of these lines of the helpers' files (comma-separated)")
    ap.add_argument("--timeout", type=float, default=5.0, help="a mutant's time limit, in clean runs")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    strings = helper_strings()
    names = args.names or list(TESTS)
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        ap.error(f"unknown helpers {unknown}; known: {', '.join(TESTS)}")
    lines = {int(v) for v in args.lines.split(",")} if args.lines else set()
    if args.list:
        for name in names:
            for m in mutants(name, *strings[name]):
                if not lines or m.line in lines:
                    print(m)
        return 0
    import torch  # noqa: F401  (imported once, before forking)

    total = {"killed": 0, "timeout": 0, "survived": 0}
    survivors = []
    for name in names:
        clean, seconds = run_tests(TESTS[name], None, float("inf"))
        if clean != 0:
            print(f"{name}: the clean run fails (pytest exit status {clean}); fix that first")
            return 1
        found = [m for m in mutants(name, *strings[name]) if not lines or m.line in lines]
        print(f"{name}: {len(found)} mutants; the clean run takes {seconds:.0f} s", flush=True)
        counts = {"killed": 0, "timeout": 0, "survived": 0}
        for i, m in enumerate(found, 1):
            code, _ = run_tests(TESTS[name], (name, m.text), args.timeout * seconds + 10)
            verdict = "timeout" if code is None else "survived" if code == 0 else "killed"
            counts[verdict] += 1
            if verdict == "survived":
                survivors.append(m)
            print(f"  [{i}/{len(found)}] {verdict:8} {m}", flush=True)
        print(f"{name}: {counts}", flush=True)
        for k, v in counts.items():
            total[k] += v
    caught = total["killed"] + total["timeout"]
    n = caught + total["survived"]
    print(f"\nscore: {caught}/{n} = {100 * caught / max(n, 1):.1f} % ({total})")
    for m in survivors:
        print(f"survived: {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
