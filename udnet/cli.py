"""The ``udnet`` command line. Exit codes: 0 ok, 1 spec error, 2 usage error."""

from __future__ import annotations

import argparse
import os
import sys

from udnet import __version__
from udnet.errors import UdnetError, UsageError, show_path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a .ud file, or the name of a shipped spec (udnet list)")
    p.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE",
                   help="override a network parameter, e.g. -D k=12 -D blocks=[16,16,16]")
    p.add_argument("--network", metavar="NAME", help="which network of the file (default: the first)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-nodes", type=int, metavar="N", help="IR node limit (default 30,000)")
    lim.add_argument("--max-nesting", type=int, metavar="N",
                     help="nesting limit: brackets, blocks, sub-expressions, nested lists (default 256)")
    lim.add_argument("--max-source-bytes", type=int, metavar="N", help="spec size limit in bytes (default 262,144)")
    lim.add_argument("--max-elements", type=int, metavar="N",
                     help="per-node limit on tensor elements and parameters (default 2**32)")
    lim.add_argument("--max-depth", type=int, metavar="N", help="nested block-call limit (default 100)")
    lim.add_argument("--max-steps", type=int, metavar="N", help="statement/iteration limit (default 1,000,000)")


def _pass_flags(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The flags of the pass pipeline, the same for compile, draw and summary."""
    passes = p.add_argument_group("passes")
    passes.add_argument("--no-prune", action="append_const", dest="disabled", const="prune",
                        help="keep code that cannot reach the output")
    passes.add_argument("--no-share-concat", action="append_const", dest="disabled", const="share-concat",
                        help="plain torch.cat for dense connections (quadratic training memory)")
    passes.add_argument("--fractal-column", type=int, metavar="N",
                        help="extract FractalNet column N (1 = shallowest), the paper's student network")
    return passes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="udnet",
        description="udnet compiles .ud specs of deep-network topologies into PyTorch source and diagrams.",
    )
    p.add_argument("--version", action="version", version=f"udnet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    check = sub.add_parser("check", help="parse, elaborate and verify a spec; print shapes, params and MACs")
    _common(check)
    comp = sub.add_parser("compile", help="emit a standalone PyTorch module (model.py)")
    _common(comp)
    comp.add_argument("-o", "--output", metavar="FILE", help="where to write the module (default: stdout)")
    comp.add_argument("-v", "--verbose", action="store_true",
                      help="say what each pass changed, and which blocks are not one class each")
    _pass_flags(comp)
    draw = sub.add_parser("draw", help="draw the network with Graphviz (svg, png, pdf or dot)")
    _common(draw)
    draw.add_argument("-o", "--output", metavar="FILE",
                      help="out.svg, .png, .pdf or .dot (default: an SVG next to the spec)")
    draw.add_argument("--depth", type=int, metavar="N", help="collapse block scopes nested deeper than N into nodes")
    draw.add_argument("--expand", action="store_true", help="draw repeated identical blocks one by one, not as xN")
    draw.add_argument("--shapes", action="store_true", help="label edges with tensor shapes")
    draw.add_argument("--rankdir", type=str.upper, choices=("TB", "LR"), default="TB",
                      help="top to bottom (default) or left to right")
    draw.add_argument("--max-draw-nodes", type=int, metavar="N",
                      help="refuse to render a drawing of more than N nodes (4N edges) (default 5,000)")
    draw.add_argument("--draw-timeout", type=float, metavar="SECONDS",
                      help="stop the renderer after SECONDS and report an error (default 120)")
    _pass_flags(draw).add_argument(
        "--compiled", action="store_true",
        help="draw the network as compile emits it, after the passes (any pass flag implies it)")
    sub.add_parser("list", help="the shipped architecture library: each spec, its networks and variants")
    summ = sub.add_parser("summary", help="per-block table of shapes, parameters, MACs and activation memory")
    _common(summ)
    summ.add_argument("--batch", type=int, default=1, metavar="N", help="batch size for activation memory (default 1)")
    summ.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                      help="element type for activation memory (default float32)")
    summ.add_argument("--depth", type=int, default=2, metavar="N",
                      help="show scopes and ops nested at most N levels deep (default 2; 0: totals only)")
    summ.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    _pass_flags(summ)
    return p


def _limits(args):
    from udnet.limits import Limits

    names = ("max_nodes", "max_depth", "max_steps", "max_nesting", "max_source_bytes", "max_elements")
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    for k, v in given.items():
        if v < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be positive")
    return Limits(**given)


def _build(args):
    from udnet.pipeline import build_ir

    return build_ir(args.spec_source, args.network, args.define, _limits(args))


def cmd_check(args) -> int:
    from udnet.ops import fmt

    from udnet.passes.prune import params_after

    ir = _build(args)
    inp = ir.nodes[ir.input_node]["shape"]
    macs = ir.mac_count()
    params, kept = ir.param_count(), params_after(ir)  # the compiled module holds the latter
    rows = [
        ("input", fmt(inp)),
        *((f"output {name}" if name is not None else "output", fmt(ir.nodes[n]["shape"])) for name, n in ir.outputs()),
        ("nodes", f"{ir.number_of_nodes():,}"),
        ("params", f"{params:,}" + (f" ({kept:,} after passes)" if kept != params else "")),
        ("MACs", f"{macs:,} ({_si(macs)})"),
    ]
    print(f"{show_path(args.spec)}: network {ir.graph['network']} ok")
    width = max(7, *(len(k) for k, _ in rows))
    for k, v in rows:
        print(f"  {k:<{width}} {v}")
    return 0


def _si(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g} {unit}".rstrip()
        n /= 1000
    return f"{n:.3g} P"


def _output_named(output: str | None) -> None:
    if output == "":
        raise UsageError("-o: the output path is empty", hint="name a file, or - for standard output")


def _not_the_spec(output: str | None, spec: str) -> None:
    """``-o`` naming the spec itself (or a link to it) would replace the source."""
    try:
        same = output not in (None, "-") and os.path.exists(output) and os.path.samefile(output, spec)
    except OSError:
        same = False
    if same:
        raise UsageError(f"-o {show_path(output)} is the spec itself; writing it would replace the source")


def _passes(args) -> set[str]:
    """The passes switched off, after checking the pass flags (usage errors, before compiling)."""
    disabled = set(args.disabled or ())
    if args.fractal_column is not None and "prune" in disabled:
        raise UsageError("--fractal-column needs the prune pass; drop --no-prune")
    if args.fractal_column is not None and args.fractal_column < 1:
        raise UsageError("--fractal-column must be 1 or more (1 = the shallowest column)")
    return disabled


def _optimize(ir, args, disabled: set[str]) -> list[str]:
    """Run the passes on ``ir`` as compile does, their warnings (and with -v what they did) on
    stderr; the names of the passes that ran."""
    from udnet.pipeline import optimize

    ran = []
    for report in optimize(ir, disabled, args.fractal_column):
        ran.append(report.name)
        for w in report.warnings:
            print(w.format(), file=sys.stderr)
        if getattr(args, "verbose", False):
            for line in report.lines:
                print(f"udnet: {report.name}: {line}", file=sys.stderr)
    return ran


def cmd_compile(args) -> int:
    from udnet.backends.pytorch.codegen import Emitter

    _output_named(args.output)
    _not_the_spec(args.output, args.spec)
    disabled = _passes(args)
    ir = _build(args)
    _optimize(ir, args, disabled)
    emitter = Emitter(ir, os.path.basename(args.spec))
    text = emitter.emit()
    if getattr(args, "verbose", False):
        # A block the translation does not cover is printed as one class per group of instances.
        for block, why in emitter.why_not_mirrored.items():
            print(f"udnet: pytorch: block {block}: one class per group of instances ({why})", file=sys.stderr)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        from udnet.output import write_atomic

        write_atomic(args.output, text)
        print(f"{show_path(args.output)}: {ir.graph['network']}, {ir.param_count():,} parameters", file=sys.stderr)
    return 0


def cmd_draw(args) -> int:
    from udnet.backends import graphviz as gv
    from udnet.backends.drawing.labels import stage_text

    if args.depth is not None and args.depth < 0:
        raise UsageError("--depth must be 0 or more")
    if args.max_draw_nodes is not None and args.max_draw_nodes < 1:
        raise UsageError("--max-draw-nodes must be positive")
    if args.draw_timeout is not None and not 0 < args.draw_timeout < float("inf"):
        raise UsageError("--draw-timeout must be a positive number of seconds")
    _output_named(args.output)
    out = args.output
    if out is None:  # beside the spec; a shipped spec's drawing goes to the working directory
        stem = os.path.splitext(args.spec if args.spec == args.spec_given else os.path.basename(args.spec))[0]
        out = f"{stem}.{args.network}.svg" if args.network else f"{stem}.svg"
    gv.plan(out)  # usage errors (format, renderer) before compiling
    _not_the_spec(out, args.spec)
    disabled = _passes(args)
    ir = _build(args)
    stage = ""
    if args.compiled or disabled or args.fractal_column is not None:
        stage = stage_text(_optimize(ir, args, disabled), args.fractal_column)
    opts = gv.DrawOptions(depth=args.depth, expand=args.expand, shapes=args.shapes, rankdir=args.rankdir, stage=stage)
    opts.max_nodes = args.max_draw_nodes or opts.max_nodes
    opts.timeout = args.draw_timeout or opts.timeout
    r = gv.draw(ir, out, opts)
    how = f"rendered by {r.name} ({r.path})" if r else "DOT source"
    print(f"{show_path(out)}: {ir.graph['network']}, {how}", file=sys.stderr)
    return 0


def cmd_summary(args) -> int:
    import shutil

    from udnet.backends import summary

    if args.batch < 1:
        raise UsageError("--batch must be positive")
    if args.depth < 0:
        raise UsageError("--depth must be 0 or more")
    disabled = _passes(args)
    ir = _build(args)
    s = summary.summarize(ir, args.spec, batch=args.batch, dtype=args.dtype, depth=args.depth,
                          disabled=disabled, fractal_column=args.fractal_column)
    if args.json:
        print(s.to_json())
    else:
        sys.stdout.write(summary.format_text(s, shutil.get_terminal_size((100, 24)).columns))
    return 0


def cmd_list(args) -> int:
    from udnet import catalog

    for i, e in enumerate(catalog.entries()):
        if i:
            print()
        print(f"{e.name:<10} {e.description}")
        for label, lines in (("networks", e.networks), ("variants", e.variants)):
            for j, line in enumerate(lines):
                print(f"  {label if j == 0 else '':<9} {line}")
    print(f"\n{catalog.spec_dir()}: use a name in place of a path, e.g. udnet check dpn -D variant=68")
    return 0


COMMANDS = {"check": cmd_check, "compile": cmd_compile, "draw": cmd_draw, "summary": cmd_summary, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "list":
            from udnet import catalog
            from udnet.pipeline import read_source

            args.spec_given = args.spec
            args.spec = catalog.resolve(args.spec)
            args.spec_source = read_source(args.spec, _limits(args).max_source_bytes)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except UdnetError as e:
        print(e.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `udnet check x.ud | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
