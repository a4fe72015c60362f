"""``python -m udnet`` and the ``udnet`` console script (``udnet.__main__:run``).

Ctrl-C exits 130 without a traceback whenever it comes, even while the command-line
modules are still being imported. This module is the command-line entry: importing it
sets a SIGINT handler that exits 130 (SystemExit unwinds like KeyboardInterrupt, so
cleanups still run, but prints nothing), and it imports nothing else at its top. An
interrupt checked before that handler is set (during the import of this module itself)
is caught as KeyboardInterrupt in ``run``.
"""

import signal
import sys


def _interrupted(signum=None, frame=None):
    raise SystemExit(130)


try:
    signal.signal(signal.SIGINT, _interrupted)
except ValueError:  # imported outside the main thread: not the command line
    pass


def run() -> int:
    try:
        from udnet.cli import main

        return main()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
