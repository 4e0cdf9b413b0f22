"""Issue 12 profile: how far the order-1 kernel is from the cost of trilinear arithmetic on
this machine, per output point, one thread, warm caches.

The job is ``bench_kernels.py``'s (256³ float32, its rotation + scale, chunks 64³). For
each of a few output chunks whose points all lie inside the input, three kernels compute
the same chunk from the whole input array, each ``--repeat`` times, interleaved (so that
the machine's noise hits them alike; medians):

* **transfuse**: the compiled kernel itself, called with the arguments the ``cpu`` backend
  passes it for that chunk (every mode's rule, the fast-path run per row — blocked, 32
  points at a time, where the row's bounds are one interval per axis — the tables);
* **bare scalar**: a trilinear loop with nothing but the arithmetic — coordinates, floors,
  8 loads, scipy's products and sum — and a bounds test (what any exact kernel must do);
* **bare blocked**: the same operations, the coordinates, weights and sums of 32 points at a
  time in loops the compiler vectorises (AVX2: 4 float64 lanes), the 8 loads per point in a
  scalar loop between them.

Both bare kernels are checked equal to transfuse bit for bit on every chunk. They stand for
the floor an exact (float64, scipy-ordered) order-1 kernel meets here; affine-rs, the
fastest peer, computes in float32 SIMD (not exact), and its per-thread cost is printed from
a whole-volume run when it is installed.

Usage: python benchmarks/bench_kernel_floor.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import statistics
import time

import numba
import numpy as np

import transfuse as tf
import transfuse.ndinterp as tnd
from transfuse.executors import kernels_interp

try:  # run as a script (python benchmarks/bench_kernel_floor.py)
    from bench_kernels import smooth_volume, the_map
except ImportError:  # pragma: no cover - imported as benchmarks.bench_kernel_floor
    from benchmarks.bench_kernels import smooth_volume, the_map

BLOCK = 32
CHUNK = 64
#: the compiled kernel's parameters by name (its calls are recorded positionally)
KERNEL_ARGS = list(inspect.signature(kernels_interp._kernel).parameters)


@numba.njit(inline="always", cache=True)
def row_start(lin, off, g0, g1):
    """The coordinates of a row's first two grid axes, summed as scipy sums them."""
    h = [0.0, 0.0, 0.0]
    for a in range(3):
        h[a] = off[a] + g0 * lin[a, 0]
        h[a] = h[a] + g1 * lin[a, 1]
    return h[0], h[1], h[2]


@numba.njit(boundscheck=False, nogil=True, cache=True)
def bare_scalar(x, lin, off, box, out):
    """Trilinear, one point at a time, cval 0 outside (the chunks used lie inside)."""
    s0, s1, s2 = out.shape
    st0, st1 = x.shape[1] * x.shape[2], x.shape[2]
    flat = x.ravel()
    n0, n1, n2 = x.shape[0] - 1, x.shape[1] - 1, x.shape[2] - 1
    for i in range(s0):
        for j in range(s1):
            h0, h1, h2 = row_start(lin, off, float(box[0] + i), float(box[1] + j))
            for k in range(s2):
                g2 = float(box[2] + k)
                c0, c1, c2 = h0 + g2 * lin[0, 2], h1 + g2 * lin[1, 2], h2 + g2 * lin[2, 2]
                f0, f1, f2 = math.floor(c0), math.floor(c1), math.floor(c2)
                if f0 < 0 or f1 < 0 or f2 < 0 or f0 >= n0 or f1 >= n1 or f2 >= n2:
                    out[i, j, k] = 0.0
                    continue
                wa0 = 1.0 - (c0 - f0)
                wa1 = 1.0 - wa0
                wb0 = 1.0 - (c1 - f1)
                wb1 = 1.0 - wb0
                wc0 = 1.0 - (c2 - f2)
                wc1 = 1.0 - wc0
                p = np.uint64(f0 * st0 + f1 * st1 + f2)
                t = 0.0
                t += float(flat[p]) * wa0 * wb0 * wc0
                t += float(flat[p + 1]) * wa0 * wb0 * wc1
                t += float(flat[p + st1]) * wa0 * wb1 * wc0
                t += float(flat[p + st1 + 1]) * wa0 * wb1 * wc1
                t += float(flat[p + st0]) * wa1 * wb0 * wc0
                t += float(flat[p + st0 + 1]) * wa1 * wb0 * wc1
                t += float(flat[p + st0 + st1]) * wa1 * wb1 * wc0
                t += float(flat[p + st0 + st1 + 1]) * wa1 * wb1 * wc1
                out[i, j, k] = t


