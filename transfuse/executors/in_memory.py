"""Computing a plan's result into one numpy array, chunk by chunk, in this process.

``dask.array.Array.compute`` has each task return a fresh array for its chunk, then
concatenates the chunks into the array it returns: every output byte is written twice,
into pages faulted in twice, and the concatenation runs in one thread after the last
task. For a 256³ float32 result in chunks of 64³ on 2 threads that alone costs 27-35 ms
(``map_blocks`` of a function that only fills its block), against 9-13 ms for 64 tasks
writing into views of one preallocated array (``benchmarks/bench_compute_into.py``).

When the scheduler runs the tasks in this process (dask's threaded or synchronous
scheduler), :func:`into_collection` builds the same graph with its last resampling layer
writing each chunk into its box of one array allocated up front (the ``"cpu"`` backend's
kernel writes into the box, or into a buffer its thread reuses and copies), and returns
that array. The values are those of the dask array's ``compute()``, bit for bit: the same
backend computes each chunk in the same way. Any other scheduler (a ``distributed``
client, processes) gets the dask array's own ``compute()``.
"""

from __future__ import annotations

import dask.array as da
import dask.base
import dask.local
import dask.threaded
import numpy as np
from dask._task_spec import Task, TaskRef
from dask.core import flatten
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .graph import paused_gc, to_dask
from .scheduling import local_scheduler

__all__ = ["in_process", "into_collection"]

_IN_PROCESS = (dask.threaded.get, dask.local.get_sync)


def in_process(scheduler, collection) -> bool:
    """Whether dask's compute of ``collection`` with ``scheduler`` (a name, a callable
    or None, as ``compute`` takes it) runs the tasks in this process, sharing its memory.

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.zeros(4, chunks=2)
    >>> in_process("threads", x), in_process("sync", x), in_process("processes", x)
    (True, True, False)
    """
    scheduler = local_scheduler(scheduler)  # without importing distributed where it is not
    return dask.base.get_scheduler(scheduler=scheduler, collections=[collection]) in _IN_PROCESS


def _whole(dest, *views):
    return dest


def into_collection(plan, array, executor, share_map: bool = False, scheduler=None):
    """A dask collection (a ``Delayed``) whose compute returns the plan's result (see
    :func:`.graph.to_dask`) written into one new numpy array, or None where it cannot be
    (no pass, an empty output, a backend whose chunks are not numpy arrays, ``scheduler``
    outside this process): the caller then computes the dask array as usual.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> from transfuse.executors import get_executor
    >>> img = transfuse.lazy(np.arange(16.0).reshape(4, 4), chunks=2).rotate(90)
    >>> one = into_collection(img.plan(), img._array, get_executor("cpu"), scheduler="sync")
    >>> bool(np.array_equal(one.compute(scheduler="sync"), img.to_dask().compute()))
    True
    """
    if not plan.passes:
        return None
    last = plan.passes[-1].output
    shape = tuple(sum(c) for c in last.chunks)  # the boxes the tasks write
    if 0 in shape or type(executor.meta(last.dtype, len(shape))) is not np.ndarray:
        return None
    probe = da.zeros((), dtype=last.dtype)  # dask.array's default scheduler
    if not in_process(scheduler, probe):
        return None
    dest = np.empty(shape, dtype=last.dtype)
    with paused_gc():
        result = to_dask(plan, array, executor, share_map, dest=dest)
        name = "whole-" + result.name
        views = (TaskRef(k) for k in flatten(result.__dask_keys__()))
        task = Task(name, _whole, dest, *views)
        graph = HighLevelGraph.from_collections(name, {name: task}, dependencies=[result])
    return Delayed(name, graph)
