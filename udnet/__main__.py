"""``python -m udnet`` and the ``udnet`` console script (``udnet.__main__:run``).

Ctrl-C exits 130 without a traceback whenever it comes, even while the command line
modules are still being imported: so this module imports nothing at its top but sys,
and the handler wraps the import of udnet.cli as well as the command.
"""

import sys


def run() -> int:
    try:
        from udnet.cli import main

        return main()
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    # A second Ctrl-C while exiting must not print a traceback either.
    try:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (KeyboardInterrupt, ImportError, ValueError):
        pass
    return 130


if __name__ == "__main__":
    try:
        code = run()
    except KeyboardInterrupt:
        code = _interrupted()
    sys.exit(code)
