"""Runaway and hostile specs stop quickly, each at a documented limit (docs/limits.md)
whose message names the limit and how to raise it.

Every case runs through the command line in-process and must finish in well under
5 seconds (the guard is generous: the real times are a fraction of it).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from dataclasses import fields
from pathlib import Path

import pytest

from udnet.cli import COMMANDS, main
from udnet.errors import Source, UdnetError
from udnet.limits import Limits
from udnet.pipeline import build_ir

ROOT = Path(__file__).resolve().parents[1]
FRACTAL = ROOT / "specs" / "fractal.ud"
NET = "network N(input = [3, 8, 8]) {{\n    {}\n}}\n"
# The limits must stop a runaway quickly. What is bounded is the CPU time this process spends
# (time.process_time), not wall-clock time: on a loaded machine wall time says more about the
# neighbours than about udnet. A runaway spec would take minutes of CPU, not seconds.
SECONDS = 5.0


def run(*args: str) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    t = time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue(), time.process_time() - t


def check_spec(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str, float]:
    path = tmp_path / "spec.ud"
    path.write_text(text, encoding="utf-8")
    return run("check", str(path), *args)


def assert_limit(rc: int, err: str, elapsed: float, message: str, flag: str | None) -> None:
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    assert rc == 1, err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert re.match(r"^.+:\d+:\d+: error: ", first), err
    assert message in first, err
    if flag is not None:  # the message names the limit's flag, the hint says how to raise it
        assert flag in first, err
        assert re.search(rf"raise the limit with {flag}", err), err
    assert len(err) < 4000, "a runaway spec must not produce a runaway message"


# ---- item 2 of the robustness issue: the four named runaways ----


def test_exponential_recursion_fractal_c40():
    """FractalNet with C = 40 would have 2**40 conv units per block: the node limit stops it."""
    rc, _, err, elapsed = run("check", str(FRACTAL), "-D", "C=40")
    assert_limit(rc, err, elapsed, f"the network exceeds the limit of {Limits().max_nodes:,} IR nodes", "--max-nodes")


def test_100000_layer_loop(tmp_path):
    rc, _, err, elapsed = check_spec(tmp_path, NET.format("for i in 1..100000 {\n        layer{i}: relu\n    }"))
    assert_limit(rc, err, elapsed, "IR nodes", "--max-nodes")


def test_billion_iteration_loop(tmp_path):
    """A loop that builds nothing still stops: statements and iterations are counted."""
    rc, _, err, elapsed = check_spec(tmp_path, NET.format("for i in 1..1000000000 {\n        n = i\n    }"))
    assert_limit(rc, err, elapsed, f"exceeds the limit of {Limits().max_steps:,} steps", "--max-steps")


def test_10_mb_spec(tmp_path):
    text = "network N(input = [3, 8, 8]) {\n" + "    relu\n" * 1_200_000 + "}\n"
    assert len(text) > 10_000_000
    rc, _, err, elapsed = check_spec(tmp_path, text)
    assert_limit(rc, err, elapsed, f"more than the limit of {Limits().max_source_bytes:,} bytes", "--max-source-bytes")


def test_10_mb_spec_on_one_line(tmp_path):
    """The error quotes a window of the line, not ten megabytes of it."""
    rc, _, err, elapsed = check_spec(tmp_path, "network N(input = [3, 8, 8]) { " + "relu; " * 1_800_000 + "}")
    assert_limit(rc, err, elapsed, "--max-source-bytes", "--max-source-bytes")


def test_10_mb_spec_through_the_api():
    t = time.process_time()
    with pytest.raises(UdnetError, match="more than the limit of"):
        build_ir(Source("big.ud", "network N(input = [3, 8, 8]) {\n" + "    relu\n" * 1_200_000 + "}\n"))
    assert time.process_time() - t < SECONDS


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_file():
    """Reading stops at a cap: /dev/zero as a spec is an error, not an exhausted memory."""
    rc, _, err, elapsed = run("check", "/dev/zero")
    assert_limit(rc, err, elapsed, "more than the limit of", "--max-source-bytes")


DEEP = 100_000
NESTING = {
    "parentheses": NET.format("w = " + "(" * DEEP + "1" + ")" * DEEP),
    "list-brackets": NET.format("w = " + "[" * DEEP + "1" + "]" * DEEP),
    "groups": NET.format("g: {" * 20_000 + "relu" + "}" * 20_000),
    "ifs": NET.format("if true { " * 20_000 + "relu" + " }" * 20_000),
    "unary-minus": NET.format("w = " + "-" * DEEP + "1"),
    "not": NET.format("b = " + "not " * 50_000 + "true"),
    # chains nest without brackets: the parser sees them whole, so they are shorter here
    "else-if-chain": NET.format(" else ".join(["if false { relu }"] * 2_000) + " else { relu }"),
    "pipe-chain": NET.format("x = x" + " |> relu" * 3_000),
    "sum-chain": NET.format("w = 1" + " + 1" * 3_000),
    "ternary-chain": NET.format("w = " + "if false then 1 else " * 2_000 + "2"),
    "block-arguments": "block B(n) { relu }\n" + NET.format("B(" * 20_000 + "1" + ")" * 20_000),
}


@pytest.mark.parametrize("text", NESTING.values(), ids=NESTING.keys())
def test_deep_nesting(tmp_path, text):
    rc, _, err, elapsed = check_spec(tmp_path, text)
    assert_limit(
        rc, err, elapsed, f"nests too deeply here: more than the limit of {Limits().max_nesting}", "--max-nesting"
    )


def test_deep_nesting_of_list_values(tmp_path):
    """Lists built in a loop nest without any nesting in the source."""
    rc, _, err, elapsed = check_spec(tmp_path, NET.format("l = [1]\n    for i in 1..100000 { l = [l] }"))
    assert_limit(rc, err, elapsed, f"lists nest more than the limit of {Limits().max_nesting}", "--max-nesting")


def test_deep_nesting_in_a_define(tmp_path):
    rc, _, err, elapsed = check_spec(
        tmp_path, "network N(k = [1], input = [3, 8, 8]) { relu }\n", "-D", "k=" + "[" * 1000 + "]" * 1000
    )
    assert elapsed < SECONDS and rc == 1 and "--max-nesting" in err, err
    assert err.startswith("<command line>:1:"), err


# ---- the module tree: every backend and PyTorch itself walk it recursively ----

TREE = "block R(n) {{\n    if n > 0 {{ r: R(n - 1) }} else {{ conv(3, 1) }}\n}}\n" + NET


def test_deepest_module_tree_compiles_draws_and_runs(tmp_path):
    """100 levels (the default --max-depth) of blocks and groups: compile, draw, forward, backward."""
    import torch

    from udnet.backends.pytorch.loader import import_source

    path = tmp_path / "tree.ud"
    path.write_text(TREE.format("g: { R(98) }"), encoding="utf-8")
    rc, _, err, _ = run("compile", str(path), "-o", str(tmp_path / "model.py"))
    assert rc == 0, err
    if "draw" in COMMANDS:
        rc, _, err, _ = run("draw", str(path), "-o", str(tmp_path / "tree.dot"))
        assert rc == 0, err
    module = import_source((tmp_path / "model.py").read_text(encoding="utf-8"))
    model = module.__dict__[module.ROOT]()
    y = model(torch.zeros(1, 3, 8, 8))
    y.sum().backward()
    assert next(iter(model.state_dict())) == "g" + ".r" * 99 + ".conv.weight"  # R(98) .. R(0)


@pytest.mark.parametrize(
    "body",
    [
        "g: { R(99) }",  # one level too deep
        "R(100000)",  # recursion without groups
        "g: { h: { R(1000) } }",
    ],
)
def test_module_tree_depth(tmp_path, body):
    rc, _, err, elapsed = check_spec(tmp_path, TREE.format(body))
    assert_limit(rc, err, elapsed, f"nest deeper than the limit of {Limits().max_depth} (--max-depth)", "--max-depth")


def test_groups_inside_recursive_blocks(tmp_path):
    """60 labelled groups inside each level of a recursion: the tree depth stops it, not Python."""
    groups = " ".join(f"a{i}: {{" for i in range(60))
    text = "block R(n) {\n    if n > 0 { " + groups + " conv(3, 1) |> R(n - 1) " + "}" * 60 + " } else { relu }\n}\n"
    rc, _, err, elapsed = check_spec(tmp_path, text + NET.format("R(99)"))
    assert_limit(rc, err, elapsed, "blocks and labelled groups nest deeper than the limit of 100", "--max-depth")


# ---- values that grow without nodes or nesting ----


@pytest.mark.parametrize(
    "body, message",
    [
        # l = [l, l] doubles the items a list describes while copying two references
        ("l = [1]\n    for i in 1..100 { l = [l, l] }", "more than the limit of 1,000,000"),
        # copying a growing list is quadratic: copying is charged to the step limit
        ("l = []\n    for i in 1..1000000 { l = l ++ [i] }", "steps"),
        ('s = "ab"\n    for i in 1..100 { s = s + s }', "would build a string"),
        ('s = "a"\n    for i in 1..19 { s = s + s }\n    for i in 1..100000 { {s}{i}: relu }', "longer than the limit"),
    ],
    ids=["shared-list-doubling", "quadratic-concat", "string-doubling", "huge-labels"],
)
def test_growing_values(tmp_path, body, message):
    rc, _, err, elapsed = check_spec(tmp_path, NET.format(body))
    assert_limit(rc, err, elapsed, message, None)


@pytest.mark.parametrize(
    "body, message",
    [
        ("w = " + "a" * 200_000, "unknown name"),
        ('s = "ab"\n    for i in 1..18 { s = s + s }\n    assert false, s', "abab"),
        ('s = "ab"\n    for i in 1..18 { s = s + s }\n    conv(s, 3)', "characters)"),
    ],
    ids=["huge-name", "huge-assert-message", "huge-string-argument"],
)
def test_huge_text_in_messages(tmp_path, body, message):
    """Names and strings a million characters long are cut short in messages."""
    rc, _, err, elapsed = check_spec(tmp_path, NET.format(body))
    assert_limit(rc, err, elapsed, message, None)


def test_huge_range_in_an_error_note(tmp_path):
    """A range of 10**15 numbers shown in a note (the block's arguments) is cut short."""
    text = "block B(r) { conv(0, 1) }\n" + NET.format("B(1..1000000000000000)")
    rc, _, err, elapsed = check_spec(tmp_path, text)
    assert_limit(rc, err, elapsed, "must be a positive integer", None)
    assert "..." in err


# ---- tensor sizes (the reviewer's note): a dimension cap and a per-node element cap ----


@pytest.mark.parametrize(
    "body, message, flag",
    [
        ("conv(2**60, 3)", "conv argument 'out' must be at most 2**31", None),  # checked as an argument
        (
            "for i in 1..80 { upsample(2) }",
            "elements per sample, more than the limit of 4,294,967,296",
            "--max-elements",
        ),
        (
            "gap\n    linear(2**31)\n    linear(2**31)",
            "parameters, more than the limit of 4,294,967,296",
            "--max-elements",
        ),
        ("x = x |> conv(2**20, 1)" + "\n    x = x ++ x ++ x ++ x" * 4, "elements", "--max-elements"),
        ("conv(4, 3, pad = 2**40)", "conv argument 'pad' must be at most 2**31", None),
        ("conv(4, 3, pad = 2**31)", "a dimension above the limit of 2**31", None),  # each argument in range
    ],
    ids=["huge-width", "upsample-80", "huge-linear", "huge-concat", "huge-padding", "huge-padded-size"],
)
def test_tensor_size_caps(tmp_path, body, message, flag):
    rc, _, err, elapsed = check_spec(tmp_path, NET.format(body))
    assert_limit(rc, err, elapsed, message, flag)


# ---- every limit can be raised ----


def test_limits_can_be_raised():
    deep = NET.format("w = " + "(" * 300 + "1" + ")" * 300 + "\n    relu")
    with pytest.raises(UdnetError, match="--max-nesting"):
        build_ir(Source("deep.ud", deep))
    build_ir(Source("deep.ud", deep), limits=Limits(max_nesting=400))

    big = NET.format("relu") + "#" * 300_000 + "\n"
    with pytest.raises(UdnetError, match="--max-source-bytes"):
        build_ir(Source("big.ud", big))
    build_ir(Source("big.ud", big), limits=Limits(max_source_bytes=400_000))

    wide = NET.format("for i in 1..11 { upsample(2) }")  # [3, 16384, 16384]: 805M elements
    build_ir(Source("wide.ud", wide))
    with pytest.raises(UdnetError, match="--max-elements"):
        build_ir(Source("wide.ud", wide), limits=Limits(max_elements=2**24))

    loop = NET.format("for i in 1..200 { relu }")
    with pytest.raises(UdnetError, match="--max-nodes"):
        build_ir(Source("loop.ud", loop), limits=Limits(max_nodes=100))
    build_ir(Source("loop.ud", loop), limits=Limits(max_nodes=300))


def test_new_limit_flags_on_the_command_line(tmp_path):
    """--max-nesting, --max-source-bytes and --max-elements reach the limits."""
    rc, help_text, _, _ = 0, "", "", 0.0
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["check", "--help"])
    help_text = out.getvalue()
    missing = [f for f in ("--max-nesting", "--max-source-bytes", "--max-elements") if f not in help_text]
    assert not missing, f"udnet check --help does not offer {', '.join(missing)} (docs/limits.md promises them)"
    deep = NET.format("w = " + "(" * 300 + "1" + ")" * 300 + "\n    relu")
    rc, _, err, _ = check_spec(tmp_path, deep, "--max-nesting", "400")
    assert rc == 0, err
    rc, _, err, _ = check_spec(tmp_path, NET.format("relu") + "#" * 300_000, "--max-source-bytes", "400000")
    assert rc == 0, err
    rc, _, err, _ = check_spec(tmp_path, NET.format("upsample(4)"), "--max-elements", "1000")
    assert rc == 1 and "--max-elements" in err, err


# ---- the documentation ----


def test_every_limit_is_documented():
    """docs/limits.md names every limit, its default and the flag that raises it."""
    doc = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    for f in fields(Limits):
        flag = "--" + f.name.replace("_", "-")
        assert f"`{f.name}`" in doc, f.name
        assert flag in doc, flag
        default = f"{f.default:,}"
        assert default in doc or f"2**{f.default.bit_length() - 1}" in doc, (f.name, default)
    for fixed in ("2**31", "1,000,000", "200"):  # dimension cap, list size, label length
        assert fixed in doc, fixed


def test_define_values_follow_the_nesting_limit(tmp_path, capsys):
    """A -D value is parsed under the same --max-nesting as the spec (it used the default)."""
    from udnet.cli import main

    spec = tmp_path / "n.ud"
    spec.write_text("network N(p = [], input = [3, 8, 8]) {\n    conv(4, 3)\n}\n")
    deep = "[" * 300 + "1" + "]" * 300
    assert main(["check", str(spec), "-D", f"p={deep}"]) == 1
    assert "256" in capsys.readouterr().err
    assert main(["check", str(spec), "--max-nesting", "400", "-D", f"p={deep}"]) == 0, capsys.readouterr().err
