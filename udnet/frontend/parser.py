"""Lark front end: source text -> typed AST (``udnet.frontend.ast``) with spans.

The grammar (``grammar/udnet.lark`` in the repository, ``udnet/grammar/`` in the
wheel) is LALR(1); the AST is built by an inline transformer while parsing, so
deeply nested input never recurses in Python.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import stat
import sys
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from udnet.errors import Source, Span, UdnetError, normalize_newlines
from udnet.frontend import ast
from udnet.limits import INT_LIMIT, MAX_NESTING, MAX_SOURCE_BYTES


def grammar_text() -> str:
    """The grammar shipped inside the package (``udnet/grammar/udnet.lark`` in the wheel)."""
    try:
        return resources.files("udnet.grammar").joinpath("udnet.lark").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        # An editable install maps no package onto grammar/; read it from the checkout.
        return (Path(__file__).resolve().parents[2] / "grammar" / "udnet.lark").read_text(encoding="utf-8")


#: How the parser is built; part of the cache key.
_LARK_OPTIONS = dict(parser="lalr", start=["start", "expr"], propagate_positions=True, maybe_placeholders=True)


@lru_cache(maxsize=None)
def _parser() -> Lark:
    # Building the LALR tables takes ~0.1 s, a third of `udnet check`; loading them takes
    # ~0.01 s. So they are cached, but only where no other user can write (a pickle runs
    # code when loaded): see _cache_dir. Never in the shared temp directory.
    grammar = grammar_text()
    key = hashlib.sha256(f"{grammar}\0{sorted(_LARK_OPTIONS.items())}\0{sys.version_info[:2]}".encode()).hexdigest()
    name = f"parser-lark{lark.__version__}-{key[:32]}.pickle"
    cache = _cache_dir()
    if cache is not None:
        parser = _load_cached(cache, name)
        if parser is not None:
            return parser
    parser = Lark(grammar, **_LARK_OPTIONS)
    if cache is not None:
        _save_cached(cache, name, parser)
    return parser


def _safe(st: os.stat_result, uid: int) -> bool:
    """Owned by this user, writable by no one else."""
    return st.st_uid == uid and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/udnet`` (or ``~/.cache/udnet``), created 0700; None (build the
    parser in memory) unless it is a real directory owned by this user that no one else
    can write, or where the platform cannot tell."""
    if not hasattr(os, "getuid") or not hasattr(os, "O_NOFOLLOW"):
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    path = os.path.join(base, "udnet")
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
    except OSError:
        return None
    return path if stat.S_ISDIR(st.st_mode) and _safe(st, os.getuid()) else None


def _load_cached(directory: str, name: str) -> Lark | None:
    """The cached parser, if the directory and the file (opened without following links,
    then checked through the open descriptors) are this user's alone."""
    uid = os.getuid()
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(dfd)
        if not (stat.S_ISDIR(st.st_mode) and _safe(st, uid)):
            return None
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and _safe(st, uid)):
            return None
        try:
            return Lark.load(f)
        except Exception:  # a stale or damaged cache: rebuild (and rewrite) it
            return None


def _save_cached(directory: str, name: str, parser: Lark) -> None:
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".parser-", suffix=".tmp", dir=directory)  # mode 0600
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, os.path.join(directory, name))
    except Exception:  # a read-only or full disk: the cache is only an optimisation
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def parse(source: Source, max_bytes: int = MAX_SOURCE_BYTES, max_nesting: int = MAX_NESTING) -> ast.Module:
    """Parse a whole spec file."""
    return _parse(source, "start", max_bytes, max_nesting)


def parse_expr(source: Source, max_bytes: int = MAX_SOURCE_BYTES, max_nesting: int = MAX_NESTING) -> ast.Expr:
    """Parse one expression (a ``-D`` value, a label interpolation)."""
    return _parse(source, "expr", max_bytes, max_nesting)


