"""An opt-in progress bar for long computes (dask's local diagnostics).

``with progress_bar(): result.compute()`` prints dask's :class:`~dask.diagnostics.ProgressBar`
while the graph runs on dask's local schedulers (threads, processes, synchronous); with a
``distributed`` client use its dashboard instead. :func:`compute` is the same as a function.
The command line shows one by default (``transfuse apply``; ``--quiet`` turns it off).
"""

from __future__ import annotations

import contextlib
import numbers
import sys

import numpy as np

__all__ = ["compute", "progress_bar"]


def progress_bar(enabled: bool = True, *, out=None, minimum: float = 0.5, width: int = 40):
    """A context manager that shows a progress bar over the dask computes inside it.

    Parameters
    ----------
    enabled : bool
        False gives a context manager that does nothing (so callers can pass a flag).
    out : file-like, optional
        Where the bar is written (default: standard output, which notebooks show).
    minimum : float
        Seconds a compute must last before the bar appears (short ones print nothing).
    width : int
        Characters of the bar.

    Examples
    --------
    >>> import io, numpy as np, transfuse
    >>> from transfuse.progress import progress_bar
    >>> buf = io.StringIO()
    >>> img = transfuse.lazy(np.ones((64, 64)), chunks=16).rotate(10, order=1)
    >>> with progress_bar(out=buf, minimum=0):
    ...     _ = img.compute()
    >>> "100%" in buf.getvalue()
    True
    >>> with progress_bar(False):
    ...     _ = img.compute()
    """
    if not isinstance(enabled, bool | np.bool_):
        raise ValueError(f"progress={enabled!r} must be True or False")
    if isinstance(minimum, bool) or not isinstance(minimum, numbers.Real) or not minimum >= 0:
        raise ValueError(f"minimum={minimum!r} must be a non-negative number of seconds")
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width={width!r} must be a positive integer")
    if not enabled:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(minimum=minimum, width=width, out=sys.stdout if out is None else out)


def compute(array, progress: bool = True, *, out=None, **kwargs):
    """``array.compute(**kwargs)`` (a dask array or a lazy image), with a progress bar when
    ``progress`` is true (written to ``out``, default standard output).

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> from transfuse import progress
    >>> img = transfuse.lazy(np.ones((32, 32)), chunks=16).zoom(0.5, order=1)
    >>> progress.compute(img, progress=False).shape
    (16, 16)
    """
    with progress_bar(progress, out=out):
        return array.compute(**kwargs)
