"""User-facing errors, printed like a compiler: ``file:line:col: error: ...``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A named piece of text that spans point into (a spec file, a ``-D`` value)."""

    name: str
    text: str

    def line(self, lineno: int) -> str:
        # Lines as the parser counts them: split at \n only (splitlines would also split at
        # \f, \v, \x85, \u2028, ... and quote the wrong line after one of those).
        lines = self.text.split("\n")
        return lines[lineno - 1].rstrip("\r") if 0 < lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A 1-based, end-inclusive-line, end-exclusive-column region of a source."""

    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{show_path(self.source.name)}:{self.line}:{self.col}"

    def __repr__(self) -> str:  # keep IR dumps short
        return f"Span({self})"


class UdnetError(Exception):
    """A mistake in the user's input. Never a bug in udnet.

    ``notes`` are (span, text) pairs printed after the main message, e.g. the
    chain of block instantiations that led to the error.
    """

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.notes: list[tuple[Span | None, str]] = []

    def with_note(self, span: Span | None, text: str) -> "UdnetError":
        self.notes.append((span, text))
        return self

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        out = [_located(self.span, "error", _printable(self.message))]
        if self.hint:
            out.append(f"hint: {_printable(self.hint)}")
        for span, text in self.notes:
            out.append(_located(span, "note", _printable(text)))
        return "\n".join(out)


class UsageError(UdnetError):
    """A mistake on the command line rather than in a spec (exit code 2)."""


def _printable(text: str, limit: int = 2000) -> str:
    """Text from a spec may hold terminal escapes or bidi overrides: show them escaped.
    And it may be huge (a name or a string built in a loop): show its start."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n " else c.encode("unicode_escape").decode("ascii") for c in text)


def normalize_newlines(text: str) -> str:
    """CR LF and a lone CR (old Mac files) become LF: the parser, line numbers and quoted
    lines all count lines at LF only."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def show_path(path: str) -> str:
    """A file name as printed in messages: escapes, newlines and other unprintable
    characters escaped, so a name cannot forge lines or drive the terminal."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in path)


#: Quoted source lines longer than this show a window around the caret.
_WIDE = 160


def _located(span: Span | None, kind: str, message: str) -> str:
    if span is None:
        return f"udnet: {kind}: {message}"
    head = f"{span}: {kind}: {message}"
    text = span.source.line(span.line)
    if not text:
        return head
    # Tabs and other unprintable characters would misalign the caret (or drive the
    # terminal); render each as a single space.
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    col = span.col
    width = span.end_col - span.col if span.end_line == span.line else len(text) - span.col + 1
    if len(text) > _WIDE:  # a generated one-line spec: quote the part around the caret
        start = max(0, min(col - 1 - _WIDE // 2, len(text) - _WIDE))
        text = ("..." if start else "") + text[start : start + _WIDE] + ("..." if start + _WIDE < len(text) else "")
        col = col - start + (3 if start else 0)
    width = max(1, min(width, len(text) - col + 1))
    gutter = f"{span.line:>5} | "
    caret = " " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^" + "~" * (width - 1)
    return f"{head}\n{gutter}{text}\n{caret}"