def source_too_large(source: Source, size: int | None, max_bytes: int) -> UdnetError:
    what = f"{size:,} bytes, " if size is not None else ""
    return UdnetError(
        f"the spec is {what}more than the limit of {max_bytes:,} bytes (--max-source-bytes)",
        Span(Source(source.name, source.text[:4096]), 1, 1, 1, 2),
        hint="a spec describes a network with loops and blocks, so a source this large is usually a "
        "mistake; if it is not, raise the limit with --max-source-bytes N",
    )


def _parse(source: Source, start: str, max_bytes: int = MAX_SOURCE_BYTES, max_nesting: int = MAX_NESTING):
    if "\r" in source.text:  # CR LF or lone CR line ends (files arrive normalized already)
        source = Source(source.name, normalize_newlines(source.text))
    text = source.text
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise source_too_large(source, len(text.encode("utf-8", "surrogatepass")), max_bytes)
    _check_brackets(source, max_nesting)  # before Lark, which takes seconds on huge nested input
    builder = _Builder(source, max_nesting)
    # Parsing allocates a tree and frees none of it: the cyclic collector would only add time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            tree = _parser().parse(text, start=start)
        except UnexpectedInput as exc:
            raise _syntax_error(source, exc) from None
        try:
            result = builder.transform(tree)
        except VisitError as exc:
            # Lark wraps what a transformer callback raises; user errors must surface as they are.
            if isinstance(exc.orig_exc, UdnetError):
                raise exc.orig_exc from None
            raise
    finally:
        if gc_was_enabled:
            gc.enable()
    _check_depth(result, max_nesting)
    return result


def _nesting_error(source: Source, line: int, col: int, max_nesting: int) -> UdnetError:
    return UdnetError(
        f"the spec nests too deeply here: more than the limit of {max_nesting} levels (--max-nesting)",
        Span(source, line, col, line, col + 1),
        hint="brackets, blocks and sub-expressions nest inside each other; assign inner parts to "
        "variables, or raise the limit with --max-nesting N",
    )


#: Tokens that matter for nesting; everything else only ends a run of prefix operators.
#: An unclosed string runs to the end of its line (the parser reports it): were it to fail
#: and be retried at each later quote, a line like "\"\"\"... would take quadratic time.
_NEST_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"?|\+\+|[-+]|[(\[{]|[)\]}]|[A-Za-z_]\w*|.', re.S)


def _check_brackets(source: Source, max_nesting: int) -> None:
    """Bracket depth plus runs of prefix operators (``- - - 1``, ``not not x``), by a fast scan."""
    text = source.text
    depth = run = 0
    for m in _NEST_TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c.isspace() or c == "#":
            continue
        if c in "([{":
            depth += 1
            run = 0
        elif c in ")]}":
            depth = max(0, depth - 1)
            run = 0
            continue
        elif tok in ("-", "+", "not"):
            run += 1
        else:
            run = 0
            continue
        if depth + run > max_nesting:
            pos = m.start()
            line = text.count("\n", 0, pos) + 1
            col = pos - text.rfind("\n", 0, pos)
            raise _nesting_error(source, line, col, max_nesting)


