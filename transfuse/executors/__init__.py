"""Executors: the shared graph builder and the backends that do the per-chunk work.

Backends (``executor=`` on :meth:`~transfuse.LazyImage.compute`,
:meth:`~transfuse.LazyImage.to_dask` and :mod:`transfuse.ndinterp`; the default is the
dask config value ``transfuse.executor``, else ``"cpu"``):

* ``"scipy"`` — the reference: scipy.ndimage per chunk;
* ``"cpu"`` — the reference plus one compiled (numba) kernel for every chunk of affine
  and coordinate-array passes, orders 0-5, all modes, 1-D to 3-D (``"numba"`` is its
  former name); without numba it is the reference, and warns once;
* ``"gpu"`` — numba.cuda kernels on a CUDA device (cupy arrays in and out), or in
  numba-cuda's simulator under ``NUMBA_ENABLE_CUDASIM=1`` (see :mod:`.gpu`);
* ``"null"`` — computes nothing and records each task (for tests).

A backend is one module with one class (see :class:`~transfuse.executors.base.Executor`);
add it to :data:`REGISTRY`.
"""

from __future__ import annotations

import dask

from .base import Executor, ResampleJob
from .cpu import CPUExecutor
from .gpu import GPUExecutor
from .graph import spline_coefficients, to_dask
from .null import NullExecutor
from .numba_backend import NumbaExecutor
from .scipy_backend import ScipyExecutor

__all__ = [
    "REGISTRY",
    "CPUExecutor",
    "Executor",
    "GPUExecutor",
    "NullExecutor",
    "NumbaExecutor",
    "ResampleJob",
    "ScipyExecutor",
    "get_executor",
    "spline_coefficients",
    "to_dask",
]

#: Backend classes by name.
REGISTRY = {
    "scipy": ScipyExecutor,
    "cpu": CPUExecutor,
    "numba": NumbaExecutor,
    "gpu": GPUExecutor,
    "null": NullExecutor,
}

#: The dask config key holding the default backend's name.
CONFIG_KEY = "transfuse.executor"


def get_executor(executor=None):
    """The backend ``executor`` names (an instance passes through); by default the one
    named by ``dask.config`` key ``transfuse.executor`` (``"cpu"`` when unset).

    Examples
    --------
    >>> get_executor("scipy").name
    'scipy'
    >>> import dask
    >>> with dask.config.set({"transfuse.executor": "null"}):
    ...     get_executor().name
    'null'
    """
    if executor is None:
        executor = dask.config.get(CONFIG_KEY, "cpu")
    if not isinstance(executor, str):
        if callable(getattr(executor, "resample_chunk", None)):
            return executor
        raise ValueError(f"executor={executor!r} is not a backend name or instance")
    if executor not in REGISTRY:
        raise ValueError(f"executor={executor!r} is not one of {sorted(REGISTRY)}")
    return REGISTRY[executor]()
