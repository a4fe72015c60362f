"""Regenerate the figures of README.md and docs/ (docs/figures/*.svg) with ``udnet draw``.

    python tools/figures.py            # rewrite every figure
    python tools/figures.py --list     # print the udnet draw command of each

Each figure is one ``udnet draw`` command (FIGURES); the tutorial's spec is the last
``# file: hybrid.ud`` listing of docs/tutorial.md before its drawing. tests/test_figures.py
draws each again and checks that the committed SVG shows the same picture.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
FIGURES_DIR = os.path.join(ROOT, "docs", "figures")
TUTORIAL_SPEC = "tutorial:hybrid.ud"  # stands for the tutorial's listing

#: figure file -> the spec and the ``udnet draw`` arguments that make it
FIGURES: dict[str, list[str]] = {
    "fractal.svg": ["specs/fractal.ud", "-D", "C=4", "-D", "widths=[64]", "-D", "drop=[0.0]"],
    "fractalnet.svg": ["specs/fractal.ud", "-D", "C=4", "--depth", "1"],
    "denseblock.svg": ["specs/densenet.ud", "-D", "blocks=[6]", "--expand", "--depth", "2"],
    "hybrid.svg": [TUTORIAL_SPEC],
}


def tutorial_spec() -> str:
    """The text of hybrid.ud as the tutorial has it when it draws it."""
    with open(os.path.join(ROOT, "docs", "tutorial.md"), encoding="utf-8") as f:
        text = f.read()
    before_drawing = text.split("$ udnet draw hybrid.ud", 1)[0]
    listings = re.findall(r"```\w*\n(# file: hybrid\.ud\n.*?)```", before_drawing, re.DOTALL)
    return listings[-1]


def command(name: str) -> list[str]:
    """The ``udnet draw`` arguments of figure ``name``, writing into docs/figures/."""
    return [*FIGURES[name], "-o", f"docs/figures/{name}"]


def draw(name: str, out: str) -> None:
    """Draw figure ``name`` into ``out`` (any format ``udnet draw`` writes)."""
    from udnet.backends import graphviz
    from udnet.cli import main

    args = list(FIGURES[name])
    with tempfile.TemporaryDirectory() as tmp:
        if args[0] == TUTORIAL_SPEC:
            args[0] = os.path.join(tmp, "hybrid.ud")
            with open(args[0], "w", encoding="utf-8") as f:
                f.write(tutorial_spec())
        else:
            args[0] = os.path.join(ROOT, args[0])
        # Always graphviz-pure, even where a system dot is installed: the committed figures
        # must come out the same on every machine (and keep their tooltips).
        find, graphviz.find_renderer = graphviz.find_renderer, graphviz.pure_renderer
        try:
            status = main(["draw", *args, "-o", out])
        finally:
            graphviz.find_renderer = find
        if status != 0:
            raise SystemExit(f"udnet draw failed for {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="print the commands, draw nothing")
    args = ap.parse_args()
    for name in FIGURES:
        if args.list:
            spec, *rest = command(name)
            print(" ".join(["udnet draw", "hybrid.ud (docs/tutorial.md)" if spec == TUTORIAL_SPEC else spec, *rest]))
        else:
            draw(name, os.path.join(FIGURES_DIR, name))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
