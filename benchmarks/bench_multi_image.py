"""Several images through one non-linear map: shared fused coordinates vs one map each.

An intensity volume (order 3), a label map (order 0) and a mask (order 1), float32/int32,
resampled through ``affine @ displacement field @ affine`` onto one grid:

* ``shared``   — ``transfuse.resample([...])`` and ``compute_all``: the map's coordinates
  are computed once per output chunk and read by the three resampling tasks;
* ``separate`` — the three images resampled one by one (each task evaluates the map), also
  computed in one ``dask.compute``.

Prints the median and best wall time of ``--repeat`` runs, their ratio, the number of
map evaluations (tasks) in each graph, and the load average (other processes on the
machine distort wall times).

Usage::

    python benchmarks/bench_multi_image.py           # 160³
    python benchmarks/bench_multi_image.py --small   # 64³, a few seconds
"""

from __future__ import annotations

import argparse
import os
import time

import dask
import numpy as np

import transfuse
from transfuse import DisplacementField, Rotate, Translate


def _inputs(n):
    rng = np.random.default_rng(0)
    intensity = rng.random((n, n, n), dtype=np.float32)
    labels = rng.integers(0, 8, size=(n, n, n), dtype=np.int32)
    mask = (intensity > 0.5).astype(np.float32)
    field = rng.normal(scale=2.0, size=(3, 9, 9, 9))
    c = (n - 1) / 2
    T = (
        Rotate(8.0, axes=(1, 2), center=(c, c, c))
        @ DisplacementField(field, spacing=n / 8)
        @ Translate((0.5, -0.25, 0.75))
    )
    return (intensity, labels, mask), T


def _build(arrays, T, chunks, shared):
    imgs = [transfuse.lazy(a, chunks=chunks) for a in arrays]
    orders = (3, 0, 1)
    if shared:
        return transfuse.resample(imgs, T, space="index", order=orders, labels=[1])
    modes = ("constant", "constant", "constant")
    return [
        im.resample(T, space="index", order=o, mode=m)
        for im, o, m in zip(imgs, orders, modes, strict=True)
    ]


def _run(arrays, T, chunks, shared, repeat):
    times = []
    for _ in range(repeat):
        out = _build(arrays, T, chunks, shared)
        t0 = time.perf_counter()
        dask.compute(*[o.to_dask() for o in out])
        times.append(time.perf_counter() - t0)
    graph = {}
    for o in _build(arrays, T, chunks, shared):
        graph.update(dict(o.to_dask().__dask_graph__()))
    n_map = sum(1 for k in graph if isinstance(k, tuple) and "fused-coordinates" in k[0])
    return float(np.median(times)), min(times), n_map


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, chunks = (64, 32) if args.small else (160, 64)
    arrays, T = _inputs(n)
    print(f"{n}^3, chunks {chunks}^3, 3 images (orders 3/0/1), load {os.getloadavg()[0]:.2f}")
    rows = {}
    for name, shared in (("separate", False), ("shared", True)):
        med, best, n_map = _run(arrays, T, chunks, shared, args.repeat)
        rows[name] = med
        print(f"{name:9s} median {med:7.3f} s  best {best:7.3f} s  shared map tasks {n_map}")
    print(f"separate / shared: {rows['separate'] / rows['shared']:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
