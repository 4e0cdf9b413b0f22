"""The ``"null"`` backend: computes nothing, records what each task would do.

It proves that a backend is one module, and lets tests look at the work a graph asks for
(which boxes, how many input chunks each task reads, which stages) without computing it.
Results are zeros of the right shape and dtype.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

__all__ = ["NullExecutor", "TaskRecord"]


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """One task as the null backend saw it."""

    kind: str  # "prefilter" or "resample"
    box: tuple[tuple[int, int], ...]
    pieces: int  # input (or coefficient) chunks the task received
    stages: tuple[str, ...] = ()


class NullExecutor:
    """Records every task in :attr:`records` (thread-safe) and returns zeros.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> null = NullExecutor()
    >>> img = transfuse.lazy(np.ones((8, 8)), chunks=4).rotate(30, reshape=False, order=1)
    >>> float(img.to_dask(executor=null).sum().compute())
    0.0
    >>> sorted({r.kind for r in null.records}), len(null.records)
    (['resample'], 4)
    """

    name = "null"

    def __init__(self):
        self.records: list[TaskRecord] = []
        self._lock = threading.Lock()

    def _record(self, record):
        with self._lock:
            self.records.append(record)

    def meta(self, dtype, ndim: int):
        return np.empty((0,) * ndim, dtype=dtype)

    def prefilter_chunk(self, spec, pieces, layouts):
        self._record(TaskRecord("prefilter", tuple(spec.span), len(pieces)))
        shape = tuple(e - s for s, e in spec.span)
        return np.zeros(shape)

    def resample_chunk(self, job, footprint, pieces, layouts):
        kinds = tuple(type(s).__name__ for s in job.stages)
        self._record(TaskRecord("resample", footprint.box, len(pieces), kinds))
        return np.zeros(tuple(e - s for s, e in footprint.box), dtype=job.dtype)
