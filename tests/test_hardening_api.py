"""Hardening: label interpolations parse in linear work, and the Python API checks its
arguments (one rule for "path or spec text", UsageErrors that name the argument).

Work is counted (parser calls, characters handed to the parser, scanner tokens), never timed.
"""

from __future__ import annotations

import pathlib

import pytest

import udnet
from udnet.errors import Source, UdnetError, UsageError
from udnet.frontend import parser
from udnet.limits import Limits
from udnet.pipeline import build_ir, compile_to_torch, is_spec_text, optimize, spec_source

SPECS = pathlib.Path(__file__).resolve().parents[1] / "specs"
TINY = "network N(k = 4, input = [3, 8, 8]) {\n    conv(k, 3)\n    relu\n}\n"


# ---- item 9: labels made of many interpolations ----


def _label_spec(n: int, part: str) -> str:
    return "network N(input = [3, 8, 8]) {\n    i = 1\n    a" + part * n + ": relu\n}\n"


def _parse_work(monkeypatch, text: str) -> tuple[int, int]:
    """(parser runs, characters handed to them) to parse ``text``."""
    calls = [0, 0]
    real = parser._parse

    def counting(source, *args, **kwargs):
        calls[0] += 1
        calls[1] += len(source.text)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(parser, "_parse", counting)
    parser.parse(Source("labels.ud", text))
    monkeypatch.setattr(parser, "_parse", real)
    return calls[0], calls[1]


@pytest.mark.parametrize("part", ["{i + 1}", "{1}", "{ i }"])
def test_label_interpolations_take_linear_parse_work(monkeypatch, part):
    """Each interpolation is parsed once on its own text: twice the interpolations, at most
    twice the work (padding each sub-parse to the label's column made it quadratic)."""
    n = 300
    calls1, chars1 = _parse_work(monkeypatch, _label_spec(n, part))
    calls2, chars2 = _parse_work(monkeypatch, _label_spec(2 * n, part))
    assert calls1 <= n + 1 and calls2 <= 2 * n + 1
    assert chars2 <= 2 * chars1
    assert chars1 <= 2 * len(_label_spec(n, part))


