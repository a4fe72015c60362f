"""Lines of Python source laid out the way ``ruff format`` lays them out: statements and
calls split at their arguments when too long, ``def`` lines, literals, docstring text."""

from __future__ import annotations

import re
from typing import Any

LINE = 88
#: Statements are printed relative to a method body, which sits 8 columns in.
BODY_WIDTH = LINE - 8


def lit(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple):
        return "(" + ", ".join(lit(e) for e in v) + ("," if len(v) == 1 else "") + ")"
    raise TypeError(type(v))


def safe_text(s: str) -> str:
    """Text from a spec inside a docstring: no quotes, backslashes or line breaks survive."""
    return s.encode("unicode_escape").decode("ascii").replace('"', "'")


def wrap_doc(line: str) -> list[str]:
    if len(line) <= LINE:
        return [line]
    out, cur = [], ""
    for word in line.split(" "):
        if cur and len(cur) + 1 + len(word) > LINE:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    out.append(cur)
    return out


def def_lines(indent: str, name: str, args: list[str]) -> list[str]:
    one = f"{indent}def {name}({', '.join(args)}):"
    if len(one) <= LINE:
        return [one]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= LINE:
        return [f"{indent}def {name}(", inner, f"{indent}):"]
    return [f"{indent}def {name}("] + [f"{indent}    {a}," for a in args] + [f"{indent}):"]


def fmt_call(prefix: str, fn: str, args: list[str], indent: str = "", reserve: int = 0) -> list[str]:
    """``prefix fn(args)`` as ruff format lays it out (``reserve``: room for a trailing comma)."""
    one = f"{indent}{prefix}{fn}({', '.join(args)})"
    if len(one) + reserve <= BODY_WIDTH:
        return [one]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= BODY_WIDTH:
        return [f"{indent}{prefix}{fn}(", inner, f"{indent})"]
    lines = [f"{indent}{prefix}{fn}("]
    for a in args:
        lines += _arg_lines(a, indent + "    ")
    return lines + [f"{indent})"]


def _arg_lines(arg: str, indent: str) -> list[str]:
    """One argument of an exploded call, itself exploded if it does not fit."""
    if len(indent) + len(arg) + 1 <= BODY_WIDTH:
        return [f"{indent}{arg},"]
    m = re.fullmatch(r"([\w.]+)\((.*)\)", arg)
    if not m:
        return [f"{indent}{arg},"]
    inner = fmt_call("", m.group(1), _split_args(m.group(2)), indent, reserve=1)
    inner[-1] += ","
    return inner


def stmt_lines(prefix: str, expr: str, indent: str = "") -> list[str]:
    one = f"{indent}{prefix}{expr}"
    if len(one) <= BODY_WIDTH:
        return [one]
    m = re.fullmatch(r"(.*?)\((.*)\)", expr)
    if m and m.group(2).count("(") == m.group(2).count(")"):
        args = _split_args(m.group(2))
        return fmt_call(prefix, m.group(1), args, indent)
    return [one]


def _split_args(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out
