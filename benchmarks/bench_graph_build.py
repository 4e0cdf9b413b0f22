"""Graph-building time: plans with about 10,000 output chunks (issue 2: "well under a
second"), next to dask_image.ndinterp.affine_transform building the same graph (D12).

Usage: python benchmarks/bench_graph_build.py
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import dask.array as da

import transfuse as tf


def median_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    cases = [
        ("2-D 1000^2, chunks 10 (10,000 chunks), order 1", (1000, 1000), 10, 1),
        ("3-D 440^3, chunks 20 (10,648 chunks), order 1", (440, 440, 440), 20, 1),
        ("3-D 440^3, chunks 20 (10,648 chunks), order 3 + prefilter", (440, 440, 440), 20, 3),
    ]
    print("\n| plan | transfuse build (s) | tasks | dask_image build (s) | tasks |")
    print("|---|---|---|---|---|")
    for label, shape, chunk, order in cases:
        x = da.zeros(shape, chunks=chunk)
        center = tuple((n - 1) / 2 for n in shape)
        T = tf.Rotate(10, axes=(0, len(shape) - 1), center=center)

        def build_transfuse(x=x, T=T, order=order):
            return tf.lazy(x).transform(T, order=order).to_dask()

        t_a, arr = median_time(build_transfuse)
        n_a = len(arr.__dask_graph__())
        try:
            from dask_image import ndinterp as di

            out_chunks = (chunk,) * len(shape)

            def build_dask_image(x=x, T=T, order=order, chunks=out_chunks):
                return di.affine_transform(x, T.matrix(), order=order, output_chunks=chunks)

            t_c, arr_c = median_time(build_dask_image, repeat=1)
            extra = f"{t_c:.2f} | {len(arr_c.__dask_graph__())}"
        except ImportError:
            extra = "n/a | n/a"
        print(f"| {label} | {t_a:.2f} | {n_a} | {extra} |")


if __name__ == "__main__":
    main()
