"""Lines of Python source laid out the way ``ruff format`` lays them out: statements and
calls split at their arguments when too long, ``def`` lines, docstring text."""

from __future__ import annotations

from udnet.backends.pytorch.expr import Call, Expr, arguments, render

LINE = 88
#: Statements are printed relative to a method body, which sits 8 columns in.
BODY_WIDTH = LINE - 8


def stmt_lines(prefix: str, expr: Expr, indent: str = "") -> list[str]:
    """``prefix expr`` (``prefix``: an assignment's targets, ``return`` or nothing); a call
    that does not fit is split at its arguments."""
    one = f"{indent}{prefix}{render(expr)}"
    if len(one) <= BODY_WIDTH or not isinstance(expr, Call):
        return [one]
    return call_lines(prefix, expr, indent)


def call_lines(prefix: str, c: Call, indent: str = "", reserve: int = 0) -> list[str]:
    """``prefix c`` as ruff format lays it out (``reserve``: room for a trailing comma)."""
    fn, args = render(c.func), arguments(c)
    one = f"{indent}{prefix}{fn}({', '.join(args)})"
    if len(one) + reserve <= BODY_WIDTH:
        return [one]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= BODY_WIDTH:
        return [f"{indent}{prefix}{fn}(", inner, f"{indent})"]
    lines = [f"{indent}{prefix}{fn}("]
    for arg, text in zip(c.args, args):
        lines += _arg_lines(arg, text, indent + "    ")
    lines += [f"{indent}    {text}," for text in args[len(c.args):]]
    return lines + [f"{indent})"]


def _arg_lines(arg: Expr, text: str, indent: str) -> list[str]:
    """One positional argument of a split call, itself split if it is a call that does not fit."""
    if len(indent) + len(text) + 1 <= BODY_WIDTH or not isinstance(arg, Call):
        return [f"{indent}{text},"]
    inner = call_lines("", arg, indent, reserve=1)
    inner[-1] += ","
    return inner


def def_lines(indent: str, name: str, params: list[str]) -> list[str]:
    one = f"{indent}def {name}({', '.join(params)}):"
    if len(one) <= LINE:
        return [one]
    inner = f"{indent}    {', '.join(params)}"
    if len(inner) <= LINE:
        return [f"{indent}def {name}(", inner, f"{indent}):"]
    return [f"{indent}def {name}("] + [f"{indent}    {p}," for p in params] + [f"{indent}):"]


def wrap_doc(line: str) -> list[str]:
    """A line of docstring prose filled into lines of at most LINE columns."""
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


def safe_text(s: str) -> str:
    """Text from a spec inside a docstring: no quotes, backslashes or line breaks survive."""
    return s.encode("unicode_escape").decode("ascii").replace('"', "'")