@numba.njit(boundscheck=False, nogil=True, cache=True)
def bare_blocked(x, lin, off, box, out):
    """:func:`bare_scalar` for chunks inside the input, 32 points of a row at a time."""
    s0, s1, s2 = out.shape
    st0, st1 = x.shape[1] * x.shape[2], x.shape[2]
    fst0, fst1 = float(st0), float(st1)
    flat = x.ravel()
    w = np.empty((6, BLOCK))
    v = np.empty((8, BLOCK), dtype=x.dtype)
    f = np.empty(BLOCK)
    for i in range(s0):
        for j in range(s1):
            h0, h1, h2 = row_start(lin, off, float(box[0] + i), float(box[1] + j))
            orow = out[i, j]
            for kb in range(0, s2, BLOCK):
                m = min(BLOCK, s2 - kb)
                for q in range(m):
                    g2 = float(box[2] + kb + q)
                    c0, c1, c2 = h0 + g2 * lin[0, 2], h1 + g2 * lin[1, 2], h2 + g2 * lin[2, 2]
                    f0, f1, f2 = np.floor(c0), np.floor(c1), np.floor(c2)
                    w[0, q] = 1.0 - (c0 - f0)
                    w[1, q] = 1.0 - w[0, q]
                    w[2, q] = 1.0 - (c1 - f1)
                    w[3, q] = 1.0 - w[2, q]
                    w[4, q] = 1.0 - (c2 - f2)
                    w[5, q] = 1.0 - w[4, q]
                    f[q] = f0 * fst0 + f1 * fst1 + f2
                for q in range(m):
                    p = np.uint64(int(f[q]))
                    v[0, q], v[1, q] = flat[p], flat[p + 1]
                    v[2, q], v[3, q] = flat[p + st1], flat[p + st1 + 1]
                    v[4, q], v[5, q] = flat[p + st0], flat[p + st0 + 1]
                    v[6, q], v[7, q] = flat[p + st0 + st1], flat[p + st0 + st1 + 1]
                for q in range(m):
                    wa0, wa1, wb0, wb1, wc0, wc1 = (
                        w[0, q],
                        w[1, q],
                        w[2, q],
                        w[3, q],
                        w[4, q],
                        w[5, q],
                    )
                    t = 0.0
                    t += float(v[0, q]) * wa0 * wb0 * wc0
                    t += float(v[1, q]) * wa0 * wb0 * wc1
                    t += float(v[2, q]) * wa0 * wb1 * wc0
                    t += float(v[3, q]) * wa0 * wb1 * wc1
                    t += float(v[4, q]) * wa1 * wb0 * wc0
                    t += float(v[5, q]) * wa1 * wb0 * wc1
                    t += float(v[6, q]) * wa1 * wb1 * wc0
                    t += float(v[7, q]) * wa1 * wb1 * wc1
                    orow[kb + q] = t


def kernel_calls(x, lin, off):
    """The compiled kernel's arguments for every output chunk of the job (recorded from
    one compute of the ``cpu`` backend), by chunk start. Replaying them later is sound
    here because a numpy input's windows are views of it, not reused scratch; the check
    against the bare kernels, computed from the input itself, would catch it otherwise."""
    calls = {}
    original = kernels_interp._KERNEL

    def record(*args):
        calls[tuple(int(v) for v in args[KERNEL_ARGS.index("ostart")])] = args
        return original(*args)

    kernels_interp._KERNEL = record
    try:
        arr = tf.lazy(x, chunks=CHUNK).to_dask()
        res = tnd.affine_transform(arr, lin, off, output_chunks=CHUNK, order=1, mode="constant")
        res.compute(scheduler="synchronous")
    finally:
        kernels_interp._KERNEL = original
    return calls


def inside(box, lin, off, n):
    """Whether every point of the chunk at ``box`` has its 8 taps inside the input."""
    idx = [np.arange(b, b + CHUNK, dtype=np.float64) for b in box]
    o = np.meshgrid(*idx, indexing="ij", sparse=True)
    ok = True
    for h in range(3):
        c = off[h] + o[0] * lin[h, 0] + o[1] * lin[h, 1] + o[2] * lin[h, 2]
        ok &= bool(c.min() >= 0 and c.max() < n - 1)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--chunks", type=int, default=4, help="interior chunks to time")
    args = ap.parse_args()
    n = args.size
    x = smooth_volume(n)
    lin, off = the_map(n)
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")
    calls = kernel_calls(x, lin, off)
    boxes = [b for b in sorted(calls) if inside(b, lin, off, n)][: args.chunks]
    per_point = {"transfuse kernel": [], "bare scalar": [], "bare blocked": []}
    for box in boxes:
        call = calls[box]
        out = call[KERNEL_ARGS.index("out")]
        call[KERNEL_ARGS.index("status")][0] = 0
        kernels_interp._KERNEL(*call)
        want = out.copy()
        bx = np.asarray(box, dtype=np.int64)
        mine = {name: np.empty_like(want) for name in ("bare scalar", "bare blocked")}
        bare_scalar(x, lin, off, bx, mine["bare scalar"])
        bare_blocked(x, lin, off, bx, mine["bare blocked"])
        for name, got in mine.items():
            if not np.array_equal(got, want):
                raise SystemExit(f"{name} differs from the transfuse kernel at chunk {box}")
        runs = {
            "transfuse kernel": lambda call=call: kernels_interp._KERNEL(*call),
            "bare scalar": lambda bx=bx, o=mine["bare scalar"]: bare_scalar(x, lin, off, bx, o),
            "bare blocked": lambda bx=bx, o=mine["bare blocked"]: bare_blocked(x, lin, off, bx, o),
        }
        times = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        for name in runs:
            per_point[name].append(statistics.median(times[name]) / CHUNK**3 * 1e9)
    print(
        f"order 1, {len(boxes)} interior chunks of {CHUNK}^3, one thread, warm; medians of "
        f"{args.repeat} interleaved runs (bare kernels equal to transfuse bit for bit):"
    )
    base = statistics.median(per_point["bare scalar"])
    for name, values in per_point.items():
        mid = statistics.median(values)
        print(f"  {name:18s} {mid:6.1f} ns/point  ({mid / base:.2f}x bare scalar)")
    try:
        import affiners
    except ImportError:
        print("affine-rs: not installed (pip install affine-rs, or the bench extra)")
    else:
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            affiners.affine_transform(x, lin, off, cval=0.0, order=1)
            ts.append(time.perf_counter() - t0)
        threads = os.cpu_count()
        cost = min(ts) * threads / n**3 * 1e9
        print(
            f"  affine-rs, whole volume on its {threads} threads: {cost:.1f} ns/point per "
            "thread (best of 3; float32 SIMD, not bit-exact; cold caches)"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
