"""The ``transfuse`` command's entry point: interrupts are quiet from the first instant.

Importing :mod:`transfuse` takes a second or more (numpy, scipy, sympy, dask), and a Ctrl-C
meanwhile would end in a traceback. This module imports nothing heavy before it can catch
that interrupt, and reports it as the command does: one line, exit code 130.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Import :mod:`transfuse.cli` and run :func:`transfuse.cli.main`; returns the exit code."""
    try:
        from transfuse.cli import main as run

        return run()
    except KeyboardInterrupt:  # before transfuse.cli.main handles it itself
        print("transfuse: error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
