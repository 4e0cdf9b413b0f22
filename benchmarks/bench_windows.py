"""How the compiled kernel reads a numpy input's chunks: one view of the array
(``blocks.region_view``, the default) against copying them into a compact window
(``blocks.assemble_region``), the same job interleaved in one process.

256^3 float32 (chunks 64^3), the rotation + scale of ``bench_kernels.py``, orders 0 and 1,
on the synchronous scheduler and on 2 threads; ``--repeat`` rounds, each timing both
paths once, so that load changes hit both alike. Prints the median and best wall time and
the median CPU time (all threads) per path, and checks that both give the same bits.

Usage: python benchmarks/bench_windows.py [--size 256] [--chunk 64] [--repeat 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import dask
import dask.array as da
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kernels import smooth_volume, the_map  # noqa: E402

import transfuse.ndinterp as tnd  # noqa: E402
from transfuse.executors import kernel_plan  # noqa: E402


def _no_view(*args):
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=6)
    args = ap.parse_args()
    n = args.size
    vol = smooth_volume(n)
    lin, off = the_map(n)
    x = da.from_array(vol, chunks=args.chunk)
    view = kernel_plan.region_view
    print(
        f"{os.cpu_count()} cores; {n}^3 float32, chunks {args.chunk}^3; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'order':>5} {'scheduler':<12} {'window':<6} {'median s':>9} {'best s':>8} {'cpu s':>7}"
    )
    with dask.config.set({"transfuse.cold_start_voxels": 0, "transfuse.executor": "cpu"}):
        for order in (0, 1):
            arr = tnd.affine_transform(x, lin, off, order=order)
            results, times = {}, {}
            for rep in range(args.repeat + 1):  # the first round compiles, not counted
                for name, finder in (("view", view), ("copy", _no_view)):
                    kernel_plan.region_view = finder
                    for sched in ("synchronous", "threads"):
                        c0, t0 = time.process_time(), time.perf_counter()
                        out = arr.compute(scheduler=sched, num_workers=2)
                        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                        results[name] = out
                        if rep:
                            times.setdefault((sched, name), []).append((wall, cpu))
            kernel_plan.region_view = view
            same = np.array_equal(results["view"], results["copy"])
            for (sched, name), v in times.items():
                walls = [w for w, _ in v]
                print(
                    f"{order:>5} {sched:<12} {name:<6} {statistics.median(walls):>9.3f} "
                    f"{min(walls):>8.3f} {statistics.median(c for _, c in v):>7.3f}"
                )
            print(f"      view and copy give the same bits: {same}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
