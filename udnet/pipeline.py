"""The compile pipeline, one call per stage: read -> parse -> elaborate -> verify.

The command line and the Python API both go through here. Nothing on this path
imports torch.
"""

from __future__ import annotations

import os
import re

from udnet.elaborate.elaborator import Elaborator, Limits
from udnet.errors import Source, Span, UdnetError, UsageError
from udnet.frontend import ast, parse, parse_expr
from udnet.frontend.parser import MAX_SOURCE_BYTES, rebase_spans, source_too_large
from udnet.ir.graph import IR
from udnet.ir.verify import verify

_DEFINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.S)


#: At most this much is read from a spec path when no limit is given (/dev/zero or a
#: huge file must not fill memory); parse() then enforces Limits.max_source_bytes.
READ_CAP = 64 * 2**20


def read_source(path: str, max_bytes: int | None = None) -> Source:
    cap = READ_CAP if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
            size = os.fstat(f.fileno()).st_size if len(data) > cap and os.path.isfile(path) else None
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a spec") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > cap:
        head = Source(path, data[:4096].decode("utf-8", "replace"))
        raise source_too_large(head, size, max_bytes if max_bytes is not None else MAX_SOURCE_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        col = len(data[start : e.start].decode("utf-8", "replace")) + 1  # in characters, as the caret is
        src = Source(path, data.decode("utf-8", "replace"))
        raise UdnetError("the file is not valid UTF-8", Span(src, line, col, line, col + 1)) from None
    if text.startswith("\ufeff"):  # a byte-order mark, as some Windows editors write
        text = text[1:]
    return Source(path, text)


def parse_defines(defines: list[str] | dict | None) -> dict[str, tuple[ast.Expr, Span]]:
    """``-D name=value`` strings (or a {name: value} dict) -> parsed value expressions."""
    out: dict[str, tuple[ast.Expr, Span]] = {}
    if isinstance(defines, dict):
        defines = [f"{k}={_literal(v)}" for k, v in defines.items()]
    for text in defines or []:
        m = _DEFINE.fullmatch(text)
        if not m:
            raise UsageError(f"-D expects name=value, got '{text}'")
        name, value = m.group(1), m.group(2)
        line = f"-D {text}"
        offset = len(line) - len(value)
        src = Source("<command line>", line)
        if not value.strip():
            raise UdnetError(f"-D {name}= has no value", Span(src, 1, offset + 1, 1, offset + 2))
        padded = Source("<command line>", " " * offset + value)
        try:
            expr = parse_expr(padded)
        except UdnetError as err:
            if err.span is not None:
                s = err.span
                err.span = Span(src, s.line, s.col, s.end_line, s.end_col)
            raise
        rebase_spans(expr, src)
        if name in out:
            raise UsageError(f"-D {name} is given twice")
        out[name] = (expr, Span(src, 1, 4, 1, 4 + len(name)))
    return out


def _literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_literal(i) for i in v) + "]"
    return repr(v)


def build_ir(
    source: Source | str,
    network: str | None = None,
    defines=None,
    limits: Limits | None = None,
) -> IR:
    """Parse and elaborate a spec into a verified IR."""
    if isinstance(source, str):
        source = read_source(source) if os.path.exists(source) and not source.lstrip().startswith(
            ("block", "network", "#")
        ) else Source("<string>", source)
    limits = limits or Limits()
    module = parse(source, limits.max_source_bytes, limits.max_nesting)
    overrides = parse_defines(defines)
    ir = Elaborator(module, limits).elaborate(network, overrides)
    verify(ir, "elaboration")
    return ir


def optimize(ir: IR, disabled=(), fractal_column: int | None = None):
    """Run the pass pipeline on ``ir`` in place; returns the passes' reports."""
    from udnet.passes import Options, run_passes

    return run_passes(ir, set(disabled), Options(fractal_column=fractal_column))


def compile_to_torch(source, network=None, defines=None, *, limits=None, disabled=(), fractal_column=None,
                     spec_name=None) -> str:
    """Spec -> PyTorch source text (the contents of model.py), after the passes."""
    from udnet.backends.pytorch import emit_module

    if isinstance(source, str):
        source = read_source(source)
    ir = build_ir(source, network, defines, limits)
    optimize(ir, disabled, fractal_column)
    return emit_module(ir, spec_name or os.path.basename(source.name))
