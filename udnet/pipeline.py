"""The compile pipeline, one call per stage: read -> parse -> elaborate -> verify.

The command line and the Python API both go through here. Nothing on this path
imports torch.
"""

from __future__ import annotations

import os
import re
import select
import stat

from udnet.elaborate.elaborator import Elaborator, Limits
from udnet.errors import Source, Span, UdnetError, UsageError, normalize_newlines, show_path
from udnet.frontend import ast, parse, parse_expr
from udnet.frontend.parser import MAX_SOURCE_BYTES, rebase_spans, source_too_large
from udnet.ir.graph import IR
from udnet.ir.verify import verify

_DEFINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.S)


#: At most this much is read from a spec path when no limit is given (/dev/zero or a
#: huge file must not fill memory); parse() then enforces Limits.max_source_bytes.
READ_CAP = 64 * 2**20
#: Seconds a spec that is a FIFO with no writer waits for one before it is refused.
FIFO_WAIT = 1.0


def read_source(path: str, max_bytes: int | None = None) -> Source:
    cap = READ_CAP if max_bytes is None else max_bytes
    shown = show_path(path)
    try:
        data, fifo, size = _read_capped(path, cap)
    except FileNotFoundError:
        raise UsageError(f"no such file: {shown}") from None
    except IsADirectoryError:
        raise UsageError(f"{shown} is a directory, not a spec") from None
    except MemoryError:
        raise UsageError(f"cannot read {shown}: it does not fit in memory", hint="lower --max-source-bytes") from None
    except OSError as e:
        raise UsageError(f"cannot read {shown}: {e.strerror}") from None
    if size is not None or len(data) > cap:
        head = Source(path, normalize_newlines(data[:4096].decode("utf-8", "replace")))
        raise source_too_large(head, size, max_bytes if max_bytes is not None else MAX_SOURCE_BYTES)
    if fifo and not data:
        raise UsageError(
            f"cannot read {shown}: it is a FIFO and nothing was written to it within {FIFO_WAIT:g} s",
            hint="start the writer first, or give a regular file",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = normalize_newlines(data[: e.start].decode("utf-8", "replace"))
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1  # in characters, as the caret is
        src = Source(path, normalize_newlines(data.decode("utf-8", "replace")))
        raise UdnetError("the file is not valid UTF-8", Span(src, line, col, line, col + 1)) from None
    if text.startswith("\ufeff"):  # a byte-order mark, as some Windows editors write
        text = text[1:]
    return Source(path, normalize_newlines(text))


def _read_capped(path: str, cap: int) -> tuple[bytes, bool, int | None]:
    """(at most ``cap + 1`` bytes of ``path``, whether it is a FIFO, the size of a regular
    file over the cap (its first bytes only are read) or None). Read in chunks: ``cap``
    may be any size.

    The open never waits: a plain open of a FIFO blocks until a writer comes, possibly
    forever. Reading then waits for a writer that is there; with none, a FIFO reads as
    empty, so one with nothing to read gets FIFO_WAIT seconds for a writer to come."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(path)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        if stat.S_ISREG(st.st_mode) and st.st_size > cap:
            return f.read(4096), False, st.st_size
        fifo = stat.S_ISFIFO(st.st_mode)
        chunks: list[bytes] = []
        got = 0
        waited = False
        while got <= cap:
            chunk = f.read(min(cap + 1 - got, 1 << 20))
            if chunk:
                chunks.append(chunk)
                got += len(chunk)
            elif fifo and not got and not waited:  # no writer yet: give one a moment to come
                waited = True
                select.select([fd], [], [], FIFO_WAIT)
            else:
                break
    return b"".join(chunks), fifo, None


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
