"""Issue 4 benchmark: affine @ displacement field @ affine on a 256³ float32 volume, order 1.

The field is smooth, given on a 32³ grid with spacing 8 (|u| up to about 4 voxels).

* ``fused`` — transfuse: the chain compiled into one map evaluated per 64³ output chunk
  (the field is sampled at the affine-mapped points), one resampling (dask threads);
* ``scipy`` — three sequential steps, whole arrays, one thread: ``affine_transform``; the
  field upsampled to the image grid (three ``affine_transform`` zooms, no coordinate array
  needed for that) and added to an index grid; ``map_coordinates``; ``affine_transform``.

Each contestant runs in its own subprocess so that its peak RSS (getrusage ``ru_maxrss``)
is its own. The input is generated in each child (same seed). Reported: wall time of the
work (median and best of ``--repeat`` runs; input generation and imports excluded), CPU
time, peak RSS, and peak RSS above what the child held before the work (its imports and
input), and the load average (other processes on the machine distort wall times). The
fused result is checked against ``scipy.ndimage.map_coordinates`` of the whole input at the
composed coordinates, at 10^5 random points; the RMS difference between the two
contestants (interpolation error of resampling three times vs once) is printed too.

Usage::

    python benchmarks/bench_displacement.py            # 256³
    python benchmarks/bench_displacement.py --small    # 96³, a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

CONTESTANTS = ("fused", "scipy")


def volume(n: int) -> np.ndarray:
    """A float32 volume: smooth structure plus noise."""
    rng = np.random.default_rng(0)
    axis = np.linspace(0, 6 * np.pi, n, dtype=np.float32)
    vol = rng.random((n, n, n), dtype=np.float32)
    vol += np.sin(axis)[:, None, None] * np.cos(axis)[None, :, None] * np.sin(axis / 2)[None, None]
    return vol


def field(n_grid: int, amplitude: float = 4.0) -> np.ndarray:
    """A smooth displacement field, shape (3, n_grid, n_grid, n_grid) (float64)."""
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


def matrices(n: int):
    """The two affine pull matrices (homogeneous 4x4): A1 (outer) and A2 (inner)."""
    c = (n - 1) / 2
    a = np.deg2rad(12.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    lin1 = rot @ np.diag([1.05, 0.97, 1.0])
    a1 = np.eye(4)
    a1[:3, :3] = lin1
    a1[:3, 3] = c - lin1 @ np.full(3, c) + [1.5, -2.0, 0.5]
    lin2 = np.array([[1.0, 0.08, 0.0], [0.0, 1.0, -0.05], [0.03, 0.0, 0.98]])
    a2 = np.eye(4)
    a2[:3, :3] = lin2
    a2[:3, 3] = c - lin2 @ np.full(3, c)
    return a1, a2


def run_fused(x, u, spacing, a1, a2, chunk, workers):
    import dask

    import transfuse as tf

    D = tf.DisplacementField(u, spacing=spacing, order=1, mode="nearest")
    T = tf.Affine(a1) @ D @ tf.Affine(a2)
    lazy = tf.lazy(x, chunks=chunk).transform(T, order=1, mode="constant", output_chunks=chunk)
    arr = lazy.to_dask()
    with dask.config.set(scheduler="threads", num_workers=workers):
        return arr.compute(), {"tasks": len(arr.__dask_graph__())}


def run_scipy(x, u, spacing, a1, a2):
    import scipy.ndimage as ndi

    n = x.shape
    times = {}
    t = time.perf_counter()
    s1 = ndi.affine_transform(x, a1, order=1, mode="constant")
    times["step1_s"] = time.perf_counter() - t
    t = time.perf_counter()
    coords = np.indices(n, dtype=np.float64)
    for k in range(3):  # u at p / spacing: a zoom by 1/spacing, as scipy computes it
        coords[k] += ndi.affine_transform(
            u[k],
            np.full(3, 1.0 / spacing),
            output_shape=n,
            order=1,
            mode="nearest",
            output=np.float64,
        )
    times["upsample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    s2 = ndi.map_coordinates(s1, coords, order=1, mode="constant")
    del coords, s1
    times["step2_s"] = time.perf_counter() - t
    t = time.perf_counter()
    s3 = ndi.affine_transform(s2, a2, order=1, mode="constant")
    times["step3_s"] = time.perf_counter() - t
    return s3, times


def child(args) -> dict:
    n = args.size
    x = volume(n)
    u = field(args.grid)
    a1, a2 = matrices(n)
    if args.run == "fused":
        import transfuse  # noqa: F401  (imports before the baseline RSS)
    else:
        import scipy.ndimage  # noqa: F401
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    walls, cpus = [], []
    for _ in range(args.repeat):
        out = None  # the previous result is freed before the next run
        t0, c0 = time.perf_counter(), time.process_time()
        if args.run == "fused":
            out, extra = run_fused(x, u, args.spacing, a1, a2, args.chunk, args.workers)
        else:
            out, extra = run_scipy(x, u, args.spacing, a1, a2)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(args.out, out)
    return {
        "wall_s": float(np.median(walls)),
        "wall_min_s": min(walls),
        "cpu_s": float(np.median(cpus)),
        "peak_mib": peak / 1024,
        "before_mib": rss_before / 1024,
        "load": os.getloadavg()[0],
        **extra,
    }


def check(args, outputs) -> dict:
    """Fused vs an exact reference at random points; RMS difference of the contestants."""
    import scipy.ndimage as ndi

    n = args.size
    x = volume(n)
    u = field(args.grid)
    a1, a2 = matrices(n)
    rng = np.random.default_rng(2)
    pts = rng.integers(0, n, size=(3, 100_000)).astype(np.float64)
    q = a2[:3, :3] @ pts + a2[:3, 3:]
    disp = np.stack(
        [ndi.map_coordinates(u[k], q / args.spacing, order=1, mode="nearest") for k in range(3)]
    )
    p = a1[:3, :3] @ (q + disp) + a1[:3, 3:]
    exact = ndi.map_coordinates(x, p, order=1, mode="constant")
    out = {}
    idx = tuple(pts.astype(np.int64))
    if "fused" in outputs:
        fused = np.load(outputs["fused"], mmap_mode="r")
        out["fused_max_err"] = float(np.abs(fused[idx] - exact).max())
    if len(outputs) == 2:
        a = np.load(outputs["fused"]).astype(np.float64)
        b = np.load(outputs["scipy"]).astype(np.float64)
        m = n // 4
        core = (slice(m, -m),) * 3
        out["rms_fused_vs_steps_core"] = float(np.sqrt(np.mean((a[core] - b[core]) ** 2)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="96³ volume, 12³ field grid")
    p.add_argument("--size", type=int, help="volume side (default 256)")
    p.add_argument("--chunk", type=int, default=64, help="chunk side for transfuse")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=3, help="runs per contestant (median)")
    p.add_argument("--only", choices=CONTESTANTS)
    p.add_argument("--run", choices=CONTESTANTS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.size = args.size or (96 if args.small else 256)
    args.spacing = 8
    args.grid = args.size // args.spacing
    if args.small:
        args.chunk = min(args.chunk, 48)

    if args.run:
        print(json.dumps(child(args)))
        return 0

    print(
        f"volume {args.size}³ float32, field {args.grid}³ spacing {args.spacing}, order 1, "
        f"chunks {args.chunk}³, {args.workers} threads for transfuse; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        flush=True,
    )
    results, outputs = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-disp-") as tmp:
        for name in [args.only] if args.only else CONTESTANTS:
            path = os.path.join(tmp, f"{name}.npy")
            cmd = [sys.executable, os.path.abspath(__file__), "--run", name, "--out", path]
            cmd += ["--size", str(args.size), "--chunk", str(args.chunk)]
            cmd += ["--workers", str(args.workers), "--repeat", str(args.repeat)]
            cmd += ["--small"] if args.small else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name} failed:\n{proc.stderr[-2000:]}")
                return 1
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            outputs[name] = path
            print(f"{name}: {results[name]}", flush=True)
        checks = check(args, outputs)

    names = list(results)
    rows = [
        ("wall time, median (s)", "wall_s", "{:.2f}"),
        ("wall time, best (s)", "wall_min_s", "{:.2f}"),
        ("CPU time, median (s)", "cpu_s", "{:.2f}"),
        ("peak RSS (MiB)", "peak_mib", "{:.0f}"),
        ("RSS before the work (MiB)", "before_mib", "{:.0f}"),
    ]
    print()
    print(
        f"{'':28}"
        + "".join(f"{n:>12}" for n in names)
        + ("   scipy/fused" if len(names) == 2 else "")
    )
    for label, key, fmt in rows:
        vals = [results[n][key] for n in names]
        show = len(names) == 2 and key in ("wall_s", "wall_min_s", "peak_mib")
        ratio = f"   {vals[1] / vals[0]:.2f}x" if show else ""
        print(f"{label:28}" + "".join(f"{fmt.format(v):>12}" for v in vals) + ratio)
    if len(names) == 2:
        extra = [results[n]["peak_mib"] - results[n]["before_mib"] for n in names]
        print(
            f"{'peak above before (MiB)':28}"
            + "".join(f"{v:>12.0f}" for v in extra)
            + f"   {extra[1] / extra[0]:.2f}x"
        )
    if "scipy" in results:
        s = results["scipy"]
        print(
            "scipy steps (s): affine {step1_s:.2f}, field upsampling {upsample_s:.2f}, "
            "map_coordinates {step2_s:.2f}, affine {step3_s:.2f}".format(**s)
        )
    if "fused" in results:
        print(f"fused graph: {results['fused']['tasks']} tasks")
    for k, v in checks.items():
        print(f"{k}: {v:.3g}")
    loads = ", ".join(f"{n} {results[n]['load']:.1f}" for n in names)
    print(f"1-min load average at the end of each child: {loads} (on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