def test_a_64_kib_label_parses_under_the_default_limits():
    text = _label_spec((64 * 1024) // 3, "{1}")
    assert 64 * 1024 < len(text) < Limits().max_source_bytes
    module = parser.parse(Source("big.ud", text))
    label = module.definitions[0].body.stmts[1].label
    assert len(label.parts) == 1 + (64 * 1024) // 3
    last = label.parts[-1]
    assert (last.span.line, last.span.col, last.value) == (3, len(text.split("\n")[2]) - 7, 1)
    # Elaboration then refuses the 21,000-character label, with the usual error.
    with pytest.raises(UdnetError, match="longer than the limit of 200"):
        build_ir(Source("big.ud", text))


def test_interpolation_positions_and_errors_point_into_the_file():
    text = "network N(input = [3, 8, 8]) {\n\n    x = 1;  c{ x + 1 }_{ y }: relu\n}\n"
    label = parser.parse(Source("f.ud", text)).definitions[0].body.stmts[1].label
    binop, name = label.parts[1], label.parts[3]
    assert (binop.span.line, binop.span.col, binop.span.end_col) == (3, 16, 21)
    assert (binop.left.span.col, binop.right.span.col) == (16, 20)
    assert (name.span.line, name.span.col, name.span.end_col, name.id) == (3, 26, 27, "y")
    assert all(p.span.source.text == text for p in (binop, binop.left, name))
    cases = [
        ("a{f(1}", 18, "unexpected end of file", "'(' opened at line 3 is never closed"),
        ("a{1, 2}", 16, "unexpected ','", None),
        ("b{99999999999999999999999}", 15, "integer literal is too large", None),
    ]
    for label_text, col, message, hint in cases:
        src = text.replace("c{ x + 1 }_{ y }", label_text)
        with pytest.raises(UdnetError, match=message) as exc:
            parser.parse(Source("f.ud", src))
        assert (exc.value.span.source.text, exc.value.span.line, exc.value.span.col) == (src, 3, col)
        assert hint is None or hint in exc.value.hint
    # Keywords still go through the grammar.
    label = parser.parse(Source("f.ud", text.replace("{ y }", "{ true }"))).definitions[0].body.stmts[1].label
    assert label.parts[3].value is True


def test_an_unclosed_string_of_escaped_quotes_is_scanned_once():
    r"""A line like "\"\"\"... never closes: the bracket scans take it as one token to the
    end of the line instead of retrying the string at every quote (quadratic)."""
    line = '"' + '\\"' * 5000
    assert len(list(parser._NEST_TOKEN.finditer(line))) == 1
    assert len(parser._COMMENT_OR_STRING.findall(line + "\n(")) == 1
    src = "network N(input = [3, 8, 8]) {\n    x = " + '"' + '\\"' * 40_000 + "\n}\n"
    with pytest.raises(UdnetError, match="unexpected character") as exc:
        parser.parse(Source("q.ud", src))
    assert (exc.value.span.line, exc.value.span.col) == (2, 9)


# ---- item 14: the Python API ----


def test_path_or_text_rule():
    assert is_spec_text(TINY) and is_spec_text("network N(input = [3, 8, 8]) { relu }")
    assert not is_spec_text("specs/densenet.ud") and not is_spec_text("blocks/x.ud")
    assert spec_source("network N(input = [3, 8, 8]) { relu }").name == "<string>"


def test_build_ir_takes_a_pathlib_path(tmp_path):
    (tmp_path / "tiny.ud").write_text(TINY)
    ir = build_ir(tmp_path / "tiny.ud")
    assert ir.graph["network"] == "N"
    assert compile_to_torch(tmp_path / "tiny.ud") == compile_to_torch(TINY, spec_name="tiny.ud")


def test_load_takes_a_pathlib_path(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "tiny.ud").write_text(TINY)
    model = udnet.load(tmp_path / "tiny.ud", k=2)
    assert sum(p.numel() for p in model.parameters()) == 2 * 3 * 3 * 3


def test_a_path_that_starts_like_a_keyword_is_a_path(tmp_path, monkeypatch):
    """build_ir("blocks/x.ud") used to parse the path itself as spec text."""
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "x.ud").write_text(TINY)
    (tmp_path / "network.ud").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    for path in ("blocks/x.ud", "network.ud"):
        assert build_ir(path).graph["network"] == "N"
        assert compile_to_torch(path) == compile_to_torch(TINY, spec_name=path.split("/")[-1])


@pytest.mark.parametrize("call", [
    lambda p: udnet.load(p),
    lambda p: build_ir(p),
    lambda p: compile_to_torch(p),
    lambda p: build_ir(pathlib.Path(p)),
])
def test_a_missing_file_is_no_such_file(call, tmp_path):
    missing = str(tmp_path / "missing.ud")
    with pytest.raises(UsageError, match=f"no such file: {missing}"):
        call(missing)


@pytest.mark.parametrize("disable", ["share-concat", ("share-concat",), ["share-concat"], {"share-concat"}])
def test_disable_takes_one_name_or_several(disable):
    spec = SPECS / "densenet.ud"
    defines = {"blocks": [2, 2], "k": 4, "init": 8}
    plain = compile_to_torch(spec, defines=defines, disabled=())
    off = compile_to_torch(spec, defines=defines, disabled=disable)
    assert off == compile_to_torch(spec, defines=defines, disabled=["share-concat"]) != plain


@pytest.mark.parametrize("disable", ["share_concat", "prune,share-concat", ["prune", "nope"]])
def test_unknown_pass_names_list_the_real_ones(disable):
    ir = build_ir(TINY)
    with pytest.raises(UsageError, match=r"disabled: there is no pass .*; the passes are prune, share-concat"):
        optimize(ir, disable)
    with pytest.raises(UsageError, match=r"error: disable: there is no pass .*; the passes are prune, share-concat"):
        udnet.load(TINY, disable=disable)


