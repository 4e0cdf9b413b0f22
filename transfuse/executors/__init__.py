"""Executors turn a plan into a dask array; the per-chunk kernel is what differs."""

from __future__ import annotations

from .cpu import CPUExecutor

__all__ = ["CPUExecutor", "get_executor"]

_REGISTRY = {"cpu": CPUExecutor}


def get_executor(name: str = "cpu"):
    """The executor registered under ``name``.

    Only ``"cpu"`` (scipy.ndimage per chunk) exists so far; cupy-backed inputs are computed
    on the CPU by :mod:`transfuse.ndinterp` and handed back as cupy blocks.

    Examples
    --------
    >>> get_executor("cpu").name
    'cpu'
    """
    if name not in _REGISTRY:
        raise ValueError(f"executor={name!r} is not one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]()
