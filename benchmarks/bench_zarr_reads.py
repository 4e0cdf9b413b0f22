"""Reading zarr chunks: zarr's own read against transfuse's reader (``transfuse.io.zarr_chunks``).

A generated float32 zarr v3 array (zstd, the default codecs) is read chunk by chunk, every
chunk once per round, by ``zarr.Array.__getitem__`` and by ``ZarrChunks.__getitem__``,
alternating, in a fresh process per malloc setting: glibc's default, and the
``MALLOC_TRIM_THRESHOLD_=65536`` that dask's nanny sets for its workers. Prints the median
over rounds of wall, user and system milliseconds and page faults per chunk (the files are
in the page cache after the first round, which is not counted), and checks that both
readers return the same samples.

Usage::

    python benchmarks/bench_zarr_reads.py              # 32 chunks of 128**3, 5 rounds
    python benchmarks/bench_zarr_reads.py --chunk 64 --rounds 9
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_array(path: str, chunk: int, count: int) -> None:
    import zarr

    z = zarr.create_array(
        path, shape=(count * chunk, chunk, chunk), chunks=(chunk,) * 3, dtype="f4"
    )
    rng = np.random.default_rng(0)
    for i in range(count):
        z[i * chunk : (i + 1) * chunk] = rng.random((chunk,) * 3, dtype=np.float32)


def _usage():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([time.perf_counter(), u.ru_utime, u.ru_stime, u.ru_minflt], dtype=float)


def measure(path: str, rounds: int) -> dict:
    import zarr

    from transfuse.io.zarr_chunks import ZarrChunks

    z = zarr.open_array(path, mode="r")
    reader = ZarrChunks(path)
    chunk = z.chunks[0]
    boxes = [(slice(i, i + chunk),) for i in range(0, z.shape[0], chunk)]
    readers = {"zarr": z.__getitem__, "transfuse": reader.__getitem__}
    per = {name: [] for name in readers}
    for r in range(rounds + 1):
        for name, read in readers.items():
            before = _usage()
            for box in boxes:
                read(box)
            spent = (_usage() - before) / len(boxes)
            if r:  # the first round warms the page cache
                per[name].append(spent)
    same = all(np.array_equal(z[b], reader[b]) for b in boxes)
    out = {"same": same, "chunks": len(boxes)}
    for name, rows in per.items():
        med = np.median(np.array(rows), axis=0)
        out[name] = {
            "wall_ms": 1e3 * med[0],
            "user_ms": 1e3 * med[1],
            "sys_ms": 1e3 * med[2],
            "faults": med[3],
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--count", type=int, default=32, help="chunks in the array")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.rounds)))
        return 0
    work = tempfile.mkdtemp(prefix="transfuse-zarr-reads-")
    try:
        path = os.path.join(work, "a.zarr")
        make_array(path, args.chunk, args.count)
        print(
            f"{args.count} chunks of {args.chunk}^3 float32 (zstd), median of {args.rounds} "
            f"rounds, load average {os.getloadavg()[0]:.2f}"
        )
        head = f"{'malloc':<24} {'reader':<10} {'wall ms':>8} {'user ms':>8} {'sys ms':>7}"
        print(f"{head} {'faults':>7}")
        for label, extra in (
            ("glibc default", {}),
            ("MALLOC_TRIM_THRESHOLD_", {"MALLOC_TRIM_THRESHOLD_": "65536"}),
        ):
            env = {**os.environ, **extra}
            cmd = [sys.executable, __file__, "--measure", path, "--rounds", str(args.rounds)]
            res = json.loads(
                subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            )
            for name in ("zarr", "transfuse"):
                r = res[name]
                print(
                    f"{label:<24} {name:<10} {r['wall_ms']:8.2f} {r['user_ms']:8.2f} "
                    f"{r['sys_ms']:7.2f} {r['faults']:7.0f}"
                )
            ratio = res["zarr"]["wall_ms"] / res["transfuse"]["wall_ms"]
            print(f"{'':<24} {'ratio':<10} {ratio:7.2f}x  (same samples: {res['same']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