def _check_depth(tree, max_nesting: int) -> None:
    """Every AST node at most ``max_nesting`` below the root (the elaborator recurses per level)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_nesting:
            s = node.span
            raise _nesting_error(s.source, s.line, s.col, max_nesting)
        for v in vars(node).values():
            if isinstance(v, ast.Node):
                stack.append((v, depth + 1))
            elif isinstance(v, list):
                stack.extend((i, depth + 1) for i in v if isinstance(i, ast.Node))


_READABLE = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "LABEL": "a label",
    "COMPARE": "a comparison",
    "SLICE_COLON": "':'",
    "$END": "end of input",
}


def _readable(term: str) -> str:
    if term in _READABLE:
        return _READABLE[term]
    pattern = _parser().get_terminal(term).pattern
    return repr(pattern.value) if pattern.type == "str" else term.lower()


def _syntax_error(source: Source, exc: UnexpectedInput) -> UdnetError:
    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = text_lines(source.text)
        line, col = len(lines), len(lines[-1]) + 1
        span = Span(source, line, col, line, col + 1)
        err = UdnetError("unexpected end of file", span)
        opened = _unclosed_bracket(source.text)
        if opened:
            err.hint = f"'{opened[0]}' opened at line {opened[1]} is never closed"
        return err
    if isinstance(exc, UnexpectedCharacters):
        ch = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else "?"
        span = Span(source, line, col, line, col + 1)
        hint = None
        if ch == "'":
            hint = 'strings use double quotes: "nearest"'
        return UdnetError(f"unexpected character {ch!r}", span, hint)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    width = max(1, len(str(tok)))
    span = Span(source, line, col, line, col + width)
    expected = sorted({_readable(t) for t in exc.expected if not t.startswith("__")})
    shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
    text = str(tok).strip() or tok.type
    hint = None
    if tok.type == "LABEL":
        hint = "a label names a stage or a `{ ... }` group and comes first on its line: `conv1: conv(64, 3)`"
    elif text == "=" and "'=='" in expected:
        hint = "compare with '=='"
    # Lark reports no expected terminals where only the end of a -D value would fit.
    expect = f"; expected {shown}" if expected else ""
    return UdnetError(f"unexpected {text!r}{expect}", span, hint)


def text_lines(text: str) -> list[str]:
    """Lines as the parser counts them: ``splitlines`` would also split at \\f, \\v, \\x85,
    \\u2028 and more, and put positions on lines that the parser never saw."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


#: An unclosed string runs to the end of the line (linear, as in _NEST_TOKEN).
_COMMENT_OR_STRING = re.compile(r'#.*|"(?:[^"\\]|\\.)*"?')


def _unclosed_bracket(text: str) -> tuple[str, int] | None:
    stack: list[tuple[str, int]] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for lineno, line in enumerate(text_lines(text), 1):
        line = _COMMENT_OR_STRING.sub("", line)
        for ch in line:
            if ch in "([{":
                stack.append((ch, lineno))
            elif ch in pairs and stack and stack[-1][0] == pairs[ch]:
                stack.pop()
    return stack[-1] if stack else None


def _respan(span: Span, source: Source) -> Span:
    return Span(source, span.line, span.col, span.end_line, span.end_col)


def rebase_spans(expr, source: Source, lines: int = 0, cols: int = 0) -> None:
    """Point the spans of a sub-parsed expression at ``source``, moved down ``lines`` lines
    and, on its first line, right ``cols`` columns (one pass over the expression)."""

    def move(line: int, col: int) -> tuple[int, int]:
        return line + lines, col + cols if line == 1 else col

    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, ast.Node):
            continue
        s = node.span
        span = Span(source, *move(s.line, s.col), *move(s.end_line, s.end_col))
        object.__setattr__(node, "span", span)
        stack.extend(v for v in vars(node).values() if isinstance(v, (ast.Node, list)))


_LABEL_PART = re.compile(r"\{([^{}\n]*)\}")
#: A label interpolation that is one name or one integer (the common case).
_WORD = re.compile(r"[ \t\f\r]*([A-Za-z_][A-Za-z0-9_]*|[0-9]+)[ \t\f\r]*")


@lru_cache(maxsize=None)
def _keywords() -> frozenset[str]:
    """Words the grammar reserves (``true``, ``not``, ``if``, ...): never plain names."""
    return frozenset(re.findall(r'"([A-Za-z_]+)"', grammar_text()))


def _int_literal(text: str, span: Span) -> ast.Literal:
    digits = text.replace("_", "").lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > INT_LIMIT:
        raise UdnetError("integer literal is too large (limit 2**62)", span)
    return ast.Literal(span, int(digits))

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


