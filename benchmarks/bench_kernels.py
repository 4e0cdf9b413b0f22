"""Issue 12 benchmark: one affine resample (rotation + scale about the centre) of a float32
volume, chunks 64³, orders 0, 1 and 3 (exact prefilter), every contestant side by side:

* transfuse ``cpu`` (the default backend: the compiled kernel), 1 thread and N dask threads,
  as ``ndinterp.affine_transform(...).compute()`` (a dask array: chunks concatenated) and
  as ``LazyImage.compute()`` (the chunks written into one array:
  ``transfuse.executors.in_memory``);
* transfuse ``scipy`` (the reference backend: scipy.ndimage per chunk), N threads;
* scipy.ndimage.affine_transform on the whole array (one thread);
* dask_image.ndinterp.affine_transform (chunks 64³, N threads; its defaults: no prefilter);
* SimpleITK ``Resample`` (linear / B-spline / nearest, N threads), if installed;
* affine-rs (``pip install affine-rs``, order 1 only, its own threads), if installed.

Prints the best and the median of ``--repeat`` runs, Mvox/s (from the best), the ratio to
scipy and each contestant's max difference from scipy over the points at least 3 samples
inside the input (where every contestant defines the same value); then the fresh-process
start-up line of ``bench_startup.py`` (``--startup 0`` skips it) and the load average.
SimpleITK and affine-rs come with the ``bench`` extra; a contestant that is not installed
is listed as such.

Usage: python benchmarks/bench_kernels.py [--size 256] [--chunk 64] [--repeat 3] [--threads 2]
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
import transfuse.ndinterp as tnd

try:  # run as a script (python benchmarks/bench_kernels.py)
    from bench_startup import startup_line
except ImportError:  # pragma: no cover - imported as benchmarks.bench_kernels
    from benchmarks.bench_startup import startup_line


def smooth_volume(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    g = np.linspace(0, 1, n, dtype=np.float32)
    z, y, x = np.meshgrid(g, g, g, indexing="ij", sparse=True)
    vol = 0.2 * np.sin(2 * np.pi * z) * np.cos(3 * np.pi * y) + 0 * x
    for _ in range(6):
        c = rng.uniform(0.3, 0.7, 3)
        s = rng.uniform(0.05, 0.12)
        vol = vol + np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * s * s))
    return np.ascontiguousarray(vol, dtype=np.float32)


def the_map(n: int):
    c = ((n - 1) / 2,) * 3
    t = tf.Rotate(20, axes=(0, 1), center=c) @ tf.Rotate(-10, axes=(1, 2), center=c)
    s = tf.Translate(c) @ tf.Scale((1 / 1.05,) * 3) @ tf.Translate(tuple(-v for v in c))
    m = (t @ s).matrix()
    return m[:3, :3].copy(), m[:3, 3].copy()


def interior(n, lin, off, margin=3):
    """Points whose input coordinates lie at least ``margin`` samples inside."""
    idx = np.arange(n, dtype=np.float64)
    o = np.meshgrid(idx, idx, idx, indexing="ij", sparse=True)
    mask = np.ones((n, n, n), dtype=bool)
    for h in range(3):
        c = off[h] + o[0] * lin[h, 0] + o[1] * lin[h, 1] + o[2] * lin[h, 2]
        mask &= (c >= margin) & (c <= n - 1 - margin)
    return mask


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        out = None
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def contestants(x, lin, off, order, chunk, threads):
    n = x.shape[0]
    arr = tf.lazy(x, chunks=chunk).to_dask()
    kw = dict(order=order, mode="constant", cval=0.0)
    out = {}

    def tf_run(executor, workers):
        res = tnd.affine_transform(arr, lin, off, output_chunks=chunk, executor=executor, **kw)
        if workers == 1:
            return res.compute(scheduler="synchronous")
        return res.compute(scheduler="threads", num_workers=workers)

    out["scipy.ndimage (whole array, 1 thread)"] = lambda: ndi.affine_transform(x, lin, off, **kw)
    out["transfuse cpu, 1 thread"] = lambda: tf_run("cpu", 1)
    out[f"transfuse cpu, {threads} threads"] = lambda: tf_run("cpu", threads)
    out[f"transfuse cpu, {threads} threads, LazyImage.compute"] = lambda: (
        tf.lazy(arr)
        .affine_transform(lin, off, output_chunks=chunk, **kw)
        .compute(scheduler="threads", num_workers=threads)
    )
    out[f"transfuse scipy, {threads} threads"] = lambda: tf_run("scipy", threads)
    try:
        import dask_image.ndinterp as di

        def di_run():
            res = di.affine_transform(arr, lin, off, output_chunks=(chunk,) * 3, **kw)
            return res.compute(scheduler="threads", num_workers=threads)

        out[f"dask_image ({threads} threads, no prefilter)"] = di_run
    except ImportError:  # pragma: no cover
        print("dask_image: not installed")
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        image = sitk.GetImageFromArray(x)  # axes reversed: (x, y, z)
        rev = lin[::-1, ::-1]
        tr = sitk.AffineTransform(3)
        tr.SetMatrix(rev.ravel().tolist())
        tr.SetTranslation(off[::-1].tolist())
        interp = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}[order]

        def sitk_run():
            res = sitk.Resample(image, image, tr, interp, 0.0, sitk.sitkFloat32)
            return sitk.GetArrayFromImage(res)

        out[f"SimpleITK Resample ({threads} threads)"] = sitk_run
    except ImportError:  # pragma: no cover
        print("SimpleITK: not installed (pip install SimpleITK, or the bench extra)")
    if order == 1:
        try:
            import affiners

            out["affine-rs (its threads)"] = lambda: affiners.affine_transform(
                x, lin, off, cval=0.0, order=1
            )
        except ImportError:  # pragma: no cover
            print("affine-rs: not installed (pip install affine-rs, or the bench extra)")
    del n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--orders", default="0,1,3")
    ap.add_argument("--startup", type=int, default=3, help="fresh processes per contestant")
    args = ap.parse_args()
    n, ch = args.size, args.chunk
    x = smooth_volume(n)
    lin, off = the_map(n)
    mask = interior(n, lin, off)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{n}^3 float32, chunks {ch}^3, best and median of {args.repeat}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for order in [int(v) for v in args.orders.split(",")]:
        print(f"\norder {order}" + (" (prefilter)" if order > 1 else ""))
        print(
            f"{'contestant':44s} {'best s':>8s} {'median s':>8s} {'Mvox/s':>8s} "
            f"{'x scipy':>8s} {'max |diff|':>11s}"
        )
        ref = None
        base = None
        with dask.config.set({"array.slicing.split_large_chunks": False}):
            for name, fn in contestants(x, lin, off, order, ch, args.threads).items():
                fn()  # warm up (compilation, caches)
                best, med, out = timed(fn, args.repeat)
                out = np.asarray(out)
                if ref is None:
                    ref, base = out, best
                diff = float(np.max(np.abs(out[mask].astype(np.float64) - ref[mask])))
                print(
                    f"{name:44s} {best:8.3f} {med:8.3f} {n**3 / best / 1e6:8.1f} "
                    f"{base / best:8.2f} {diff:11.2e}"
                )
    if args.startup:
        print()
        print(startup_line(order=1, repeat=args.startup))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
