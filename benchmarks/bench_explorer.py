"""Issue 10 benchmark: the latency of the parameter explorer's callback on a 256³ volume.

A 256³ float32 volume in chunks of 64³ is rotated by a free angle ``theta`` in the plane of
axes (1, 2) and zoomed by 1.1; the explorer shows the middle plane along axis 0 at 256².
One "slider move" is ``Explorer.update(theta=v)`` (bind, plan, compute the preview) plus the
PNG the widget shows. Prints the median over several angles, at order 1 and order 3 (and
with ``preview_order=1``), next to
computing the whole bound volume, and the tasks the preview ran (null backend).

Usage: python benchmarks/bench_explorer.py [--size 256] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import transfuse as tf
from transfuse.executors import NullExecutor
from transfuse.explore import explore


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    vol = rng.random((n, n, n), dtype=np.float32)
    theta = tf.symbols("theta")
    c = (n - 1) / 2
    print(f"{n}³ float32, chunks 64³, {os.cpu_count()} cores; preview 256² of plane {n // 2}")
    for order in (1, 3):
        img = (
            tf.lazy(vol, chunks=64)
            .transform(tf.Rotate(theta, axes=(1, 2), center=(0, c, c)), order=order)
            .zoom(1.1, order=order)
        )
        ex = explore(img, theta=(-45, 45), max_size=256)
        ex.update(theta=1.0)  # warm up (compiled kernels)
        ex.png()
        times = []
        for k in range(args.repeat):
            start = time.perf_counter()
            ex.update(theta=-40 + 80 * k / max(args.repeat - 1, 1))
            ex.png()
            times.append(time.perf_counter() - start)
        full_img = img.bind(theta=10)
        start = time.perf_counter()
        full_img.compute()
        full = time.perf_counter() - start
        null = NullExecutor()
        explore(img, theta=(-45, 45), max_size=256, executor=null).update(theta=10)
        kinds = [r.kind for r in null.records]
        fast = explore(img, theta=(-45, 45), max_size=256, preview_order=1)
        fast.update(theta=2.0)
        quick = []
        for k in range(args.repeat):
            start = time.perf_counter()
            fast.update(theta=-40 + 80 * k / max(args.repeat - 1, 1))
            fast.png()
            quick.append(time.perf_counter() - start)
        print(
            f"order {order}: slider move median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); whole volume "
            f"{full:.2f} s; preview tasks: {kinds.count('resample')} resample + "
            f"{kinds.count('prefilter')} prefilter (whole volume: {full_img.plan().ntasks}); "
            f"with preview_order=1: median {statistics.median(quick) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
