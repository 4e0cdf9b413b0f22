"""Issue 2 benchmark: a 3-step affine chain on a 256³ float32 volume, order 1, chunks 64³.

(a) transfuse, the chain fused into one resample (dask threads);
(b) three sequential scipy.ndimage.affine_transform calls (whole array, one thread);
(c) three sequential dask_image.ndinterp.affine_transform calls (chunks 64³, dask threads);
(d) SimpleITK ``Resample`` with the chain as one ``CompositeTransform`` (one pass, like ITK's
    users do; its own threads), if SimpleITK is installed (the ``bench`` extra).

Prints medians, ratios, task counts of (a) and (c), and the RMS difference of (a) and (b) from
a single order-5 resample with the composed matrix (over the central half of the volume, so
that what sequential resampling crops at the borders does not dominate).

Usage: python benchmarks/bench_fused_chain.py [--size 256] [--repeat 3]
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


def smooth_volume(n: int) -> np.ndarray:
    """A smooth test volume: a few Gaussian blobs plus a low-frequency wave."""
    rng = np.random.default_rng(0)
    grid = np.indices((n, n, n), dtype=np.float32) / n
    vol = 0.2 * np.sin(2 * np.pi * grid[0]) * np.cos(3 * np.pi * grid[1])
    for _ in range(6):
        c = rng.uniform(0.3, 0.7, 3)
        s = rng.uniform(0.05, 0.12)
        vol += np.exp(
            -((grid[0] - c[0]) ** 2 + (grid[1] - c[1]) ** 2 + (grid[2] - c[2]) ** 2) / (2 * s * s)
        )
    return vol.astype(np.float32)


def chain(n: int):
    """The three steps as pull transforms about the volume centre."""
    c = ((n - 1) / 2,) * 3
    step1 = tf.Rotate(20, axes=(0, 1), center=c)
    step2 = tf.Translate(c) @ tf.Scale((1 / 1.1,) * 3) @ tf.Translate(tuple(-v + 3 for v in c))
    step3 = tf.Rotate(-10, axes=(1, 2), center=c)
    return [step1, step2, step3]


def timed(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, ch = args.size, args.chunk
    x = smooth_volume(n)
    steps = chain(n)
    mats = [s.matrix() for s in steps]
    composed = (steps[0] @ steps[1] @ steps[2]).matrix()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"volume {n}^3 float32, order 1, chunks {ch}^3"
    )

    def fused():
        img = tf.lazy(x, chunks=ch)
        for s in steps:
            img = img.transform(s, order=1)
        return img

    def run_a():
        with dask.config.set(scheduler="threads"):
            return fused().compute()

    def run_b():
        y = x
        for m in mats:
            y = ndi.affine_transform(y, m, order=1)
        return y

    try:
        import dask.array as da
        from dask_image import ndinterp as di

        def build_c():
            y = da.from_array(x, chunks=ch)
            for m in mats:
                y = di.affine_transform(y, m, order=1, output_chunks=(ch,) * 3)
            return y

        def run_c():
            with dask.config.set(scheduler="threads"):
                return build_c().compute()
    except ImportError:
        build_c = run_c = None

    run_d = None
    try:
        import SimpleITK as sitk

        def itk_affine(m):
            # ITK's axes are (x, y, z): reverse scipy's (z, y, x) matrix and offset
            t = sitk.AffineTransform(3)
            t.SetMatrix(m[:3, :3][::-1, ::-1].ravel().tolist())
            t.SetTranslation(m[:3, 3][::-1].tolist())
            return t

        composite = sitk.CompositeTransform(3)
        for m in mats:  # ITK applies the last added first: mats[0] @ mats[1] @ mats[2]
            composite.AddTransform(itk_affine(m))
        image = sitk.GetImageFromArray(x)

        def run_d():
            res = sitk.Resample(image, image, composite, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
            return sitk.GetArrayFromImage(res)
    except ImportError:
        print("SimpleITK: not installed (pip install SimpleITK, or the bench extra)")

    run_a()  # warm-up: numba compiles (or loads) its kernels on first use
    ta, ya = timed(run_a, args.repeat)
    tb, yb = timed(run_b, args.repeat)
    rows = [("(a) transfuse fused", ta), ("(b) scipy x3 sequential", tb)]
    if run_c is not None:
        tc, yc = timed(run_c, args.repeat)
        rows.append(("(c) dask_image x3 sequential", tc))
    if run_d is not None:
        run_d()
        td, yd = timed(run_d, args.repeat)
        rows.append(("(d) SimpleITK, one CompositeTransform pass", td))
    plan = fused().plan()
    ntasks_a = len(fused().to_dask().__dask_graph__())
    print("\n| run | median s | (a) faster by |\n|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} | {t / ta:.2f}x |")
    nout = int(np.prod([len(c) for c in fused().to_dask().chunks]))
    print(
        f"\nresampling passes (a): {len(plan.passes)}; tasks (a): {ntasks_a} "
        f"({nout} output chunks; the rest: input chunks of from_array)"
    )
    if run_c is not None:
        print(f"tasks (c): {len(build_c().__dask_graph__())}")
    ref = ndi.affine_transform(x.astype(np.float64), composed, order=5)
    q = slice(n // 4, 3 * n // 4)

    def rms(y):
        return float(np.sqrt(np.mean((y[q, q, q].astype(np.float64) - ref[q, q, q]) ** 2)))

    print(
        f"RMS vs one order-5 resample (central half): (a) {rms(ya):.2e}  (b) {rms(yb):.2e}  "
        f"ratio b/a {rms(yb) / rms(ya):.2f}"
    )
    if run_c is not None:
        print(
            f"max |(a) - (c)| over the volume: {float(np.abs(ya - yc).max()):.3g} "
            "(dask_image composes nothing: it resamples three times)"
        )
    if run_d is not None:
        print(
            f"max |(a) - (d)| over the central half: {float(np.abs(ya - yd)[q, q, q].max()):.3g} "
            "(the same composed map, one linear resample each)"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
