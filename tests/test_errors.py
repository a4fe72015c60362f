"""User mistakes print like a compiler: ``file:LINE:COL: error: ...``, the source line,
a caret and a hint, with exit code 1 (2 for usage errors) and never a traceback.

Every case runs through the real command line in-process (``udnet.cli.main``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from udnet.cli import main
from udnet.errors import Source, Span, UdnetError

CMDLINE = "<command line>"

# A minimal network around one or more statements.
NET = "network N(input = [3, 8, 8]) {{\n    {}\n}}\n"


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    line: int
    col: int
    message: str  # a substring of the error message (the first line)
    hint: str | None = None  # a substring expected somewhere after the first line
    args: tuple[str, ...] = ()
    where: str = "file"  # "file" or CMDLINE: which source the location points into


CASES = [
    # ---- syntax ----
    Case("syntax-stray-paren", NET.format("conv(4, 3) )"), 2, 16, "unexpected ')'; expected"),
    Case(
        "syntax-unclosed-brace-at-eof",
        "network N(input = [3, 8, 8]) {\n    conv(4, 3)\n",
        2,
        15,
        "unexpected end of file",
        "'{' opened at line 1 is never closed",
    ),
    Case(
        "syntax-single-quoted-string",
        NET.format("upsample(2, mode = 'nearest')"),
        2,
        24,
        'unexpected character "\'"',
        "strings use double quotes",
    ),
    Case("method-call", NET.format("x = x.relu()"), 2, 9, "ops and blocks are not methods of a tensor",
         "pipe the tensor into it: t |> relu(...)"),
    Case(
        "positional-after-keyword",
        NET.format("conv(4, kernel = 3, 1)"),
        2,
        25,
        "positional argument after a keyword argument",
    ),
    Case("empty-label-interpolation", NET.format("layer{}: relu"), 2, 5, "empty '{}' in label", "layer{i}"),
    Case("integer-literal-too-large", NET.format("w = 99999999999999999999999"), 2, 9, "integer literal is too large"),
    Case("float-literal-too-large", NET.format("w = 1e999"), 2, 9, "number literal is too large"),
    # ---- names ----
    Case("unknown-op", NET.format("cnov(4, 3)"), 2, 5, "unknown name 'cnov'",
         "no op is called 'cnov'; ops with similar names: conv (2-d convolution)"),
    # A PyTorch op udnet lacks is named as such, never matched to a look-alike (prelu is not relu).
    Case("op-udnet-lacks", NET.format("conv(4, 3) |> prelu"), 2, 19, "unknown name 'prelu'",
         "'prelu' is ReLU with a learned slope (PyTorch nn.PReLU), which udnet does not have; "
         "ops with similar names: relu (max(x, 0))"),
    Case("op-spelled-as-pytorch", NET.format("conv(4, 3) |> BatchNorm2d"), 2, 19, "unknown name 'BatchNorm2d'",
         "udnet writes this as bn"),
    Case("unknown-variable", NET.format("wdith = 4\n    conv(width2, 3)"), 3, 10, "unknown name 'width2'"),
    Case(
        "use-before-definition",
        NET.format("conv(w, 3)\n    w = 4"),
        2,
        10,
        "unknown name 'w'",
        "'w' is assigned later, at line 3",
    ),
    Case(
        "network-used-as-block",
        "network M(input = [3, 8, 8]) { relu }\nnetwork N(input = [3, 8, 8]) {\n    x = x |> M\n}\n",
        3,
        14,
        "'M' is a network; only blocks can be used inside a network",
        args=("--network", "N"),
    ),
    Case("block-named-like-op", "block conv() { relu }\n" + NET.format("relu"), 1, 7, "'conv' is the built-in op conv"),
    Case(
        "definition-twice",
        "block B() { relu }\nblock B() { relu }\n" + NET.format("B"),
        2,
        7,
        "'B' is defined twice",
        "first defined here",
    ),
    Case("block-parameter-x", "block B(x) { relu }\n" + NET.format("B"), 1, 9, "would shadow the block's input tensor"),
    # ---- arity and argument types ----
    Case(
        "op-too-many-arguments",
        NET.format("maxpool(3, 2, 1, false, 7)"),
        2,
        29,
        "maxpool takes at most 4 argument(s), got 5",
        "signature: maxpool(kernel",
    ),
    Case("op-missing-argument", NET.format("conv(4)"), 2, 5, "conv needs argument 'kernel'", "signature: conv(out"),
    Case(
        "block-too-many-arguments",
        "block B(c) { conv(c, 3, pad = 1) }\n" + NET.format("B(4, 5)"),
        3,
        10,
        "block B takes 1 argument(s), got 2",
        "signature: B(c)",
    ),
    Case(
        "block-missing-argument",
        "block B(c, k) { conv(c, k) }\n" + NET.format("B(4)"),
        3,
        5,
        "block B needs argument(s) k",
        "signature: B(c, k)",
    ),
    Case("op-argument-type", NET.format("conv(3.5, 3)"), 2, 10, "conv argument 'out' must be an integer, got 3.5"),
    Case(
        "op-argument-zero-stride",
        NET.format("conv(4, 3, stride = 0)"),
        2,
        16,
        "conv argument 'stride' must be positive, got 0",
    ),
    Case(
        "op-argument-bad-choice",
        NET.format('upsample(2, mode = "cubic")'),
        2,
        17,
        'upsample argument \'mode\' must be one of "nearest", "bilinear"',
    ),
    Case(
        "op-unknown-keyword",
        NET.format("conv(4, 3, padding = 1)"),
        2,
        16,
        "conv has no argument 'padding'",
        "signature: conv(",
    ),
    Case(
        "block-unknown-keyword",
        "block B(depth) { conv(depth, 3, pad = 1) }\n" + NET.format("B(dpeth = 4)"),
        3,
        7,
        "block B has no parameter 'dpeth'",
        "did you mean 'depth'?",
    ),
    Case(
        "op-given-a-tensor",
        NET.format("conv(x, 3)"),
        2,
        5,
        "conv takes values as arguments, not a tensor [3, 8, 8]",
        "pipe the tensor into it",
    ),
    Case("gate-arity", NET.format("return gate(x, x)"), 2, 12, "gate takes three tensors", "y = t*h + (1-t)*x"),
    Case("join-bad-drop-rate", NET.format("return join(x, x, drop_local = 1.5)"), 2, 23, "a probability in [0, 1)"),
    # ---- -D overrides ----
    Case(
        "define-unknown-name",
        "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n}\n",
        1,
        4,
        "network N has no parameter 'kk'",
        "did you mean 'k'?",
        args=("-D", "kk=3"),
        where=CMDLINE,
    ),
    Case(
        "define-wrong-type",
        "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n}\n",
        1,
        6,
        "parameter 'k' is an int (default 4), got true",
        args=("-D", "k=true"),
        where=CMDLINE,
    ),
    Case(
        "define-wrong-type-list",
        "network N(blocks = [1, 2], input = [3, 8, 8]) {\n    relu\n}\n",
        1,
        11,
        "parameter 'blocks' is a list",
        args=("-D", "blocks=3"),
        where=CMDLINE,
    ),
    Case(
        "define-unparsable-unclosed",
        "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n}\n",
        1,
        9,
        "unexpected end of file",
        "'[' opened",
        args=("-D", "k=[1,"),
        where=CMDLINE,
    ),
    Case(
        "define-unparsable-trailing",
        "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n}\n",
        1,
        8,
        "unexpected ')'",
        args=("-D", "k=3 )"),
        where=CMDLINE,
    ),
    Case(
        "define-empty-value",
        "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n}\n",
        1,
        6,
        "-D k= has no value",
        args=("-D", "k="),
        where=CMDLINE,
    ),
    Case(
        "define-bad-input-shape",
        "network N(input = [3, 8, 8]) {\n    relu\n}\n",
        1,
        10,
        "input must be [C, H, W] or [C] with positive sizes, got [3, 0, 8]",
        args=("-D", "input=[3,0,8]"),
        where=CMDLINE,
    ),
    Case(
        "define-unknown-name-in-value",
        "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n}\n",
        1,
        6,
        "unknown name 'foo'",
        args=("-D", "k=foo"),
        where=CMDLINE,
    ),
    # ---- shapes and connections ----
    Case(
        "concat-spatial-mismatch",
        NET.format("a = x |> conv(4, 3, stride = 2, pad = 1)\n    x = x ++ a"),
        3,
        9,
        "channel concat of [3, 8, 8] and [4, 4, 4]: spatial sizes differ",
        "pool or stride the larger one",
    ),
    Case(
        "residual-channel-mismatch",
        NET.format("y = x |> conv(8, 3, pad = 1)\n    x = x + y"),
        3,
        9,
        "residual sum of [3, 8, 8] and [8, 8, 8]: shapes differ",
        "insert a 1x1 projection on the shortcut: conv(8, 1)",
    ),
    Case(
        "residual-spatial-mismatch",
        NET.format("y = x |> conv(3, 3, stride = 2, pad = 1)\n    x = x + y"),
        3,
        9,
        "residual sum of [3, 8, 8] and [3, 4, 4]: shapes differ",
        "conv(3, 1, stride = 2)",
    ),
    Case(
        "residual-rounding-mismatch",
        NET.format("x = x |> conv(3, 2)\n    y = x |> maxpool(2, ceil = true) |> upsample(2)\n    x = x + y"),
        4,
        9,
        "residual sum of [3, 7, 7] and [3, 8, 8]: shapes differ",
        "the sizes differ by rounding; upsample to the other operand's own size",
    ),
    Case(
        "residual-uneven-spatial-mismatch",
        NET.format("y = x |> conv(3, 3, stride = 3, pad = 1)\n    x = x + y"),
        3,
        9,
        "residual sum of [3, 8, 8] and [3, 3, 3]: shapes differ",
        "stride or pool the larger operand, or upsample the smaller",
    ),
    Case(
        "gate-operand-mismatch",
        NET.format(
            "h = x |> conv(8, 3, pad = 1)\n    t = x |> conv(8, 3, pad = 1) |> sigmoid\n    return gate(h, x, t)"
        ),
        4,
        20,
        "gate operands differ: h is [8, 8, 8] but x is [3, 8, 8]",
        "project x",
    ),
    Case(
        "join-operand-mismatch",
        NET.format("return join(x |> conv(4, 3, pad = 1), x |> conv(5, 3, pad = 1))"),
        2,
        12,
        "join operands differ",
        "every column that ends at a join must have one shape",
    ),
    Case(
        "channel-slice-out-of-range",
        NET.format("x = x[0:5]"),
        2,
        9,
        "channel slice [0:5] is out of range for a tensor with 3 channels",
        "valid bounds are 0..3",
    ),
    Case("tensor-single-index", NET.format("x = x[1]"), 2, 9, "indexed by channel ranges", "write a slice"),
    Case(
        "linear-on-spatial-tensor",
        NET.format("linear(10)"),
        2,
        5,
        "linear needs a [C] tensor, got [3, 8, 8]",
        "insert gap (global average pooling) or flatten",
    ),
    Case(
        "conv-after-gap",
        NET.format("gap\n    conv(3, 1)"),
        3,
        5,
        "conv needs a [C, H, W] tensor, got [3]",
        "spatial ops cannot follow gap",
    ),
    Case(
        "conv-does-not-fit",
        NET.format("conv(4, 11)"),
        2,
        5,
        "conv with kernel 11x11 and padding 0x0 does not fit the input 8x8",
        "the input is too small here",
    ),
    Case(
        "conv-groups",
        NET.format("conv(4, 3, groups = 2)"),
        2,
        5,
        "conv groups = 2 must divide both the input channels (3)",
    ),
    Case("height-of-vector", NET.format("gap\n    conv(height, 1)"), 3, 10, "'height' needs a [C, H, W] tensor"),
    Case("tensor-plus-number", NET.format("x = x + 1"), 2, 13, "'+' combines a tensor with the integer 1"),
    Case("tensor-minus-tensor", NET.format("x = x - x"), 2, 9, "'-' is not defined on tensors",
         "* (element-wise product)"),
    Case("product-not-broadcasting", NET.format("x = x * (x |> gap |> linear(2))"), 2, 9,
         "element-wise product of [3, 8, 8] and [2]: the shapes do not broadcast", "[C, H, W] * [C, 1, 1]"),
    Case("tensor-dropped", NET.format("x |> relu"), 2, 5, "this tensor is computed and then dropped", "assign it"),
    # ---- expansion limits ----
    Case(
        "recursion-without-base-case",
        "block R(n) {\n    x = x |> R(n - 1)\n}\n" + NET.format("R(3)"),
        2,
        14,
        "block calls nest deeper than the limit of 100",
        "does R have a base case?",
    ),
    Case(
        "recursion-small-max-depth",
        "block B(n) { if n > 0 { B(n - 1) } }\n" + NET.format("B(5)"),
        1,
        25,
        "block calls nest deeper than the limit of 3",
        "--max-depth",
        args=("--max-depth", "3"),
    ),
    Case(
        "node-limit",
        NET.format("for i in 1..100000 {\n        relu\n    }"),
        3,
        9,
        "the network exceeds the limit of 30,000 IR nodes",
        "--max-nodes",
    ),
    Case(
        "node-limit-flag",
        NET.format("for i in 1..100 {\n        relu\n    }"),
        3,
        9,
        "the network exceeds the limit of 50 IR nodes",
        args=("--max-nodes", "50"),
    ),
    Case(
        "step-limit",
        NET.format("for i in 1..1000000000 {\n        n = i\n    }"),
        3,
        9,
        "elaboration exceeds the limit of 1,000 steps",
        "--max-steps",
        args=("--max-steps", "1000"),
    ),
    Case(
        "string-doubling",
        NET.format('s = "ab"\n    for i in 1..100 { s = s + s }'),
        3,
        27,
        "'+' would build a string of",
    ),
    Case(
        "list-doubling",
        NET.format("l = [1]\n    for i in 1..100 { l = l ++ l }"),
        3,
        27,
        "'++' would build a list of",
    ),
    Case("sum-of-huge-range", NET.format("m = sum(1..1000000000000)"), 2, 9, "the result of sum is too large"),
    Case("deep-nesting", NET.format("w = " + "-\n    " * 30000 + "1"), 257, 5, "the spec nests too deeply", "--max-nesting"),
    # ---- labels ----
    Case(
        "duplicate-label-in-loop",
        NET.format("for i in 1..2 {\n        layer: relu\n    }"),
        3,
        9,
        "duplicate label 'layer'",
        "make it unique by interpolation: layer{i}:",
    ),
    Case(
        "duplicate-label-explicit",
        NET.format("a: relu\n    a: relu"),
        3,
        5,
        "duplicate label 'a'",
        "first used here",
    ),
    Case(
        "label-python-dunder",
        NET.format("__init__: relu"),
        2,
        5,
        "label '__init__' is reserved by PyTorch's nn.Module",
        "choose another name",
    ),
    Case(
        "label-nn-module-attribute",
        NET.format("forward: relu"),
        2,
        5,
        "label 'forward' is reserved by PyTorch's nn.Module",
    ),
    Case(
        "label-interpolates-float",
        NET.format("layer{1.5}: relu"),
        2,
        11,
        "a label can interpolate an integer or a string, got the number 1.5",
    ),
    Case("label-not-identifier", NET.format('layer{"a b"}: relu'), 2, 5, "label 'layera b' is not a valid module name"),
    # ---- networks ----
    Case(
        "no-network",
        "block B(c) {\n    conv(c, 3)\n}\n",
        3,
        1,
        "this file defines no network",
        "network Net(",
    ),
    Case(
        "network-without-input",
        "network N(k = 4) {\n    conv(k, 3)\n}\n",
        1,
        9,
        "network N has no input shape",
        "input = [C, H, W]",
    ),
    Case(
        "network-parameter-without-value",
        "network N(k, input = [3, 8, 8]) {\n    conv(k, 1)\n}\n",
        1,
        11,
        "network N needs a value for parameter 'k'",
        "-D k=...",
    ),
    # ---- values ----
    Case(
        "assert-failure",
        'network N(d = 5, input = [3, 8, 8]) {\n    assert d % 2 == 0, "d must be even"\n    relu\n}\n',
        2,
        12,
        "d must be even",
    ),
    Case("assert-failure-no-message", NET.format("assert 1 > 2"), 2, 12, "assertion failed"),
    Case(
        "division-by-zero",
        "network N(d = 0, input = [3, 8, 8]) {\n    w = 4 // d\n    relu\n}\n",
        2,
        14,
        "division by zero",
    ),
    Case("float-overflow", NET.format("w = 10.0 ** 400"), 2, 9, "too large"),
    Case("int-overflow", NET.format("w = int(1e30)"), 2, 9, "too large for an integer"),
    Case(
        "condition-not-boolean",
        "network N(d = 1, input = [3, 8, 8]) {\n    if d { relu }\n}\n",
        2,
        8,
        "a condition must be true or false, got the integer 1",
        "compare it",
    ),
    Case("for-over-string", NET.format('for i in "abc" { relu }'), 2, 14, "for needs a list or a range"),
    Case(
        "index-out-of-range", NET.format("l = [1, 2]\n    w = l[2]"), 3, 11, "index 2 is out of range for a list of 2"
    ),
    Case("assign-number-to-x", NET.format("x = 3"), 2, 5, "x holds the current tensor"),
    Case("call-a-variable", NET.format("k = 3\n    w = k(3)"), 3, 9, "'k' is the integer 3, not something to call"),
    Case(
        "block-returns-number",
        "block B() { return 3 }\n" + NET.format("B"),
        1,
        7,
        "block B must produce a tensor, but returns the integer 3",
        "in B() used here",
    ),
]


def _run(tmp_path, capsys, case: Case):
    path = tmp_path / "spec.ud"
    path.write_text(case.source, encoding="utf-8")
    rc = main(["check", str(path), *case.args])
    out = capsys.readouterr()
    return str(path), rc, out.out, out.err


def test_enough_distinct_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len({c.source + " ".join(c.args) for c in CASES}) == len(CASES)
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_user_error(tmp_path, capsys, case: Case):
    path, rc, out, err = _run(tmp_path, capsys, case)
    assert rc == 1, err
    assert out == ""
    assert "Traceback" not in err
    name = path if case.where == "file" else CMDLINE
    head = f"{name}:{case.line}:{case.col}: error: "
    assert err.startswith(head), f"expected {head!r}, got:\n{err}"
    first = err.splitlines()[0]
    assert case.message in first, err
    lines = err.splitlines()
    # The quoted source line, then a caret under the reported column.
    gutter = f"{case.line:>5} | "
    assert lines[1].startswith(gutter), err
    caret = lines[2]
    assert re.fullmatch(r" {6}\| *\^~*", caret), err
    assert caret.index("^") == len(gutter) + case.col - 1, err
    if case.where == "file":
        source_line = case.source.splitlines()[case.line - 1].replace("\t", " ")
    else:
        source_line = "-D " + case.args[case.args.index("-D") + 1]
    assert lines[1][len(gutter) :] == source_line
    if case.hint is not None:
        assert case.hint in "\n".join(lines[3:]), err


# ---- usage errors: exit code 2 ----


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.ud"
    rc = main(["check", str(missing)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("udnet: error: no such file: ")
    assert str(missing) in err
    assert "Traceback" not in err


def test_directory_instead_of_file(tmp_path, capsys):
    rc = main(["check", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "is a directory" in err


def test_unknown_network(tmp_path, capsys):
    path = tmp_path / "two.ud"
    path.write_text("network A(input = [3, 8, 8]) { relu }\nnetwork B(input = [3, 8, 8]) { relu }\n", encoding="utf-8")
    rc = main(["check", str(path), "--network", "C"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("udnet: error: no network named 'C'")
    assert "A, B" in err


def test_block_given_as_network(tmp_path, capsys):
    path = tmp_path / "b.ud"
    path.write_text("block A() { relu }\nnetwork B(input = [3, 8, 8]) { A }\n", encoding="utf-8")
    rc = main(["check", str(path), "--network", "A"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'A' is a block, not a network" in err


def test_define_without_equals(tmp_path, capsys):
    path = tmp_path / "n.ud"
    path.write_text("network N(k = 4, input = [3, 8, 8]) { conv(k, 3) }\n", encoding="utf-8")
    rc = main(["check", str(path), "-D", "k"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "-D expects name=value" in err


def test_define_twice(tmp_path, capsys):
    path = tmp_path / "n.ud"
    path.write_text("network N(k = 4, input = [3, 8, 8]) { conv(k, 3) }\n", encoding="utf-8")
    rc = main(["check", str(path), "-D", "k=1", "-D", "k=2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "given twice" in err


def test_nonpositive_limit(tmp_path, capsys):
    path = tmp_path / "n.ud"
    path.write_text("network N(input = [3, 8, 8]) { relu }\n", encoding="utf-8")
    rc = main(["check", str(path), "--max-nodes", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--max-nodes must be positive" in err


def test_not_utf8(tmp_path, capsys):
    path = tmp_path / "bad.ud"
    path.write_bytes(b'network N(input = [3, 8, 8]) {\n    w = "\xff"\n}\n')
    rc = main(["check", str(path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"{path}:2:10: error: the file is not valid UTF-8")
    assert "Traceback" not in err


def test_unknown_op_hints_never_suggest_another_function():
    """Every PyTorch or paper op name udnet lacks says so, with the meaning of each
    op of a similar name, instead of a "did you mean" to a different function."""
    from udnet.elaborate.suggest import ELSEWHERE, unknown_name_hint
    from udnet.ops import OPS

    for name in ELSEWHERE:
        if name in OPS:
            continue
        hint = unknown_name_hint(name, OPS, ["width", "x"])
        assert "which udnet does not have" in hint and "did you mean" not in hint, (name, hint)
        for op in OPS:
            if f" {op} (" in hint:
                assert f"{op} ({OPS[op].doc})" in hint


# ---- the rendering, character by character ----


def _check(tmp_path, capsys, source: str) -> tuple[str, str]:
    path = tmp_path / "spec.ud"
    path.write_text(source, encoding="utf-8")
    assert main(["check", str(path)]) == 1
    return str(path), capsys.readouterr().err


def test_notes_follow_the_error_each_with_its_own_quote(tmp_path, capsys):
    # A note with a span quotes its own line; one without (the input shape) has no location.
    path, err = _check(tmp_path, capsys, "block B(c) {\n    conv(c, kernel = 3, groups = 5)\n}\n"
                                         "network N(input = [3, 8, 8]) {\n    B(4)\n}\n")
    assert err == (
        f"{path}:2:5: error: conv groups = 5 must divide both the input channels (3) and the output channels (4)\n"
        "    2 |     conv(c, kernel = 3, groups = 5)\n"
        "      |     ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
        "udnet: note: the input of this conv is [3, 8, 8]\n"
        f"{path}:5:5: note: in B(4) used here\n"
        "    5 |     B(4)\n"
        "      |     ^~~~\n"
    )


# Each: (spec, the whole of stderr less the path). The caret covers the span and no more;
# the quoted line is the source line exactly, up to its last character.
RENDERED = {
    "caret-covers-the-span": (
        "block B() { relu }\nblock B() { relu }\nnetwork N(input = [3, 8, 8]) { B }\n",
        ":2:7: error: 'B' is defined twice\n"
        "    2 | block B() { relu }\n"
        "      |       ^\n"
        "{path}:1:7: note: first defined here\n"
        "    1 | block B() { relu }\n"
        "      |       ^\n",
    ),
    "whole-line-quoted": (
        "network N(input = [3, 8, 8]) {\n    conv(4, 3) |> NoSuchX\n}\n",
        ":2:19: error: unknown name 'NoSuchX'\n"
        "    2 |     conv(4, 3) |> NoSuchX\n"
        "      |                   ^~~~~~~\n",
    ),
}


@pytest.mark.parametrize("name", list(RENDERED))
def test_rendered_exactly(tmp_path, capsys, name):
    source, expected = RENDERED[name]
    path, err = _check(tmp_path, capsys, source)
    assert err == path + expected.replace("{path}", path)


def test_unprintable_characters_of_the_quoted_line_become_spaces(tmp_path, capsys):
    # A tab, an escape sequence, a bidi override and a bell: each one column wide, so the
    # caret stays under the span and nothing reaches the terminal raw.
    source = 'network N(input = [3, 8, 8]) {\n\tupsample(2, mode = "ne\x1b[2Jar\u202est") # \x07 bell\n}\n'
    path, err = _check(tmp_path, capsys, source)
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:2:14: error: upsample argument 'mode' must be one of")
    assert lines[1:3] == [
        '    2 |  upsample(2, mode = "ne [2Jar st") #   bell',
        "      |              ^~~~~~~~~~~~~~~~~~~~",
    ]


def test_a_span_outside_the_text_quotes_nothing():
    source = Source("n.ud", "relu\nrelu")
    for line in (0, 3):
        assert UdnetError("bad", Span(source, line, 1, line, 2)).format() == f"n.ud:{line}:1: error: bad"
    assert source.line(2) == "relu"


def test_unprintable_message_text_is_escaped_and_newlines_kept():
    err = UdnetError("name a\x1b[2J\u202eb\x00\nsecond line", hint="try \x07 this")
    assert err.format() == "udnet: error: name a\\x1b[2J\\u202eb\\x00\nsecond line\nhint: try \\x07 this"


def test_a_huge_message_shows_its_first_2000_characters():
    assert UdnetError("m" * 2000).format() == "udnet: error: " + "m" * 2000
    assert UdnetError("m" * 2001 + "tail").format() == "udnet: error: " + "m" * 2000 + "..."


def test_the_message_is_the_exception_argument():
    # What repr(), logging and pickling show: the message, not None.
    err = UdnetError("no such block 'B'")
    assert err.args == ("no such block 'B'",)
    assert "no such block 'B'" in repr(err)


def test_a_span_over_several_lines_underlines_the_rest_of_its_first(tmp_path, capsys):
    path, err = _check(tmp_path, capsys, "block B(c) {\n    conv(c, kernel = 3,\n         groups = 5)\n}\n"
                                         "network N(input = [3, 8, 8]) { B(4) }\n")
    assert err.splitlines()[1:3] == ["    2 |     conv(c, kernel = 3,", "      |     ^~~~~~~~~~~~~~~~~~~"]


@pytest.mark.parametrize("before,after", [(3, 60), (40, 40), (60, 3)])
def test_a_long_line_is_quoted_as_a_window_around_the_caret(tmp_path, capsys, before, after):
    # A quoted line longer than 160 characters shows 160 of them: from 80 before the caret
    # on, or the line's first or last 160; "..." marks each cut side, the caret stays under
    # its character.
    line = "    " + "relu |> " * before + "NoSuchX" + " |> relu" * after
    path, err = _check(tmp_path, capsys, "network N(input = [3, 8, 8]) {\n" + line + "\n}\n")
    col = line.index("NoSuchX") + 1
    head, quoted, caret = err.splitlines()[:3]
    assert head == f"{path}:2:{col}: error: unknown name 'NoSuchX'"
    shown = quoted[len("    2 | "):]
    at = caret.index("^") - len("      | ")
    assert caret.endswith(" ^~~~~~~") and shown[at:at + 7] == "NoSuchX"
    start = min(col - 1 - 80, len(line) - 160)
    if start <= 0:
        assert shown == line[:160] + "..."
    elif start + 160 >= len(line):
        assert shown == "..." + line[-160:]
    else:
        assert shown == "..." + line[col - 1 - 80 : col - 1 + 80] + "..."


def test_sources_read_with_any_newline_convention():
    from udnet.errors import normalize_newlines

    assert normalize_newlines("a\r\nb\rc\nd") == "a\nb\nc\nd"
    assert normalize_newlines("plain\n") == "plain\n"


def test_paths_print_with_unprintable_characters_escaped():
    from udnet.errors import show_path

    assert show_path("dir/spec\x1b[2J\u202e.ud") == "dir/spec\\x1b[2J\\u202e.ud"
    assert show_path("plain dir/é.ud") == "plain dir/é.ud"
    assert show_path("é\x1b.ud") == "é\\x1b.ud"  # only what is unprintable is escaped
