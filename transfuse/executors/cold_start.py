"""The ``"cpu"`` backend's cold start: small passes run by the reference until a compiled
kernel is loaded.

In a fresh process the first compiled kernel costs 0.5-0.8 s before it computes anything:
numba is imported and its CPU target readied (:mod:`.numba_loader`; the kernel itself then
loads from numba's disk cache in milliseconds). scipy.ndimage resamples 2**21 voxels
(128³) at order 1 in about 0.1-0.2 s. So while no kernel is loaded in the process, the
``"cpu"`` backend runs a pass by the reference (scipy.ndimage per chunk) when its output,
added to the output of the passes it ran so before, stays within a budget of voxels —
dask config ``transfuse.cold_start_voxels``, default :data:`DEFAULT_BUDGET`; 0 turns the
cold start off. The first pass beyond the budget loads the kernels, and from then on every
pass uses them: like renting skis until the rent paid would have bought them, the process
spends at most the budget's reference time more than the better choice made in hindsight.

Orders 0 and 1 give the same bits either way; higher orders agree within the accuracy
contract (the prefilter is scipy's rather than the compiled one). The choice is made when
the pass's graph is built and the pass's dask key names the backend that runs it, so the
two kinds of result never share a key.
"""

from __future__ import annotations

import math
import threading

import dask

from . import numba_loader

__all__ = ["BUDGET_KEY", "DEFAULT_BUDGET", "claim", "runs_cold"]

#: The dask config key of the budget (output voxels).
BUDGET_KEY = "transfuse.cold_start_voxels"

#: The default budget: 128³ voxels, about 0.1-0.2 s of scipy.ndimage at order 1.
DEFAULT_BUDGET = 2**21

_LOCK = threading.Lock()
_SPENT = [0]  # output voxels of the passes run cold in this process


def _budget() -> int:
    value = dask.config.get(BUDGET_KEY, DEFAULT_BUDGET)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"dask config {BUDGET_KEY}={value!r} must be a number of voxels >= 0")
    return int(value)


def runs_cold(p) -> bool:
    """Whether the physical pass ``p`` would run by the reference now (nothing changes).

    Examples
    --------
    >>> import numpy as np, dask, transfuse
    >>> (p,) = transfuse.lazy(np.zeros((8, 8))).rotate(10).plan().passes
    >>> with dask.config.set({"transfuse.cold_start_voxels": 0}):
    ...     runs_cold(p)
    False
    """
    budget = _budget()  # checked whatever the state, so that a bad value is always refused
    if budget == 0 or numba_loader.kernels_loaded() or not numba_loader.installed():
        return False
    return _SPENT[0] + math.prod(p.output.shape) <= budget


def claim(p) -> bool:
    """Like :func:`runs_cold`, and when True count ``p``'s output against the budget."""
    with _LOCK:
        if not runs_cold(p):
            return False
        _SPENT[0] += math.prod(p.output.shape)
        return True
