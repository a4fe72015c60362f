"""User-facing errors, printed like a compiler: ``file:line:col: error: ...``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A named piece of text that spans point into (a spec file, a ``-D`` value)."""

    name: str
    text: str

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
        return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A 1-based, end-inclusive-line, end-exclusive-column region of a source."""

    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.col}"

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
        out = [_located(self.span, "error", self.message)]
        if self.hint:
            out.append(f"hint: {self.hint}")
        for span, text in self.notes:
            out.append(_located(span, "note", text))
        return "\n".join(out)


class UsageError(UdnetError):
    """A mistake on the command line rather than in a spec (exit code 2)."""


def _located(span: Span | None, kind: str, message: str) -> str:
    if span is None:
        return f"udnet: {kind}: {message}"
    head = f"{span}: {kind}: {message}"
    text = span.source.line(span.line)
    if not text:
        return head
    # Tabs would misalign the caret; render them as single spaces.
    text = text.replace("\t", " ")
    width = span.end_col - span.col if span.end_line == span.line else len(text) - span.col + 1
    width = max(1, min(width, len(text) - span.col + 1))
    gutter = f"{span.line:>5} | "
    caret = " " * (len(gutter) - 2) + "| " + " " * (span.col - 1) + "^" + "~" * (width - 1)
    return f"{head}\n{gutter}{text}\n{caret}"
