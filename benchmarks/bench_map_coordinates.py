"""map_coordinates at scale: transfuse.ndinterp vs dask_image.ndinterp.

10**8 coordinates (a lazily generated, chunked dask array, never held whole) sample a 512**3
float32 volume with order 1; the result is reduced to its mean, so nothing of output size is
kept. Each contestant runs in its own subprocess, so that its peak RSS (getrusage
``ru_maxrss``) is its own; the volume is generated once into a .npy file, loaded by each
(its 512 MiB are in both peaks).

Two coordinate sets (``--coords``):

* ``random`` — uniform over the volume (and half a sample beyond): no locality at all;
* ``warp`` — a smoothly deformed grid (what a deformation field gives): each chunk of
  coordinates reads a small part of the volume.

Usage::

    python benchmarks/bench_map_coordinates.py --small              # 10**6 coords, 128**3
    python benchmarks/bench_map_coordinates.py                      # 10**8 coords, 512**3
    python benchmarks/bench_map_coordinates.py --coords warp --only transfuse
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

CONTESTANTS = ("transfuse", "dask_image")


def make_volume(path: str, n: int, seed: int = 0) -> None:
    """An n**3 float32 volume of smooth structure plus noise, written slab by slab."""
    vol = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n, n))
    rng = np.random.default_rng(seed)
    axis = np.linspace(0, 6 * np.pi, n, dtype=np.float32)
    yz = np.sin(axis)[:, None] * np.cos(axis)[None, :]
    step = max(1, 2**24 // (n * n))
    for s in range(0, n, step):
        e = min(n, s + step)
        slab = rng.random((e - s, n, n), dtype=np.float32)
        slab += np.sin(axis[s:e])[:, None, None] * yz[None]
        vol[s:e] = slab
    vol.flush()
    del vol


def make_coordinates(kind: str, count: int, n: int, chunk: int, seed: int = 1):
    """Lazily generated coordinates, shape (3, count), chunks (3, chunk)."""
    import dask.array as da

    if kind == "random":
        rs = da.random.RandomState(seed)
        return rs.uniform(-0.5, n - 0.5, size=(3, count), chunks=(3, chunk))
    if kind == "warp":
        side = round(count ** (1 / 3))
        i = da.arange(count, chunks=chunk, dtype=np.int64)
        grid = [i // (side * side), (i // side) % side, i % side]
        scale = (n - 1) / (side - 1)
        period = side / 3
        parts = []
        for a, g in enumerate(grid):
            other = grid[(a + 1) % 3].astype(np.float64)
            bump = 2.5 * da.sin(2 * np.pi * other / period)
            parts.append(g.astype(np.float64) * scale + bump)
        return da.stack(parts).rechunk((3, chunk))
    raise ValueError(f"--coords {kind!r}: random or warp")


def run_contestant(args) -> dict:
    """Run one contestant in this process and return its figures."""
    import dask
    import dask.array as da

    dask.config.set(scheduler="threads", num_workers=args.workers)
    volume = np.load(args.volume)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = da.from_array(volume, chunks=args.input_chunk)
    coords = make_coordinates(args.coords, args.count, args.size, args.coord_chunk)
    if args.run == "transfuse":
        from transfuse.ndinterp import map_coordinates
    else:
        from dask_image.ndinterp import map_coordinates
    t0 = time.perf_counter()  # build: for transfuse, includes a min/max pass over coordinates
    y = map_coordinates(x, coords, order=1)
    t_build = time.perf_counter() - t0
    mean = float(y.mean(dtype=np.float64).compute())
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "contestant": args.run,
        "build_s": t_build,
        "total_s": total,
        "peak_rss_mib": peak / 1024,
        "rss_after_load_mib": rss_loaded / 1024,
        "mean": mean,
        "tasks": len(y.__dask_graph__()),
        "output_chunks": len(y.chunks[0]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="10**6 coordinates into 128**3")
    p.add_argument("--coords", default="random", choices=["random", "warp"])
    p.add_argument("--count", type=int, help="number of coordinates (default 10**8)")
    p.add_argument("--size", type=int, help="volume side (default 512)")
    p.add_argument("--input-chunk", type=int, help="input chunk side (default size / 4)")
    p.add_argument("--coord-chunk", type=int, help="coordinates per chunk (default 2**22)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--only", choices=CONTESTANTS, help="run one contestant")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per contestant")
    p.add_argument("--run", choices=CONTESTANTS, help=argparse.SUPPRESS)
    p.add_argument("--volume", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.count = args.count or (10**6 if args.small else 10**8)
    args.size = args.size or (128 if args.small else 512)
    args.input_chunk = args.input_chunk or max(1, args.size // 4)
    args.coord_chunk = args.coord_chunk or min(args.count, 2**18 if args.small else 2**22)

    if args.run:  # child process
        print(json.dumps(run_contestant(args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-mapc-") as tmp:
        volume = os.path.join(tmp, "volume.npy")
        t = time.perf_counter()
        make_volume(volume, args.size)
        print(
            f"volume {args.size}^3 float32 (chunks {args.input_chunk}^3) made in "
            f"{time.perf_counter() - t:.1f} s; {args.count:,} {args.coords} coordinates "
            f"in chunks of {args.coord_chunk:,}; order 1; {args.workers} threads",
            flush=True,
        )
        results = {}
        for name in [args.only] if args.only else CONTESTANTS:
            cmd = [sys.executable, os.path.abspath(__file__), "--run", name, "--volume", volume]
            cmd += ["--coords", args.coords, "--count", str(args.count)]
            cmd += ["--size", str(args.size), "--input-chunk", str(args.input_chunk)]
            cmd += ["--coord-chunk", str(args.coord_chunk), "--workers", str(args.workers)]
            t = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                results[name] = {"error": f"timed out after {args.timeout:.0f} s"}
                print(f"{name}: timed out after {args.timeout:.0f} s", flush=True)
                continue
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                results[name] = {"error": " | ".join(tail)}
                print(f"{name}: failed after {time.perf_counter() - t:.1f} s: {tail}", flush=True)
                continue
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{name}: {results[name]}", flush=True)

    rows = [
        ("build (s)", "build_s", "{:.2f}"),
        ("build + compute (s)", "total_s", "{:.2f}"),
        ("peak RSS (MiB)", "peak_rss_mib", "{:.0f}"),
        ("RSS after loading input (MiB)", "rss_after_load_mib", "{:.0f}"),
        ("tasks in graph", "tasks", "{:d}"),
        ("mean of result", "mean", "{:.9f}"),
    ]
    names = list(results)
    print()
    print(f"{'':32}" + "".join(f"{n:>16}" for n in names) + ("   ratio" if len(names) == 2 else ""))
    for label, key, fmt in rows:
        vals = [results[n].get(key) for n in names]
        cells = "".join(f"{fmt.format(v) if v is not None else 'n/a':>16}" for v in vals)
        ratio = ""
        if len(names) == 2 and None not in vals and key in ("build_s", "total_s", "peak_rss_mib"):
            ratio = f"   {vals[1] / vals[0]:.2f}x" if vals[0] else ""
        print(f"{label:32}{cells}{ratio}")
    for n in names:
        if "error" in results[n]:
            print(f"{n}: {results[n]['error']}")
    if len(names) == 2 and all("mean" in results[n] for n in names):
        a, b = (results[n]["mean"] for n in names)
        print(f"means agree to {abs(a - b) / max(abs(a), 1e-300):.1e} (relative)")
    print("ratio = dask_image / transfuse (above 1: transfuse is faster / leaner)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
