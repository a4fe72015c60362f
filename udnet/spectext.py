"""Values as a spec writes them: the one printer behind messages, op signatures, drawings,
the summary, model.py's header and the ``-D`` text of ``udnet.load``'s keyword values.

``none``, ``true`` and ``false``; numbers as Python prints them; strings in double
quotes; lists, tuples and ranges in brackets; a tensor or a stage as its description.
Callers differ only in what the text is for, and each difference is an option of
``spec_text``: how strings are quoted, whether long values are cut, how deep lists are
shown, and whether floats are short.
"""

from __future__ import annotations

from typing import Any

#: Lists nested deeper than this are shown as ``[...]``: values may nest as deep as
#: --max-nesting allows, and a printout of hundreds of brackets says nothing.
SHOW_DEPTH = 24

_DISPLAY_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def spec_string(s: str, quote: str = "display") -> str:
    """``s`` in double quotes. ``quote`` says for whom:

    * ``"display"``: a reader. Characters that are not printable (NUL, BEL, terminal
      escapes, bidi overrides, line and paragraph separators) are shown escaped,
      ``\\x1b``, ``\\u202e``, so that no printout or drawing ever carries them raw.
    * ``"source"``: the parser, which reads the text back (``-D`` values). Only the
      escapes the lexer knows (``\\\\``, ``\\"``, ``\\n``) are written, since ``\\x1b``
      would read back as four characters; everything else stays as it is.
    * ``"plain"``: an error message, which ``UdnetError.format`` escapes as a whole when
      it prints it (and model.py's header escapes too), so the string goes in as it is.
    """
    if quote == "plain":
        return f'"{s}"'
    if quote == "source":
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if s.isprintable():
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for c in s:
        e = _DISPLAY_ESCAPES.get(c)
        if e is None and not c.isprintable():
            e = c.encode("unicode_escape").decode("ascii")
        out.append(c if e is None else e)
    return '"' + "".join(out) + '"'


def spec_text(
    v: Any, *, quote: str = "display", limit: int | None = None, depth: int | None = SHOW_DEPTH,
    short_floats: bool = False,
) -> str:
    """``v`` as a spec writes it.

    ``quote``: how strings are quoted (``spec_string``). ``limit``: cut the text short
    after about this many characters, a string after ``limit`` characters and a list
    before its first item past the limit, each marked ``...``; messages need it, since a
    list may hold a million items and a range 2**62. ``depth``: lists nested this deep
    are shown as ``[...]`` (None: never, where ``limit`` bounds the text already or the
    text must be whole). ``short_floats``: six significant digits (``0.333333``, ``2``),
    for a drawing's labels, which must stay narrow.
    """
    parts: list[str] = []
    size = 0

    def put(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += len(text)

    def walk(x: Any, level: int) -> None:
        if x is None:
            put("none")
        elif isinstance(x, bool):
            put("true" if x else "false")
        elif isinstance(x, float):
            put(f"{x:g}" if short_floats else repr(x))
        elif isinstance(x, str):
            put(spec_string(x if limit is None or len(x) <= limit else x[:limit] + "...", quote))
        elif isinstance(x, (list, tuple, range)):
            if depth is not None and level >= depth and len(x):
                put("[...]")
                return
            put("[")
            for k, item in enumerate(x):
                if k:
                    put(", ")
                if limit is not None and size > limit:
                    put("...")
                    break
                walk(item, level + 1)
            put("]")
        elif hasattr(x, "describe"):  # a tensor or a stage: not a literal
            put(x.describe())
        else:
            put(str(x))

    walk(v, 0)
    return "".join(parts)
