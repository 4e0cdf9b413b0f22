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

Only passes that both backends compute bit for bit run cold: orders 0 and 1 of one
affine or coordinate-array stage (chains, whose compiled expressions may differ from
numpy's by an ulp, and higher orders, whose compiled prefilter agrees within the accuracy
contract but not in every bit, always run compiled). So the result, and the pass's dask
key (the ``"cpu"`` backend's, whoever computes it), are the same in every process,
whatever it ran before.
"""

from __future__ import annotations

import math
import threading

import dask

from ..planner.physical import AffineStage, CoordinateArrayStage
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


def same_bits(p) -> bool:
    """Whether the reference computes the physical pass ``p`` bit for bit as the compiled
    kernel does (orders 0 and 1 of one affine or coordinate-array stage).

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> img = transfuse.lazy(np.zeros((8, 8)))
    >>> [same_bits(img.rotate(10, order=k).plan().passes[0]) for k in (1, 3)]
    [True, False]
    """
    return (
        p.options.order <= 1
        and len(p.stages) == 1
        and isinstance(p.stages[0], AffineStage | CoordinateArrayStage)
    )


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
    return same_bits(p) and _SPENT[0] + math.prod(p.output.shape) <= budget


def claim(p) -> bool:
    """Like :func:`runs_cold`, and when True count ``p``'s output against the budget."""
    with _LOCK:
        if not runs_cold(p):
            return False
        _SPENT[0] += math.prod(p.output.shape)
        return True
