"""The compile pipeline, one call per stage: read -> parse -> elaborate -> verify.

The command line and the Python API both go through here. Nothing on this path
imports torch.

A spec is given as a ``Source``, a path or spec text; one rule tells them apart
(``spec_source``): an ``os.PathLike`` (``pathlib.Path``) is always a path, and a
``str`` is spec text when it holds a newline or a ``{`` (every block and network has
a body in braces), else the path of a file. Arguments of the wrong type or value
raise ``UsageError`` naming the argument, never a bare ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import select
import stat
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Union

from udnet.elaborate.elaborator import Elaborator
from udnet.errors import Source, Span, UdnetError, UsageError, normalize_newlines, show_path
from udnet.frontend import ast, parse, parse_expr
from udnet.frontend.parser import rebase_spans, source_too_large
from udnet.ir.graph import IR
from udnet.ir.verify import verify
from udnet.limits import MAX_NESTING, MAX_SOURCE_BYTES, READ_CAP, Limits
from udnet.spectext import spec_text

_DEFINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: Seconds a spec that is a FIFO with no writer waits for one before it is refused.
FIFO_WAIT = 1.0


#: What a spec may be given as (see ``spec_source``).
Spec = Union[str, os.PathLike, Source]


def is_spec_text(spec: str) -> bool:
    """The rule for a ``str``: spec text holds a newline or a ``{`` (the body of every block
    and network is in braces); anything else is the path of a file."""
    return "\n" in spec or "{" in spec


def spec_source(spec: Spec, max_bytes: int | None = None, argument: str = "spec") -> Source:
    """``spec`` as a ``Source``: a ``Source`` as it is, an ``os.PathLike`` read as a file, a
    ``str`` read as a file unless ``is_spec_text`` (then its text, named ``<string>``); a
    ``str`` naming no file but a shipped spec (``"dpn"``, see udnet.catalog) is that spec.
    A missing file is "no such file", not a parse error of its name."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, os.PathLike):
        return read_source(os.fsdecode(spec), max_bytes)
    if not isinstance(spec, str):
        raise UsageError(f"{argument} must be a path (str or os.PathLike) or spec text, got {_what(spec)}")
    if is_spec_text(spec):
        return Source("<string>", spec)
    if not spec.strip():
        raise UsageError(f"{argument} is an empty string: give the path of a .ud file or the text of a spec")
    from udnet import catalog

    return read_source(catalog.resolve(spec), max_bytes)


def _what(value) -> str:
    """A short description of a wrong argument: its type and, if short, its value."""
    text = repr(value)
    return type(value).__name__ + (f" {text}" if len(text) <= 40 and not text.startswith("<") else "")


def _check_network(network) -> None:
    if network is not None and not isinstance(network, str):
        raise UsageError(f"network must be the name of a network (a str) or None, got {_what(network)}")


def check_limits(limits) -> Limits:
    """``limits`` (``None`` for the defaults) after checking that it is a ``Limits`` of positive ints."""
    if limits is None:
        return Limits()
    if not isinstance(limits, Limits):
        raise UsageError(f"limits must be a udnet.elaborate.elaborator.Limits or None, got {_what(limits)}")
    for f in fields(limits):
        v = getattr(limits, f.name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"limits.{f.name} must be a positive int, got {_what(v)}")
    return limits


def pass_names(disabled, argument: str = "disabled") -> set[str]:
    """The passes to switch off: one pass name or an iterable of them (``None``: none)."""
    from udnet.passes import registry

    known = [p.name for p in registry()]
    if disabled is None:
        return set()
    if isinstance(disabled, str):
        names = [disabled]
    elif isinstance(disabled, Iterable) and not isinstance(disabled, (bytes, Mapping)):
        names = list(disabled)
    else:
        names = [disabled]
    for name in names:
        if not isinstance(name, str):
            raise UsageError(f"{argument} takes pass names (str), got {_what(name)}; the passes are "
                             + ", ".join(known))
        if name not in known:
            raise UsageError(f"{argument}: there is no pass '{name}'; the passes are " + ", ".join(known))
    return set(names)


def check_fractal_column(fractal_column, disabled: set[str] = frozenset()) -> int | None:
    if fractal_column is None:
        return None
    if isinstance(fractal_column, bool) or not isinstance(fractal_column, int):
        raise UsageError(f"fractal_column must be a column number (an int, 1 = the shallowest) or None, "
                         f"got {_what(fractal_column)}")
    if fractal_column < 1:
        raise UsageError(f"fractal_column must be 1 or more (1 = the shallowest column), got {fractal_column}")
    if "prune" in disabled:
        raise UsageError("fractal_column needs the prune pass, which is disabled")
    return fractal_column


def read_source(path: str | os.PathLike[str], max_bytes: int | None = None) -> Source:
    """Read a spec file (at most ``max_bytes``, or ``READ_CAP`` when None) as UTF-8."""
    if isinstance(path, os.PathLike):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        raise UsageError(f"path must be a str or os.PathLike, got {_what(path)}")
    cap = READ_CAP if max_bytes is None else max_bytes
    shown = show_path(path)
    try:
        data, fifo, size = _read_capped(path, cap)
    except FileNotFoundError:
        raise UsageError(f"no such file: {shown}", hint="udnet list names the shipped specs") from None
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


def parse_defines(
    defines: Iterable[str] | Mapping[str, object] | None, limits: Limits | None = None
) -> dict[str, tuple[ast.Expr, Span]]:
    """``-D name=value`` strings (or a {name: value} mapping of Python values) -> parsed value
    expressions. Values are ints, floats, bools, strs and lists or tuples of them, parsed
    under the spec's size and nesting limits."""
    limits = limits or Limits()
    out: dict[str, tuple[ast.Expr, Span]] = {}
    if defines is None:
        defines = []
    elif isinstance(defines, Mapping):
        for k in defines:
            if not isinstance(k, str) or not _NAME.fullmatch(k):
                raise UsageError(f"parameter names are names, got {_what(k)}")
        # As -D text, which the parser reads back: written whole, strings escaped for it.
        defines = [f"{k}={spec_text(_spec_value(v, k), quote='source', depth=None)}" for k, v in defines.items()]
    elif isinstance(defines, str):
        raise UsageError(f"defines must be a dict {{name: value}} or a list of 'name=value' strings, got "
                         f"{_what(defines)}; for one, write [{defines!r}]")
    elif isinstance(defines, Iterable) and not isinstance(defines, bytes):
        defines = list(defines)
        for text in defines:
            if not isinstance(text, str):
                raise UsageError(f"defines must hold 'name=value' strings, got {_what(text)}")
    else:
        raise UsageError(f"defines must be a dict {{name: value}} or a list of 'name=value' strings, "
                         f"got {_what(defines)}")
    for text in defines:
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
            expr = parse_expr(padded, limits.max_source_bytes, limits.max_nesting)
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


def _spec_value(v, name: str, depth: int = 0):
    """A Python value given for parameter ``name`` as the value a spec holds: a bool, an
    int, a finite float, a str or a tuple of them; numpy's numbers become Python's."""
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (list, tuple)):
        if depth >= MAX_NESTING:  # or a list that holds itself
            raise UsageError(f"parameter {name}: lists nest more than {MAX_NESTING} deep")
        return tuple(_spec_value(i, name, depth + 1) for i in v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and math.isfinite(v):
        return float(v)
    raise UsageError(f"parameter {name}: a value is an int, a finite float, a bool, a str or a list of them, "
                     f"got {_what(v)}")


def build_ir(
    source: Spec,
    network: str | None = None,
    defines: Iterable[str] | Mapping[str, object] | None = None,
    limits: Limits | None = None,
) -> IR:
    """Parse and elaborate a spec into a verified IR.

    ``source`` is a path or spec text (the rule is ``spec_source``'s), ``network`` the name
    of a network of the file (None: the first), ``defines`` overrides its parameters
    (``{"k": 12}`` or ``["k=12"]``), ``limits`` a ``Limits`` (None: the defaults)."""
    _check_network(network)
    limits = check_limits(limits)
    source = spec_source(source, limits.max_source_bytes, "source")
    module = parse(source, limits.max_source_bytes, limits.max_nesting)
    overrides = parse_defines(defines, limits)
    ir = Elaborator(module, limits).elaborate(network, overrides)
    verify(ir, "elaboration")
    return ir


def optimize(ir: IR, disabled: str | Iterable[str] | None = (), fractal_column: int | None = None):
    """Run the pass pipeline on ``ir`` in place; returns the passes' reports.

    ``disabled``: a pass name or an iterable of them (``registry()`` lists the passes);
    ``fractal_column``: keep only FractalNet column N (1 = the shallowest; needs prune)."""
    from udnet.passes import Options, run_passes

    if not isinstance(ir, IR):
        raise UsageError(f"ir must be an IR (from build_ir), got {_what(ir)}")
    names = pass_names(disabled)
    check_fractal_column(fractal_column, names)
    return run_passes(ir, names, Options(fractal_column=fractal_column))


def compile_to_torch(source: Spec, network: str | None = None,
                     defines: Iterable[str] | Mapping[str, object] | None = None, *,
                     limits: Limits | None = None, disabled: str | Iterable[str] | None = (),
                     fractal_column: int | None = None, spec_name: str | None = None) -> str:
    """Spec (a path or spec text, as in ``build_ir``) -> PyTorch source text (the contents
    of model.py), after the passes (see ``optimize``). ``spec_name`` names the spec in the
    module's header (default: the file's name)."""
    from udnet.backends.pytorch.codegen import emit_module

    if spec_name is not None and not isinstance(spec_name, str):
        raise UsageError(f"spec_name must be a str or None, got {_what(spec_name)}")
    # Check every argument before the (slow) elaboration.
    _check_network(network)
    limits = check_limits(limits)
    check_fractal_column(fractal_column, pass_names(disabled))
    source = spec_source(source, limits.max_source_bytes, "source")
    ir = build_ir(source, network, defines, limits)
    optimize(ir, disabled, fractal_column)
    return emit_module(ir, spec_name or os.path.basename(source.name))


class SVG(str):
    """SVG text that Jupyter displays as the picture (``_repr_svg_``); a ``str`` otherwise."""

    def _repr_svg_(self) -> str:
        return str(self)


def draw(source: Spec, network: str | None = None, defines: Iterable[str] | Mapping[str, object] | None = None, *,
         output: str | os.PathLike[str] | None = None, drawing: Mapping[str, object] | None = None,
         compiled: bool = False, limits: Limits | None = None, disabled: str | Iterable[str] | None = (),
         fractal_column: int | None = None) -> SVG | None:
    """Draw a spec (a path or spec text, as in ``build_ir``): the SVG text when ``output`` is
    None, else the file ``output`` (.svg, .png, .pdf or .dot, written atomically) and None.

    ``drawing``: options of ``udnet.backends.graphviz.DrawOptions`` (``{"depth": 1}``, as
    ``udnet draw --depth 1``); ``compiled``: draw after the passes, as ``udnet compile``
    emits the network (``disabled`` or ``fractal_column`` imply it)."""
    from udnet.backends import graphviz as gv

    _check_network(network)
    limits = check_limits(limits)
    names = pass_names(disabled)
    check_fractal_column(fractal_column, names)
    options = _draw_options(drawing)
    if output is not None and not isinstance(output, (str, os.PathLike)):
        raise UsageError(f"output must be a path (str or os.PathLike) or None, got {_what(output)}")
    fmt_path = None if output is None else os.fspath(output)
    if fmt_path is not None:
        gv.plan(fmt_path)  # an unknown format or no renderer: before the elaboration
    ir = build_ir(spec_source(source, limits.max_source_bytes, "source"), network, defines, limits)
    if compiled or names or fractal_column is not None:
        from udnet.backends.drawing.labels import stage_text

        ran = [r.name for r in optimize(ir, names, fractal_column)]
        options.stage = stage_text(ran, fractal_column)
    if fmt_path is None:
        return SVG(gv.to_svg(ir, options=options))
    gv.draw(ir, fmt_path, options)
    return None


#: The drawing options ``draw`` takes and what each must be: (check, description).
_DRAWING = {
    "depth": (lambda v: v is None or _count(v), "an int >= 0 or None"),
    "expand": (lambda v: isinstance(v, bool), "a bool"),
    "shapes": (lambda v: isinstance(v, bool), "a bool"),
    "legend": (lambda v: isinstance(v, bool), "a bool"),
    "title": (lambda v: isinstance(v, bool), "a bool"),
    "rankdir": (lambda v: v in ("TB", "LR", "BT", "RL"), '"TB", "LR", "BT" or "RL"'),
    "max_nodes": (lambda v: v is None or (_count(v) and v > 0), "an int > 0 or None"),
    "timeout": (lambda v: v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 < v < math.inf),
                "a number of seconds > 0 or None"),
}


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _draw_options(drawing):
    from udnet.backends.graphviz import DrawOptions

    if drawing is None:
        return DrawOptions()
    if not isinstance(drawing, Mapping):
        raise UsageError(f"drawing must be a dict of drawing options, got {_what(drawing)}")
    for key, value in drawing.items():
        if key not in _DRAWING:
            raise UsageError(f"drawing: unknown option {key!r}", hint=f"the options are {', '.join(_DRAWING)}")
        check, what = _DRAWING[key]
        if not check(value):
            raise UsageError(f"drawing: {key} must be {what}, got {_what(value)}")
    return DrawOptions(**drawing)
