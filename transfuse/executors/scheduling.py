"""Which dask scheduler a compute uses, resolved without importing ``distributed`` when no
distributed client can exist.

dask's ``get_scheduler`` imports ``distributed`` (0.5-1 s) on a process's first compute,
wherever it is installed, to ask whether a client is active, even for
``scheduler="threads"``. A client exists only once ``distributed`` has been imported, so
before that the answer is known: the named local scheduler, or dask.array's default (the
threaded scheduler). Resolving it here gives dask a callable and saves that import.
"""

from __future__ import annotations

import sys

import dask
import dask.base
import dask.threaded

__all__ = ["local_scheduler"]


def local_scheduler(scheduler=None):
    """The scheduler to hand to dask's ``compute`` for a dask array: ``scheduler`` itself
    once ``distributed`` is imported (a client may be active), else the local scheduler
    dask would pick (a name or ``dask.config``'s ``scheduler`` resolved to its function).

    Examples
    --------
    >>> import dask.local
    >>> local_scheduler("synchronous") in (dask.local.get_sync, "synchronous")
    True
    """
    if "distributed" in sys.modules:
        return scheduler
    if scheduler is None:
        scheduler = dask.config.get("scheduler", None)
        if scheduler is None:
            return dask.threaded.get  # dask.array's default scheduler
    named = getattr(dask.base, "named_schedulers", {})
    if isinstance(scheduler, str) and scheduler.lower() in named:
        return named[scheduler.lower()]
    return scheduler  # a callable, an Executor, "distributed": dask decides
