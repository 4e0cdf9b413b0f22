"""Executors turn a plan into a dask array; the per-chunk kernel is what differs."""

from __future__ import annotations

from .cpu import CPUExecutor

__all__ = ["CPUExecutor", "get_executor"]

_REGISTRY = {"cpu": CPUExecutor}


def get_executor(name: str = "cpu"):
    """The executor registered under ``name`` ("cpu"; "gpu" when cupy is installed)."""
    if name == "gpu" and "gpu" not in _REGISTRY:
        from .gpu import GPUExecutor  # imports cupy lazily

        _REGISTRY["gpu"] = GPUExecutor
    if name not in _REGISTRY:
        raise ValueError(f"executor={name!r} is not one of {sorted(_REGISTRY) + ['gpu']}")
    return _REGISTRY[name]()