def test_disable_of_the_wrong_type():
    with pytest.raises(UsageError, match=r"disable takes pass names \(str\), got int 3"):
        udnet.load(TINY, disable=[3])
    with pytest.raises(UsageError, match=r"disabled takes pass names \(str\), got int 1"):
        optimize(build_ir(TINY), 1)


@pytest.mark.parametrize("value, message", [
    ("1", "fractal_column must be a column number .* got str '1'"),
    (1.0, "fractal_column must be a column number .* got float 1.0"),
    (True, "fractal_column must be a column number .* got bool True"),
    (0, "fractal_column must be 1 or more"),
])
def test_fractal_column_is_checked(value, message):
    with pytest.raises(UsageError, match=message):
        udnet.load(SPECS / "fractal.ud", fractal_column=value)
    with pytest.raises(UsageError, match=message):
        compile_to_torch(SPECS / "fractal.ud", fractal_column=value)


def test_fractal_column_needs_prune():
    with pytest.raises(UsageError, match="fractal_column needs the prune pass"):
        compile_to_torch(SPECS / "fractal.ud", fractal_column=1, disabled="prune")


@pytest.mark.parametrize("network", [[], 3, b"N"])
def test_network_must_be_a_name(network):
    with pytest.raises(UsageError, match="network must be the name of a network"):
        udnet.load(TINY, network)
    with pytest.raises(UsageError, match="network must be the name of a network"):
        build_ir(TINY, network)


def _self_holding_list() -> list:
    a: list = []
    a.append(a)
    return a


@pytest.mark.parametrize("defines, message", [
    ("k=12", r"defines must be a dict \{name: value\} or a list of 'name=value' strings, got str 'k=12'; "
             r"for one, write \['k=12'\]"),
    (12, "defines must be a dict"),
    ([12], "defines must hold 'name=value' strings, got int 12"),
    ({"k": object()}, "parameter k: a value is an int, a finite float, a bool, a str or a list of them, got object"),
    ({"k": float("nan")}, "parameter k: .* got float nan"),
    ({"k": [1, {2}]}, "parameter k: .* got set"),
    ({1: 2}, "parameter names are names, got int 1"),
    ({"é": 2}, "parameter names are names, got str 'é'"),
    ({"k": _self_holding_list()}, "parameter k: lists nest more than 256 deep"),
])
def test_defines_are_checked(defines, message):
    with pytest.raises(UsageError, match=message):
        build_ir(TINY, None, defines)


def test_defines_as_a_list_tuple_or_dict():
    for defines in (["k=2"], ("k=2",), {"k": 2}):
        assert build_ir(TINY, None, defines).param_count() == 2 * 3 * 3 * 3


def test_load_parameters_are_checked():
    with pytest.raises(UsageError, match="parameter k: .* got complex"):
        udnet.load(TINY, k=1j)


@pytest.mark.parametrize("spec, message", [
    (123, "spec must be a path .* got int 123"),
    (None, "spec must be a path .* got NoneType None"),
    (b"x.ud", "spec must be a path .* got bytes"),
    ("", "spec is an empty string"),
])
def test_spec_of_the_wrong_type(spec, message):
    with pytest.raises(UsageError, match=message):
        udnet.load(spec)
    with pytest.raises(UsageError, match=message.replace("spec", "source", 1)):
        build_ir(spec)


@pytest.mark.parametrize("limits, message", [
    ({"max_nodes": 10}, "limits must be a udnet.elaborate.elaborator.Limits or None, got dict"),
    (Limits(max_nodes=0), "limits.max_nodes must be a positive int, got int 0"),
    (Limits(max_steps="5"), "limits.max_steps must be a positive int, got str '5'"),
])
def test_limits_are_checked(limits, message):
    with pytest.raises(UsageError, match=message):
        build_ir(TINY, limits=limits)
    with pytest.raises(UsageError, match=message):
        udnet.load(TINY, limits=limits)


def test_other_arguments_are_checked():
    with pytest.raises(UsageError, match="ir must be an IR"):
        optimize("not an ir")
    with pytest.raises(UsageError, match="spec_name must be a str or None, got int 3"):
        compile_to_torch(TINY, spec_name=3)
