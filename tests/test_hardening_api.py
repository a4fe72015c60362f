"""Hardening: label interpolations parse in linear work, and the Python API checks its
arguments (one rule for "path or spec text", UsageErrors that name the argument).

Work is counted (parser calls, characters handed to the parser, scanner tokens), never timed.
"""

from __future__ import annotations

import pytest

from udnet.elaborate.elaborator import Limits
from udnet.errors import Source, UdnetError
from udnet.frontend import parser
from udnet.pipeline import build_ir



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
