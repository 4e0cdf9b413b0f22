"""Reading and writing zarr chunks: zarr's own against transfuse's
(``transfuse.io.zarr_chunks.ZarrChunks`` and ``transfuse.io.zarr_writes.ZarrChunkWriter``).

A generated float32 zarr v3 array (zstd, the default codecs; uniform noise, so every chunk
costs its compression in full) is read chunk by chunk, every chunk once per round, by
``zarr.Array.__getitem__`` and by ``ZarrChunks.__getitem__``, alternating; then written,
the same chunks in the same rounds, by ``zarr.Array.__setitem__`` and by
``ZarrChunkWriter.__setitem__`` (into two arrays made alike). Each malloc setting runs in
a fresh process: glibc's default, and the ``MALLOC_TRIM_THRESHOLD_=65536`` that dask's
nanny sets for its workers. Prints the median over rounds of wall, user and system
milliseconds and page faults per chunk (the first round, which warms the page cache, is
not counted), and checks that both readers return the same samples and both writers
leave the same files, byte for byte.

Usage::

    python benchmarks/bench_zarr_chunks.py              # 32 chunks of 128**3, 5 rounds
    python benchmarks/bench_zarr_chunks.py --chunk 64 --rounds 9
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


def _timed(actions: dict, boxes, rounds: int) -> dict:
    """Median per-box wall, user, system ms and page faults of each action over rounds
    (the first round not counted), the actions alternating round by round."""
    per = {name: [] for name in actions}
    for r in range(rounds + 1):
        for name, act in actions.items():
            before = _usage()
            for box in boxes:
                act(box)
            spent = (_usage() - before) / len(boxes)
            if r:
                per[name].append(spent)
    out = {}
    for name, rows in per.items():
        med = np.median(np.array(rows), axis=0)
        out[name] = {
            "wall_ms": 1e3 * med[0],
            "user_ms": 1e3 * med[1],
            "sys_ms": 1e3 * med[2],
            "faults": med[3],
        }
    return out


def measure_writes(path: str, rounds: int) -> dict:
    import zarr

    from transfuse.io.zarr_writes import ZarrChunkWriter

    source = zarr.open_array(path, mode="r")
    folder = os.path.dirname(path)
    targets = {}
    for name in ("zarr", "transfuse"):
        out = os.path.join(folder, f"written-by-{name}.zarr")
        shutil.rmtree(out, ignore_errors=True)
        zarr.create_array(out, shape=source.shape, chunks=source.chunks, dtype=source.dtype)
        targets[name] = out
    chunk = source.chunks[0]
    boxes = [(slice(i, i + chunk),) for i in range(0, source.shape[0], chunk)]
    samples = {b[0].start: source[b] for b in boxes}
    z = zarr.open_array(targets["zarr"], mode="r+")
    writer = ZarrChunkWriter(targets["transfuse"])

    def by_zarr(box):
        z[box] = samples[box[0].start]

    def by_transfuse(box):
        writer[box] = samples[box[0].start]

    out = _timed({"zarr": by_zarr, "transfuse": by_transfuse}, boxes, rounds)
    files = []
    for target in targets.values():
        chunks = os.path.join(target, "c")
        files.append(
            {
                os.path.relpath(os.path.join(d, f), chunks): open(os.path.join(d, f), "rb").read()
                for d, _, names in os.walk(chunks)
                for f in names
            }
        )
    out["same"] = files[0] == files[1]
    return out


def measure(path: str, rounds: int) -> dict:
    import zarr

    from transfuse.io.zarr_chunks import ZarrChunks

    z = zarr.open_array(path, mode="r")
    reader = ZarrChunks(path)
    chunk = z.chunks[0]
    boxes = [(slice(i, i + chunk),) for i in range(0, z.shape[0], chunk)]
    out = _timed({"zarr": z.__getitem__, "transfuse": reader.__getitem__}, boxes, rounds)
    out["same"] = all(np.array_equal(z[b], reader[b]) for b in boxes)
    return {"reads": out, "writes": measure_writes(path, rounds)}


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
    work = tempfile.mkdtemp(prefix="transfuse-zarr-chunks-")
    try:
        path = os.path.join(work, "a.zarr")
        make_array(path, args.chunk, args.count)
        print(
            f"{args.count} chunks of {args.chunk}^3 float32 (zstd), median of {args.rounds} "
            f"rounds, load average {os.getloadavg()[0]:.2f}"
        )
        head = f"{'malloc':<24} {'':<7} {'by':<10} {'wall ms':>8} {'user ms':>8} {'sys ms':>7}"
        print(f"{head} {'faults':>7}")
        rows = []
        for label, extra in (
            ("glibc default", {}),
            ("MALLOC_TRIM_THRESHOLD_", {"MALLOC_TRIM_THRESHOLD_": "65536"}),
        ):
            env = {**os.environ, **extra}
            cmd = [sys.executable, __file__, "--measure", path, "--rounds", str(args.rounds)]
            res = json.loads(
                subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            )
            for kind in ("reads", "writes"):
                rows.append((label, kind, res[kind]))
        for label, kind, res in rows:
            for name in ("zarr", "transfuse"):
                r = res[name]
                print(
                    f"{label:<24} {kind:<7} {name:<10} {r['wall_ms']:8.2f} {r['user_ms']:8.2f} "
                    f"{r['sys_ms']:7.2f} {r['faults']:7.0f}"
                )
            ratio = res["zarr"]["wall_ms"] / res["transfuse"]["wall_ms"]
            same = "same samples" if kind == "reads" else "same files"
            print(f"{'':<24} {kind:<7} {'ratio':<10} {ratio:7.2f}x  ({same}: {res['same']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
