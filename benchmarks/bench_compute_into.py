"""Issue 12: ``LazyImage.compute()`` into one array against the dask array's ``compute()``.

First dask's floor for the output alone (256³ float32 in chunks of 64³, 2 threads): tasks
that only fill their block, (a) returned and concatenated by ``compute()``, (b) written
into views of one preallocated array, (c) into a buffer per thread copied into the view.
Then the same resample computed both ways, interleaved run by run (so that the machine's
noise hits both alike): ``bench_kernels.py``'s rotation at orders 0, 1 and 3 and
``bench_fused_chain.py``'s 3-step chain, each checked equal bit for bit. Best and median
of ``--repeat`` runs, in ms. Last, the peak RSS of a fresh process computing the order-1
rotation once each way (the dask array holds every chunk until it concatenates them).

Usage: python benchmarks/bench_compute_into.py [--size 256] [--chunk 64] [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import dask
import dask.array as da
import dask.threaded
import numpy as np

import transfuse as tf

try:  # run as a script
    from bench_fused_chain import chain
    from bench_kernels import smooth_volume, the_map
except ImportError:  # pragma: no cover - imported as benchmarks.bench_compute_into
    from benchmarks.bench_fused_chain import chain
    from benchmarks.bench_kernels import smooth_volume, the_map


def interleaved(runs: dict, repeat: int) -> dict:
    times = {k: [] for k in runs}
    for _ in range(repeat):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v) * 1e3, statistics.median(v) * 1e3) for k, v in times.items()}


def floor_runs(n: int, c: int, threads: int) -> dict:
    def fill(block):
        out = np.empty(block.shape, np.float32)
        out[...] = 1.0
        return out

    blocks = da.zeros((n,) * 3, chunks=c, dtype=np.float32).map_blocks(fill, dtype=np.float32)
    boxes = [
        (slice(i, i + c), slice(j, j + c), slice(k, k + c))
        for i in range(0, n, c)
        for j in range(0, n, c)
        for k in range(0, n, c)
    ]
    held = threading.local()

    def views(via_buffer: bool):
        dest = np.empty((n,) * 3, np.float32)

        def job(box):
            if via_buffer:
                buf = getattr(held, "buf", None)
                if buf is None:
                    buf = held.buf = np.empty((c,) * 3, np.float32)
                buf[...] = 1.0
                dest[box] = buf
            else:
                dest[box][...] = 1.0

        dsk = {("fill", i): (job, box) for i, box in enumerate(boxes)}
        dask.threaded.get(dsk, list(dsk), num_workers=threads)
        return dest

    return {
        "(a) fresh chunks, concatenated": lambda: blocks.compute(
            scheduler="threads", num_workers=threads
        ),
        "(b) views of one array": lambda: views(False),
        "(c) a buffer per thread, copied": lambda: views(True),
    }


PEAK_JOB = """
import sys
sys.path.insert(0, {here!r})
import numpy as np
import transfuse as tf
from bench_kernels import smooth_volume, the_map
x = smooth_volume({n})
lin, off = the_map({n})
img = tf.lazy(x, chunks={c}).affine_transform(lin, off, order=1, output_chunks={c})
img.compute(scheduler="threads", num_workers={t})  # kernels loaded, buffers held

def status(field):
    with open("/proc/self/status") as f:
        return next(int(v.split()[1]) for v in f if v.startswith(field))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from the current RSS
before = status("VmRSS:")
y = img.{call}(scheduler="threads", num_workers={t})
print(before / 1024, status("VmHWM:") / 1024)
"""


def peak_rss(n: int, c: int, t: int) -> dict:
    """RSS before and peak RSS during one order-1 compute, each way, in a fresh process
    (MiB; Linux: the peak is reset through ``/proc/self/clear_refs``)."""
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for label, call in (("to_dask().compute()", "to_dask().compute"), ("compute()", "compute")):
        src = PEAK_JOB.format(here=here, n=n, c=c, t=t, call=call)
        res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr)
        out[label] = tuple(float(v) for v in res.stdout.split())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    n, c, t = args.size, args.chunk, args.threads
    print(
        f"{os.cpu_count()} cores, {t} threads; {n}^3 float32, chunks {c}^3; best / median of "
        f"{args.repeat} (ms), interleaved; load average {os.getloadavg()[0]:.2f}"
    )
    print("\ndask's floor for the output alone")
    for k, (best, med) in interleaved(floor_runs(n, c, t), args.repeat).items():
        print(f"  {k:36s} {best:7.1f} {med:7.1f}")

    x = smooth_volume(n)
    lin, off = the_map(n)
    jobs = {
        f"rotation, order {k}": lambda k=k: tf.lazy(x, chunks=c).affine_transform(
            lin, off, order=k, mode="constant", output_chunks=c
        )
        for k in (0, 1, 3)
    }

    def chained():
        img = tf.lazy(x, chunks=c)
        for s in chain(n):
            img = img.transform(s, order=1)
        return img

    jobs["3-step chain, order 1"] = chained
    kw = dict(scheduler="threads", num_workers=t)
    print("\nthe resample (build included)      to_dask().compute()   compute()     gain")
    for name, build in jobs.items():
        old = build().to_dask().compute(**kw)  # warm-up: kernels compiled or loaded
        new = build().compute(**kw)
        assert np.array_equal(old, new), name
        res = interleaved(
            {
                "old": lambda b=build: b().to_dask().compute(**kw),
                "new": lambda b=build: b().compute(**kw),
            },
            args.repeat,
        )
        (ob, om), (nb, nm) = res["old"], res["new"]
        print(
            f"  {name:32s} {ob:7.1f} {om:7.1f}   {nb:7.1f} {nm:7.1f}   "
            f"{ob / nb:.2f}x / {om / nm:.2f}x  ({n**3 / nb / 1e3:.1f} Mvox/s best)"
        )
    result_mib = n**3 * 4 / 2**20
    print(f"\nRSS of a fresh process, order 1 (MiB; the result is {result_mib:.0f} MiB)")
    for label, (before, after) in peak_rss(n, c, t).items():
        print(f"  {label:22s} before {before:7.0f}  peak {after:7.0f}  (+{after - before:.0f})")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
