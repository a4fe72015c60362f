"""Graphviz backend: legible diagrams of ultra-deep networks, fast.

``build_dot(ir)`` (``udnet.backends.drawing``) turns the IR into DOT; ``render`` runs a
layout program over it; ``draw`` does both and writes the file atomically. Nothing here
imports torch.

What the picture shows
    * one cluster per block instance (and labelled group), titled with the block's call,
      e.g. ``denseblock1: DenseBlock(n=6, k=32)``;
    * ``depth=N`` collapses every scope deeper than N into one node;
    * consecutive identical block instances (same block, same arguments, same inner
      structure, each feeding the next) fold into one node marked ``xN`` unless
      ``expand`` is set;
    * one edge style per connection kind, with a legend of the kinds present;
    * skip connections are laid out with little weight and drawn last, so they bow
      around the main path and lie on top of it, never under it;
    * a dense block is drawn as a buffer: its chain of binary concats becomes a thick
      bus, every layer reads the bus once and appends to it once (O(L) edges, not
      O(L^2)). A concat that repeats an earlier concat's operands as a prefix is
      redrawn as "that concat ++ the rest", so hand-written all-to-all concatenation
      becomes the same bus.

Rendering uses the system ``dot`` when it is on PATH and otherwise ``graphviz-pure``, a
self-contained port of Graphviz's ``dot`` installed as a normal pip dependency (see
docs/architecture.md, "Rendering diagrams").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, replace

from udnet.errors import UdnetError, UsageError, show_path
from udnet.ir.graph import IR

from .drawing.dot import build_dot, to_dot
from .drawing.options import DRAW_TIMEOUT, FORMATS, DrawOptions

__all__ = [
    "DrawOptions", "Renderer", "build_dot", "draw", "find_renderer", "plan", "pure_renderer", "render", "to_dot",
    "to_svg",
]


@dataclass(frozen=True)
class Renderer:
    name: str  # "dot" (system Graphviz) or "graphviz-pure"
    path: str
    formats: tuple[str, ...]


def _graphviz_pure() -> str | None:
    exe = "graphviz-pure.exe" if os.name == "nt" else "graphviz-pure"
    # The one pip installed beside this interpreter (our own dependency, even when that bin/
    # is not on PATH) comes before any other on PATH.
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = os.path.join(d, exe)
        if d and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which(exe)


def find_renderer() -> Renderer | None:
    """The system ``dot`` when on PATH, else the ``graphviz-pure`` dependency, else None."""
    dot = shutil.which("dot")
    if dot:
        return Renderer("dot", dot, ("svg", "png", "pdf"))
    return pure_renderer()


def pure_renderer() -> Renderer | None:
    """The ``graphviz-pure`` dependency, whatever else is installed: one renderer whose SVG
    is the same on every machine (Debian's Graphviz 2.43, for one, writes no ids or tooltips
    for table cells), for the committed figures and the tests that read drawings back."""
    pure = _graphviz_pure()
    if pure:
        return Renderer("graphviz-pure", pure, ("svg", "png", "pdf"))  # pdf: via svgpdf
    return None


def render(source: str, fmt: str, renderer: Renderer | None = None, timeout: float | None = DRAW_TIMEOUT) -> bytes:
    """Lay out and render DOT ``source`` to ``fmt`` (svg, png or pdf) and return the bytes.
    A renderer still running after ``timeout`` seconds is stopped, and that is an error."""
    if fmt == "dot":
        return source.encode("utf-8")
    r = renderer or plan(f"out.{fmt}")[1]
    native = fmt
    if fmt == "pdf" and r.name == "graphviz-pure":
        native = "svg"  # graphviz-pure writes no PDF; udnet converts its SVG (udnet.backends.svgpdf)
    code, out, err = _run([r.path, f"-T{native}"], source.encode("utf-8"), timeout, r.name)
    if code != 0 or not out:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise UdnetError(f"{r.name} failed (exit {code})" + (f": {lines[-1]}" if lines else ""))
    if native != fmt:
        from udnet.backends.svgpdf import svg_to_pdf

        return svg_to_pdf(out)
    return out


def _run(cmd: list[str], data: bytes, timeout: float | None, name: str) -> tuple[int, bytes, bytes]:
    """Run the renderer in a process group of its own; past ``timeout`` seconds (or on
    Ctrl-C) the whole group is killed and reaped, so no renderer outlives udnet."""
    group = os.name == "posix"
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=group,
        )
    except OSError as e:
        raise UsageError(f"cannot run {cmd[0]}: {e.strerror}") from None
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, group)
        raise UdnetError(
            f"{name} did not finish the drawing within {timeout:g} s (--draw-timeout) and was stopped",
            hint="draw less: fold repeated blocks (leave out --expand) or collapse deep blocks with --depth N; "
            "or allow more time with --draw-timeout SECONDS",
        ) from None
    except BaseException:
        _kill(proc, group)
        raise
    return proc.returncode, out, err


def _kill(proc: subprocess.Popen, group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass  # gone already
    for f in (proc.stdin, proc.stdout, proc.stderr):
        try:
            f.close()
        except OSError:
            pass
    proc.wait()


def output_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageError(
            f"cannot tell the output format of '{show_path(path)}'",
            hint="give a file ending in .svg, .png, .pdf or .dot",
        )
    return FORMATS[ext]


def plan(path: str) -> tuple[str, Renderer | None]:
    """The format of ``path`` and the renderer that will write it; usage errors up front,
    before any compiling: an unknown extension, no renderer, a format it cannot write."""
    fmt = output_format(path)
    if fmt == "dot":
        return fmt, None
    r = find_renderer()
    if r is None:
        raise UsageError(
            "no Graphviz renderer found: neither 'dot' on PATH nor the 'graphviz-pure' package",
            hint="reinstall udnet (pip install -e .) to get graphviz-pure, install Graphviz, or write .dot",
        )
    if fmt not in r.formats:
        raise UsageError(
            f"{r.name} cannot write {fmt.upper()}",
            hint="install the system Graphviz (apt-get install graphviz) for PDF, or write .svg or .png",
        )
    return fmt, r


def draw(ir: IR, path: str, options: DrawOptions | None = None, **kw) -> Renderer | None:
    """Draw ``ir`` into ``path`` (format from the extension), atomically. Returns the renderer used."""
    from udnet.output import write_atomic

    fmt, r = plan(path)
    opt = options or DrawOptions(**kw)
    if fmt == "dot":  # no layout: no budget
        opt = replace(opt, max_nodes=None)
    source = build_dot(ir, opt).source
    write_atomic(path, source if fmt == "dot" else render(source, fmt, r, opt.timeout))
    return r


def to_svg(ir: IR, options: DrawOptions | None = None, **kw) -> str:
    """The diagram as SVG text (what Jupyter shows for an IR)."""
    opt = options or DrawOptions(**kw)
    return render(build_dot(ir, opt).source, "svg", timeout=opt.timeout).decode("utf-8")
