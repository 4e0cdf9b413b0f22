"""Issue 12 item 3 benchmark: the chunked B-spline prefilter and sparse prefiltered reads.

1. **Chunked prefilter** of a float32 volume (default 192³, chunks 64³, order 3, mode
   ``mirror``): the coefficient chunks of ``spline_coefficients`` (kept as chunks, not
   concatenated into one array) on the ``cpu`` backend (compiled filter) and on ``scipy``
   (``spline_filter1d`` per chunk window), 1 and N dask threads, against
   ``scipy.ndimage.spline_filter`` of the whole array (one thread). Prints best and median
   of ``--repeat`` runs, ns per voxel, the ratio to scipy whole-array (and, on 1 thread,
   the ratio of process CPU seconds, which other jobs on the machine move less) and the
   max difference from it relative to max|input|.
2. **Sparse reads**: ``transfuse.ndinterp.map_coordinates`` of 2 points into a 1000³ lazy
   random float32 dask array (chunks 200³), order 3, ``prefilter=True``: the time to build
   and compute it (the kernels warmed up first; the warm-up is printed on its own), and
   the reading of one input chunk alone (what any reader pays to see the data).

Prints the load average at the start and at the end.

Usage: python benchmarks/bench_prefilter.py [--size 192] [--chunk 64] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import dask
import dask.array as da
import numpy as np
import scipy.ndimage as ndi

import transfuse.ndinterp as tnd
from transfuse.executors import kernels_interp, kernels_prefilter
from transfuse.executors.cpu import CPUExecutor
from transfuse.executors.graph import spline_coefficients
from transfuse.executors.scipy_backend import ScipyExecutor
from transfuse.planner.options import ResampleOptions


def timed(fn, repeat, cpu=None):
    """Best and median wall seconds of ``repeat`` runs, and the result; with a list
    ``cpu``, the best process CPU seconds are appended to it (on a loaded machine they
    move less than wall seconds do)."""
    times, cpus, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if cpu is not None:
        cpu.append(min(cpus))
    return min(times), statistics.median(times), out


def chunked_prefilter(size, chunk, repeat, threads):
    x = np.random.default_rng(0).random((size,) * 3, dtype=np.float32)
    voxels = x.size
    cpu_ref = []
    best_ref, med_ref, ref = timed(
        lambda: ndi.spline_filter(x, 3, output=np.float64, mode="mirror"), repeat, cpu_ref
    )
    print(f"prefilter {size}^3 float32, order 3, mode mirror, chunks {chunk}^3")
    print(
        f"  scipy spline_filter, whole array, 1 thread: best {best_ref:.3f} s "
        f"median {med_ref:.3f} s  {1e9 * best_ref / voxels:.1f} ns/voxel  ratio 1.00  "
        f"(CPU {cpu_ref[0]:.3f} s)"
    )
    options = ResampleOptions(order=3, mode="mirror")
    arr = da.from_array(x, chunks=chunk)
    scale = float(np.abs(x).max())
    for executor in (CPUExecutor(), ScipyExecutor()):
        coef = spline_coefficients(arr, options, pad=0, executor=executor)
        for n in sorted({1, threads}):

            def run(coef=coef, n=n):
                with dask.config.set(scheduler="threads", num_workers=n):
                    (kept,) = dask.persist(coef)
                return kept

            cpu = []
            best, med, kept = timed(run, repeat, cpu)
            err = float(np.abs(kept.compute() - ref).max()) / scale
            # one thread: CPU seconds against scipy's CPU seconds, the ratio load moves less
            by_cpu = f"  CPU ratio {cpu[0] / cpu_ref[0]:.2f}" if n == 1 else ""
            print(
                f"  transfuse {executor.name:5s} chunked, {n} thread(s): best {best:.3f} s "
                f"median {med:.3f} s  {1e9 * best / voxels:.1f} ns/voxel  "
                f"ratio {best / best_ref:.2f}{by_cpu}  max diff {err:.1e} x max|input|"
            )


def sparse_reads(repeat):
    t0 = time.perf_counter()
    kernels_interp.warm_up([np.float32, np.float64])
    kernels_prefilter.warm_up()
    print(f"sparse reads (kernels warmed up / loaded from cache: {time.perf_counter() - t0:.2f} s)")
    x = da.random.RandomState(0).random_sample((1000,) * 3, chunks=200).astype(np.float32)
    pts = np.array([[10.3, 500.7], [20.1, 333.3], [993.5, 700.2]])
    one, _, _ = timed(lambda: x[:200, :200, :200].compute(), repeat)

    def run():
        return tnd.map_coordinates(x, pts, order=3, prefilter=True).compute()

    best, med, vals = timed(run, repeat)
    print(
        f"  2 points into 1000^3 (chunks 200^3), order 3, prefilter=True: best {best:.3f} s "
        f"median {med:.3f} s (target < 1 s); reading one 200^3 input chunk alone: {one:.3f} s"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-sparse", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} at the start, {os.cpu_count()} cores")
    kernels_prefilter.warm_up()
    chunked_prefilter(args.size, args.chunk, args.repeat, args.threads)
    if not args.skip_sparse:
        sparse_reads(args.repeat)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
