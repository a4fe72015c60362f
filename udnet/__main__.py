"""``python -m udnet`` and the ``udnet`` console script (``udnet.__main__:run``).

Ctrl-C exits 130 without a traceback whenever it comes, even while the command-line
modules are still being imported. This module is the command-line entry: importing it
sets a SIGINT handler that exits 130 (SystemExit unwinds like KeyboardInterrupt, so
cleanups still run, but prints nothing), and it imports nothing else at its top. An
interrupt checked before that handler is set (during the import of this module itself)
is caught as KeyboardInterrupt in ``run``.

Python cannot raise out of a weakref callback, a finaliser or a GC callback: an exception
there is "unraisable", printed with a traceback and dropped, so a Ctrl-C that lands in one
(the import system runs such callbacks for its module locks) would be lost. The
unraisable hook raises our own SystemExit(130) again a millisecond later, from a SIGALRM
handler (a signal re-sent at once would run its handler inside the hook itself), and so
at a point where it can unwind.
"""

import signal
import sys


def _interrupted(signum=None, frame=None):
    raise SystemExit(130)


def _unraisable(unraisable, _default=sys.unraisablehook):
    exc = unraisable.exc_value
    if isinstance(exc, SystemExit) and exc.code == 130:
        signal.signal(signal.SIGALRM, _interrupted)
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        return
    _default(unraisable)


try:
    signal.signal(signal.SIGINT, _interrupted)
    sys.unraisablehook = _unraisable
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