@v_args(meta=True, inline=True)
class _Builder(Transformer_NonRecursive):
    """Turns Lark's parse tree into AST nodes, attaching a Span to each."""

    def __init__(self, source: Source, max_nesting: int = MAX_NESTING):
        super().__init__()
        self.source = source
        self.max_nesting = max_nesting
        self._lines: list[str] | None = None  # the source's lines, split once when a doc is read

    # -- helpers --
    def _span(self, meta) -> Span:
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, tok: Token) -> Span:
        return Span(self.source, tok.line, tok.column, tok.end_line, tok.end_column)

    def _label(self, tok: Token | None) -> ast.Label | None:
        if tok is None:
            return None
        text = str(tok).rstrip()[:-1].rstrip()  # drop the trailing ':'
        parts: list = []
        pos = 0
        for m in _LABEL_PART.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            inner = m.group(1)
            if not inner.strip():
                raise UdnetError("empty '{}' in label", self._tok(tok), "write the value to interpolate, e.g. layer{i}")
            parts.append(self._interpolation(inner, tok.line, tok.column + m.start(1)))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        span = Span(self.source, tok.line, tok.column, tok.line, tok.column + len(text))
        return ast.Label(span, parts)

    def _interpolation(self, inner: str, line: int, col: int) -> ast.Expr:
        """Parse the text of one ``{expr}`` (at ``line``:``col``) on its own and move its spans there.

        Each interpolation costs its own length, so a label of n of them parses in linear
        time (padding every sub-parse out to the label's position made it quadratic)."""
        word = _WORD.fullmatch(inner)
        if word and word.group(1) not in _keywords():  # `{i}`, `{2}`: no parser needed
            start = col + word.start(1)
            span = Span(self.source, line, start, line, start + len(word.group(1)))
            text = word.group(1)
            return _int_literal(text, span) if text[0].isdigit() else ast.Name(span, text)
        # The spec as a whole already passed the size and bracket-nesting limits.
        size = len(inner.encode("utf-8", "surrogatepass"))
        try:
            expr = _parse(Source(self.source.name, inner), "expr", size, self.max_nesting)
        except UdnetError:
            # Rare, and it ends the parse: redo it padded to the real position so that the
            # message, the caret and hints such as "opened at line N" name the right place.
            padded = "\n" * (line - 1) + " " * (col - 1) + inner
            try:
                _parse(Source(self.source.name, padded), "expr", len(padded.encode("utf-8", "surrogatepass")),
                       self.max_nesting)
            except UdnetError as err:
                if err.span is not None:
                    err.span = _respan(err.span, self.source)
                raise
            raise
        rebase_spans(expr, self.source, line - 1, col - 1)
        return expr

    # -- top level --
    def start(self, meta, *defs):
        return ast.Module(self._span(meta) if not meta.empty else Span(self.source, 1, 1, 1, 1), list(defs))

    def _definition(self, kind, meta, name, params, body, inputs=None):
        return ast.Definition(self._span(meta), kind, str(name), self._tok(name), params, body, inputs or [],
                              self._doc_above(meta.line))

    def _doc_above(self, line: int) -> str:
        """The comment lines right above line ``line`` (up to a blank or code line), each
        without its ``#`` and the one space after it: a definition's doc, as in Python."""
        if self._lines is None:
            self._lines = self.source.text.split("\n")
        doc: list[str] = []
        for text in reversed(self._lines[: line - 1]):
            text = text.strip()
            if not text.startswith("#"):
                break
            doc.append(text[2:] if text.startswith("# ") else text[1:])
        return "\n".join(reversed(doc))

    def block_def(self, meta, name, params, inputs, body):
        return self._definition("block", meta, name, params, body, inputs)

    def inputs(self, meta, *names):
        return [ast.Param(self._tok(n), str(n), None) for n in names if n is not None]

    def network_def(self, meta, name, params, body):
        return self._definition("network", meta, name, params, body)

    def params(self, meta, *items):
        return [p for p in items if p is not None]

    def param(self, meta, name, default):
        return ast.Param(self._span(meta), str(name), default)

    def body(self, meta, *stmts):
        return ast.Body(self._span(meta), list(stmts))

    # -- statements --
    def assign(self, meta, name, value):
        return ast.Assign(self._span(meta), str(name), value)

    def expr_stmt(self, meta, label, value):
        return ast.ExprStmt(self._span(meta), self._label(label), value)

    def scope_stmt(self, meta, label, body):
        return ast.ScopeStmt(self._span(meta), self._label(label), body)

    def for_stmt(self, meta, var, iterable, body):
        return ast.For(self._span(meta), str(var), iterable, body)

    def if_stmt(self, meta, cond, body, orelse):
        return ast.If(self._span(meta), cond, body, orelse)

    def return_stmt(self, meta, value):
        return ast.Return(self._span(meta), value)

    def return_named(self, meta, *named):
        return ast.ReturnNamed(self._span(meta), [n for n in named if n is not None])

    def named(self, meta, label, value):
        return ast.NamedOutput(self._span(meta), self._label(label), value)

    def assert_stmt(self, meta, cond, message):
        return ast.Assert(self._span(meta), cond, message)

    # -- expressions --
    def pipe(self, meta, value, label, stage):
        return ast.Pipe(self._span(meta), value, self._label(label), stage)

    def ternary(self, meta, cond, then, orelse):
        return ast.Ternary(self._span(meta), cond, then, orelse)

    def _bin(op):  # noqa: N805 - a factory used at class creation time
        def build(self, meta, left, right):
            return ast.BinOp(self._span(meta), op, left, right)

        return build

    or_op = _bin("or")
    and_op = _bin("and")
    contains = _bin("in")
    concat = _bin("++")
    add = _bin("+")
    sub = _bin("-")
    mul = _bin("*")
    truediv = _bin("/")
    floordiv = _bin("//")
    mod = _bin("%")
    power = _bin("**")
    del _bin

    def compare(self, meta, left, op, right):
        return ast.BinOp(self._span(meta), str(op), left, right)

    def not_op(self, meta, operand):
        return ast.UnaryOp(self._span(meta), "not", operand)

    def neg(self, meta, operand):
        return ast.UnaryOp(self._span(meta), "-", operand)

    def pos(self, meta, operand):
        return ast.UnaryOp(self._span(meta), "+", operand)

    def range(self, meta, lo, hi):
        return ast.RangeExpr(self._span(meta), lo, hi)

    def call(self, meta, func, *args):
        positional, keywords = [], []
        for a in args:
            if a is None:
                continue
            if isinstance(a, ast.Keyword):
                keywords.append(a)
            elif keywords:
                raise UdnetError("positional argument after a keyword argument", a.span)
            else:
                positional.append(a)
        return ast.Call(self._span(meta), func, positional, keywords)

    def kwarg(self, meta, name, value):
        return ast.Keyword(self._span(meta), str(name), value)

    def index(self, meta, value, index):
        return ast.Index(self._span(meta), value, index)

    def slice(self, meta, value, lo, _colon, hi):
        return ast.SliceExpr(self._span(meta), value, lo, hi)

    def field(self, meta, value, name):
        return ast.Field(self._span(meta), value, str(name))

    def tuple_lit(self, meta, *items):
        return ast.TupleExpr(self._span(meta), [i for i in items if i is not None])

    def int_lit(self, meta, tok):
        return _int_literal(str(tok), self._tok(tok))

    def float_lit(self, meta, tok):
        value = float(tok)
        if value in (float("inf"), float("-inf")):
            raise UdnetError("number literal is too large", self._tok(tok))
        return ast.Literal(self._tok(tok), value)

    def string_lit(self, meta, tok):
        body = str(tok)[1:-1]
        return ast.Literal(self._tok(tok), re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body))

    def true_lit(self, meta):
        return ast.Literal(self._span(meta), True)

    def false_lit(self, meta):
        return ast.Literal(self._span(meta), False)

    def name(self, meta, tok):
        return ast.Name(self._tok(tok), str(tok))

    def list_lit(self, meta, *items):
        return ast.ListExpr(self._span(meta), [i for i in items if i is not None])
