"""Issue 12 benchmark, the non-linear chain: affine @ displacement field @ expression on a
float32 volume (chunks 64³, orders 1 and 3 with the exact prefilter), side by side:

* transfuse ``cpu`` (the chain's coordinates block by block by compiled stages — the
  field sampled from its coefficients, the expression compiled by numba — each block then
  interpolated by the compiled kernel), 1 thread and N dask threads;
* transfuse ``scipy`` (the reference backend: the same coordinates with scipy.ndimage for
  the field, ``map_coordinates`` per chunk), N threads — what the ``cpu`` backend ran for
  such chains before they went through the kernel;
* the 3-step scipy pipeline on whole arrays (one thread): the expression (coordinates,
  ``map_coordinates``), the field (upsampled with ``map_coordinates`` of its coefficients,
  ``map_coordinates``), the affine (``affine_transform``) — three resamplings.

The field is smooth, on a 32³ grid with spacing 8 (order 3, |u| up to about 4 voxels);
the expression is a mild barrel distortion about the centre. Prints best and median of
``--repeat`` runs, Mvox/s, the ratio to the first row ("base": the 3-step pipeline, or
with ``--no-steps`` transfuse ``scipy``), each contestant's max
difference from transfuse ``scipy`` (the fused reference; the 3-step pipeline resamples
three times, so its difference is interpolation error, not a defect) and the load average.

Usage: python benchmarks/bench_kernel_chain.py [--size 256] [--chunk 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import dask
import numpy as np
import scipy.ndimage as ndi

import transfuse as tf


def volume(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    g = np.linspace(0, 1, n, dtype=np.float32)
    z, y, x = np.meshgrid(g, g, g, indexing="ij", sparse=True)
    vol = np.sin(6 * z) * np.cos(5 * y) * np.sin(4 * x) + 0.1 * rng.random((n, n, n))
    return np.ascontiguousarray(vol, dtype=np.float32)


def field(n_grid: int, amplitude: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    grids = np.indices((n_grid,) * 3, dtype=np.float64)
    comps = []
    for _ in range(3):
        acc = np.zeros((n_grid,) * 3)
        for _ in range(3):
            k = rng.uniform(0.05, 0.3, 3)
            acc += np.sin(np.tensordot(k, grids, axes=1) + rng.uniform(0, 2 * np.pi))
        comps.append(amplitude * acc / 3)
    return np.stack(comps)


def pieces(n: int):
    """The affine (4x4), the field samples and spacing, the barrel ExprMap."""
    c = (n - 1) / 2
    a = np.deg2rad(10.0)
    lin = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    lin = lin @ np.diag([1.03, 0.98, 1.0])
    aff = np.eye(4)
    aff[:3, :3] = lin
    aff[:3, 3] = c - lin @ np.full(3, c)
    spacing = 8.0
    u = field(n // 8)
    z, y, x = tf.symbols("z y x")
    k = 0.05 / c**2
    r2 = (y - c) ** 2 + (x - c) ** 2
    barrel = tf.ExprMap([z, c + (y - c) * (1 + k * r2), c + (x - c) * (1 + k * r2)], (z, y, x))
    return aff, u, spacing, barrel, (c, k)


def transfuse_run(x, aff, u, spacing, barrel, order, chunk, executor, workers):
    D = tf.DisplacementField(u, spacing=spacing, order=3, mode="nearest")
    T = tf.Affine(aff) @ D @ barrel
    lazy = tf.lazy(x, chunks=chunk).transform(T, order=order, mode="constant")
    with dask.config.set({"transfuse.executor": executor}):
        if workers == 1:
            return lazy.compute(scheduler="synchronous")
        return lazy.compute(scheduler="threads", num_workers=workers)


def three_steps(x, aff, u, spacing, barrel_params, order):
    """Pull order: out(o) = x(A(D(B(o)))) -> resample by A, then by D, then by B."""
    c, k = barrel_params
    n = x.shape
    s1 = ndi.affine_transform(x, aff, order=order, mode="constant", output=np.float32)
    coords = np.indices(n, dtype=np.float64)
    coef = [ndi.spline_filter(u[h], order=3, mode="nearest") for h in range(3)]
    disp = np.stack(
        [
            ndi.map_coordinates(coef[h], coords / spacing, order=3, mode="nearest", prefilter=False)
            for h in range(3)
        ]
    )
    s2 = ndi.map_coordinates(s1, coords + disp, order=order, mode="constant", output=np.float32)
    del s1, disp
    r2 = (coords[1] - c) ** 2 + (coords[2] - c) ** 2
    coords[1] = c + (coords[1] - c) * (1 + k * r2)
    coords[2] = c + (coords[2] - c) * (1 + k * r2)
    return ndi.map_coordinates(s2, coords, order=order, mode="constant", output=np.float32)


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        out = None
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--orders", default="1,3")
    ap.add_argument("--no-steps", action="store_true", help="skip the 3-step scipy pipeline")
    args = ap.parse_args()
    n, ch = args.size, args.chunk
    x = volume(n)
    aff, u, spacing, barrel, bp = pieces(n)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{n}^3 float32, chunks {ch}^3, field 3x{n // 8}^3 (order 3), best and median of "
        f"{args.repeat}; load average {os.getloadavg()[0]:.2f}"
    )
    m = n // 8
    core = (slice(m, -m),) * 3
    for order in [int(v) for v in args.orders.split(",")]:
        print(
            f"\naffine @ field @ expression, order {order}" + (" (prefilter)" if order > 1 else "")
        )
        print(
            f"{'contestant':40s} {'best s':>8s} {'median s':>8s} {'Mvox/s':>8s} "
            f"{'x base':>8s} {'max |diff|':>11s}"
        )
        runs = {}
        if not args.no_steps:
            runs["scipy 3-step pipeline (1 thread)"] = lambda order=order: three_steps(
                x, aff, u, spacing, bp, order
            )
        runs[f"transfuse scipy, {args.threads} threads"] = lambda order=order: transfuse_run(
            x, aff, u, spacing, barrel, order, ch, "scipy", args.threads
        )
        runs["transfuse cpu, 1 thread"] = lambda order=order: transfuse_run(
            x, aff, u, spacing, barrel, order, ch, "cpu", 1
        )
        runs[f"transfuse cpu, {args.threads} threads"] = lambda order=order: transfuse_run(
            x, aff, u, spacing, barrel, order, ch, "cpu", args.threads
        )
        results, ref, base = {}, None, None
        for name, fn in runs.items():
            if name.startswith("transfuse"):
                fn()  # warm up (compilation, caches)
            best, med, out = timed(fn, args.repeat)
            results[name] = (best, med, np.asarray(out, dtype=np.float64))
            if base is None:
                base = best
        ref = results[f"transfuse scipy, {args.threads} threads"][2]
        for name, (best, med, out) in results.items():
            diff = float(np.max(np.abs(out[core] - ref[core])))
            print(
                f"{name:40s} {best:8.3f} {med:8.3f} {n**3 / best / 1e6:8.1f} "
                f"{base / best:8.2f} {diff:11.2e}"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
