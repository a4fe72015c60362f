"""Optimisation passes over the IR (see manager.py for how they are run)."""

from udnet.passes.manager import Options, Report, registry, run_passes

__all__ = ["Options", "Report", "registry", "run_passes"]
