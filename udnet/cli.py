"""The ``udnet`` command line. Exit codes: 0 ok, 1 spec error, 2 usage error."""

from __future__ import annotations

import argparse
import os
import sys

from udnet import __version__
from udnet.errors import UdnetError, UsageError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a .ud file")
    p.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE",
                   help="override a network parameter, e.g. -D k=12 -D blocks=[16,16,16]")
    p.add_argument("--network", metavar="NAME", help="which network of the file (default: the first)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-nodes", type=int, metavar="N", help="IR node limit (default 100,000)")
    lim.add_argument("--max-depth", type=int, metavar="N", help="nested block-call limit (default 100)")
    lim.add_argument("--max-steps", type=int, metavar="N", help="statement/iteration limit (default 1,000,000)")


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
    return p


def _limits(args):
    from udnet.elaborate.elaborator import Limits

    given = {k: getattr(args, k) for k in ("max_nodes", "max_depth", "max_steps") if getattr(args, k) is not None}
    for k, v in given.items():
        if v < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be positive")
    return Limits(**given)


def _build(args):
    from udnet.pipeline import build_ir

    return build_ir(args.spec_source, args.network, args.define, _limits(args))


def cmd_check(args) -> int:
    from udnet.ir.ops import fmt

    ir = _build(args)
    inp = ir.nodes[ir.input_node]["shape"]
    macs = ir.mac_count()
    rows = [
        ("input", fmt(inp)),
        ("output", fmt(ir.output_shape)),
        ("nodes", f"{ir.number_of_nodes():,}"),
        ("params", f"{ir.param_count():,}"),
        ("MACs", f"{macs:,} ({_si(macs)})"),
    ]
    print(f"{args.spec}: network {ir.graph['network']} ok")
    for k, v in rows:
        print(f"  {k:<7} {v}")
    return 0


def _si(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g} {unit}".rstrip()
        n /= 1000
    return f"{n:.3g} P"


def cmd_compile(args) -> int:
    from udnet.backends.pytorch import emit_module

    ir = _build(args)
    text = emit_module(ir, os.path.basename(args.spec))
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        from udnet.output import write_atomic

        write_atomic(args.output, text)
        print(f"{args.output}: {ir.graph['network']}, {ir.param_count():,} parameters", file=sys.stderr)
    return 0


COMMANDS = {"check": cmd_check, "compile": cmd_compile}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        from udnet.pipeline import read_source

        args.spec_source = read_source(args.spec)
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
