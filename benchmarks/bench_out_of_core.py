"""Out of core, zarr to zarr: a volume larger than the memory the job may use, rotated and
scaled into a zarr output, on the threaded scheduler and on a LocalCluster of 2 processes.

A ``SIZE**3`` float32 zarr volume (default 1024**3 = 4 GiB, chunks 128**3) is generated
chunk by chunk (never held in memory), then each contestant runs in its own subprocess:

* ``threads`` — ``LazyImage.to_zarr(..., scheduler="threads", num_workers=2)``;
* ``distributed`` — the same call with ``scheduler=None`` under a ``distributed.Client`` of
  a LocalCluster of 2 worker processes (1 thread each) with ``memory_limit`` per worker
  (``--worker-memory``: dask spills, pauses and finally restarts a worker above it),
  dask's worker defaults and transfuse's (``transfuse.zarr_reads="auto"``: on a cluster,
  at orders 0-1, each resampling task reads the input chunks it needs from the zarr
  store itself, through its process's cache of decoded chunks: no input-chunk task,
  nothing sent between workers);
* ``distributed-tuned`` — ``distributed`` with the worker's profiler off and glibc's own
  ``malloc`` trim threshold (:data:`TUNED_CONFIG`);
* ``distributed-shared`` — ``distributed`` with ``transfuse.zarr_reads="shared"``: dask's
  task per input chunk, each read once and sent to the workers whose output chunks read it;
* ``threads-direct`` — ``threads`` with ``transfuse.zarr_reads="direct"``;
* ``ngff-zarr`` — ``ngff_zarr.resample`` (ITK-Wasm, ``linear`` / ``b_spline``) of the same
  volume on the same grid, written with ``dask.array.to_zarr`` (threads), when installed.

The transform is ``x -> c + R(30 deg, axes 1-2) S(1/1.1) (x - c)`` about the centre ``c``
(an oblique rotation and a zoom: every output chunk reads 8-18 input chunks), mode
``constant``, output chunks 128**3. This process samples the RSS of every process of each
contestant (psutil, every 50 ms) and reports the largest single process and the largest
sum. It also reports wall time, Mvoxel/s, the CPU seconds the timed run used in all its
processes (the client's, the scheduler's and the workers'; on a machine shared with other
work the CPU a contestant burns is the steadier comparison), the graph (tasks, pickled
bytes: all tasks and the largest one) and, separately, the time to build and submit a
graph of about 10**4 output chunks to the LocalCluster's scheduler (until the scheduler
holds every task).

Outputs of the contestants are compared chunk by chunk on a sample of chunks (threads and
distributed: bit for bit; ngff-zarr: largest difference in the interior, ITK's edge rule
differs from scipy's) and deleted; the volume is deleted at the end unless ``--keep``.

Usage::

    python benchmarks/bench_out_of_core.py                     # 1024**3, orders 1 and 3
    python benchmarks/bench_out_of_core.py --size 256 --orders 1
    python benchmarks/bench_out_of_core.py --size 64 --chunk 32 --submission-chunks 1000
    python benchmarks/bench_out_of_core.py --orders 3 --contestants threads --region-mib 512
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CONTESTANTS = (
    "threads",
    "distributed",
    "distributed-tuned",
    "distributed-shared",
    "threads-direct",
    "ngff-zarr",
)
DEFAULT_CONTESTANTS = (
    "threads",
    "distributed",
    "distributed-shared",
    "distributed-tuned",
    "ngff-zarr",
)

#: ``distributed-tuned``: two worker settings that cost CPU on a busy machine. The
#: worker's statistical profiler samples every thread's stack every 10 ms (measured: about
#: 1.3 s of 7 s of user time per worker on the 512^3 job), and the ``MALLOC_TRIM_THRESHOLD_``
#: the nanny sets for its workers (65536) makes glibc hand every large array back to the
#: system at once, so the next one faults its pages in again (measured: 740k page faults
#: and 8 s of system time against 90k and 4.5 s).
TUNED_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}
ANGLE, ZOOM = 30.0, 1.1


# -- the volume ---------------------------------------------------------------------------------
def make_volume(path: str, n: int, chunk: int, workers: int = 2) -> None:
    """A float32 zarr volume of smooth structure plus noise, written chunk by chunk."""
    import zarr

    z = zarr.create_array(path, shape=(n, n, n), chunks=(chunk,) * 3, dtype="float32")
    axis = np.linspace(0, 6 * np.pi, n, dtype=np.float32)
    starts = [
        (a, b, c)
        for a in range(0, n, chunk)
        for b in range(0, n, chunk)
        for c in range(0, n, chunk)
    ]

    def write(start):
        sl = tuple(slice(s, min(s + chunk, n)) for s in start)
        rng = np.random.default_rng(list(start))
        shape = tuple(s.stop - s.start for s in sl)
        block = rng.random(shape, dtype=np.float32)
        block += (
            np.sin(axis[sl[0]])[:, None, None]
            * np.cos(axis[sl[1]])[None, :, None]
            * np.sin(axis[sl[2]] / 2)[None, None, :]
        )
        z[sl] = block

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, starts))


def transform(n: int):
    import transfuse as tf

    c = (n - 1) / 2
    return (
        tf.Translate((c, c, c))
        @ tf.Rotate(ANGLE, axes=(1, 2))
        @ tf.Scale(1 / ZOOM)
        @ tf.Translate((-c, -c, -c))
    )


def graph_stats(arr) -> dict:
    """Tasks of the graph and their pickled sizes (cloudpickle, as distributed sends them)."""
    try:
        import cloudpickle as pickler
    except ImportError:  # pragma: no cover
        import pickle as pickler
    graph = dict(arr.__dask_graph__())
    sizes = [len(pickler.dumps(v)) for v in graph.values()]
    return {"tasks": len(graph), "pickled_bytes": sum(sizes), "largest_task_bytes": max(sizes)}


# -- contestants (each in its own subprocess) -------------------------------------------------
def cpu_seconds() -> float:
    """User + system CPU seconds this process has used (all its threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_transfuse(args) -> dict:
    import transfuse as tf
    from transfuse.io.arrays import read_image

    source = read_image(args.input)
    n = source.shape[0]
    img = tf.lazy(source).transform(transform(n), order=args.order, output_chunks=args.chunk)

    def built():
        """Seconds to build the graph and its statistics (under the contestant's scheduler:
        ``transfuse.zarr_reads="auto"`` builds the direct-reads graph under a client)."""
        t0 = time.perf_counter()
        arr = img.to_dask()
        return {"build_s": time.perf_counter() - t0, **graph_stats(arr)}

    warm = tf.lazy(np.ones((8, 8, 8), np.float32), chunks=4).transform(
        transform(8), order=args.order
    )
    if args.run.startswith("threads"):
        stats = built()
        warm.compute(scheduler="threads")  # imports and compiled kernels, not timed
        c0, t0 = cpu_seconds(), time.perf_counter()
        img.to_zarr(args.output, scheduler="threads", num_workers=2)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        return {"wall_s": wall, "cpu_s": cpu, **stats}
    import dask
    import distributed

    with (
        dask.config.set(TUNED_CONFIG if args.run == "distributed-tuned" else {}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.worker_memory,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        stats = built()
        # every worker imports transfuse and compiles its kernels first (not timed)
        client.gather([client.compute(warm.to_dask(), workers=[w]) for w in _workers(client)])
        before = client.run(cpu_seconds)
        c0, t0 = cpu_seconds(), time.perf_counter()  # the client's and scheduler's process
        img.to_zarr(args.output, scheduler=None)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        after = client.run(cpu_seconds)
        cpu += sum(after[w] - before[w] for w in before if w in after)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "worker_memory": args.worker_memory,
        **stats,
    }


def _workers(client):
    return sorted(client.scheduler_info()["workers"])


def run_ngff_zarr(args) -> dict:
    import dask
    import dask.array as da
    import ngff_zarr as nz
    from ngff_zarr.v06.zarr_metadata import Affine

    from transfuse.io.arrays import read_image

    source = read_image(args.input)
    n = source.shape[0]
    matrix = np.asarray(transform(n).matrix(3), dtype=float)[:3].tolist()
    kind = "linear" if args.order == 1 else "b_spline"
    small = nz.to_ngff_image(da.ones((8, 8, 8), dtype=np.float32, chunks=4), dims=["z", "y", "x"])
    warm = np.asarray(transform(8).matrix(3), dtype=float)[:3].tolist()
    nz.resample(Affine(affine=warm), small, small, interpolator=kind).data.compute()
    t0 = time.perf_counter()
    image = nz.to_ngff_image(source, dims=["z", "y", "x"])
    out = nz.resample(Affine(affine=matrix), image, image, interpolator=kind).data
    out = out.rechunk(args.chunk)
    build = time.perf_counter() - t0
    stats = graph_stats(out)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        da.to_zarr(out, args.output)
    wall = time.perf_counter() - t0
    return {"build_s": build, "wall_s": wall, "interpolator": kind, **stats}


def run_submission(args) -> dict:
    """Build a graph of about ``--submission-chunks`` output chunks and submit it to a
    LocalCluster: seconds until the scheduler holds every task (then cancel)."""
    import dask
    import distributed

    import transfuse as tf
    from transfuse.io.arrays import read_image

    source = read_image(args.input)
    n = source.shape[0]
    per_axis = round(args.submission_chunks ** (1 / 3))
    chunk = math.ceil(n / per_axis)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.worker_memory,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
        dask.config.set({"transfuse.zarr_reads": args.zarr_reads}),
    ):
        t0 = time.perf_counter()
        arr = tf.lazy(source).transform(transform(n), order=1, output_chunks=chunk).to_dask()
        built = time.perf_counter()
        ntasks = len(arr.__dask_graph__())
        pickle_s, pickled = _pickled_expression(arr)
        t0 += time.perf_counter() - built  # the pickling above is measured on its own
        built = time.perf_counter()
        futures = client.persist(arr)
        sent = time.perf_counter()
        while True:
            held = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            if held >= ntasks * 0.99:  # the store-less graph, less what optimisation fuses
                break
            time.sleep(0.005)
        done = time.perf_counter()
        client.cancel(futures)
    return {
        "zarr_reads": args.zarr_reads,
        "output_chunks": int(np.prod(arr.numblocks)),
        "tasks": ntasks,
        "build_s": built - t0,
        "pickle_s": pickle_s,
        "pickled_graph_bytes": pickled,
        "persist_call_s": sent - built,
        "submitted_s": done - t0,
    }


def _pickled_expression(arr) -> tuple[float, int]:
    """Seconds and bytes of pickling the graph as ``Client.persist`` ships it (the
    collection's expression, pickled whole by distributed's pickler)."""
    from dask.base import collections_to_expr
    from distributed.protocol.pickle import dumps

    t0 = time.perf_counter()
    blob = dumps(collections_to_expr([arr]))
    return time.perf_counter() - t0, len(blob)


# -- the harness ------------------------------------------------------------------------------
class RSSSampler:
    """Peak RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_sum = 0
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.peaks[p.pid] = max(self.peaks.get(p.pid, 0), rss)
            self.peak_sum = max(self.peak_sum, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def contestant(name: str, order: int, src: str, out: str, args, reads=None) -> dict:
    if reads is None:
        reads = {"direct": "direct", "shared": "shared"}.get(name.rsplit("-", 1)[-1], "auto")
    args = argparse.Namespace(**{**vars(args), "zarr_reads": reads})
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = f.name
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--run",
        name,
        "--input",
        src,
        "--output",
        out,
        "--order",
        str(order),
        "--chunk",
        str(args.chunk),
        "--worker-memory",
        args.worker_memory,
        "--submission-chunks",
        str(args.submission_chunks),
        "--prefilter",
        args.prefilter,
        "--zarr-reads",
        args.zarr_reads,
        "--region-mib",
        str(args.region_mib),
        "--result",
        result_path,
    ]
    proc = subprocess.Popen(cmd)
    with RSSSampler(proc.pid) as rss:
        code = proc.wait()
    if code != 0:
        return {"error": f"exit code {code}"}
    with open(result_path) as f:
        result = json.load(f)
    os.unlink(result_path)
    result["peak_process_mib"] = max(rss.peaks.values()) / 2**20
    result["peak_sum_mib"] = rss.peak_sum / 2**20
    result["processes"] = len(rss.peaks)
    return result


def compare(a: str, b: str, chunk: int, n: int, interior: int, count: int = 8) -> float:
    """Largest difference between two zarr outputs over ``count`` sample chunks (inside
    ``interior`` samples from each face)."""
    import zarr

    za, zb = zarr.open_array(a, mode="r"), zarr.open_array(b, mode="r")
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(count):
        start = rng.integers(interior, max(interior + 1, n - interior - chunk), 3)
        sl = tuple(slice(int(s), int(min(s + chunk, n - interior))) for s in start)
        worst = max(worst, float(np.abs(za[sl].astype(float) - zb[sl].astype(float)).max()))
    return worst


def report(results: dict, n: int, args) -> None:
    voxels = n**3
    print(
        f"\nvolume {n}^3 float32 ({voxels * 4 / 2**30:.2f} GiB), chunks {args.chunk}^3, "
        f"worker memory_limit {args.worker_memory}, prefilter {args.prefilter}, "
        f"zarr regions of {args.region_mib:g} MiB, load average {os.getloadavg()[0]:.2f}"
    )
    head = (
        f"{'order':>5} {'contestant':<18} {'wall s':>8} {'Mvox/s':>8} {'peak proc MiB':>14} "
        f"{'peak sum MiB':>13} {'tasks':>7} {'pickled MB':>10} {'largest kB':>10} "
        f"{'vs threads':>10} {'CPU s':>7} {'CPU vs threads':>14}"
    )
    print(head)
    for order, per in results.items():
        base = per.get("threads", {}).get("wall_s")
        base_cpu = per.get("threads", {}).get("cpu_s")
        for name, r in per.items():
            if name.startswith("_"):
                continue
            if "error" in r or "skipped" in r:
                print(f"{order:>5} {name:<18} {r.get('error') or r.get('skipped')}")
                continue
            speed = voxels / r["wall_s"] / 1e6
            ratio = f"{base / r['wall_s']:.2f}x" if base else ""
            cpu_ratio = f"{base_cpu / r['cpu_s']:.2f}x" if base_cpu and r.get("cpu_s") else ""
            print(
                f"{order:>5} {name:<18} {r['wall_s']:8.1f} {speed:8.1f} "
                f"{r['peak_process_mib']:14.0f} {r['peak_sum_mib']:13.0f} {r['tasks']:7d} "
                f"{r['pickled_bytes'] / 1e6:10.2f} {r['largest_task_bytes'] / 1e3:10.1f} "
                f"{ratio:>10} {r.get('cpu_s', 0):7.1f} {cpu_ratio:>14}"
            )
        for key, value in per.get("_compare", {}).items():
            print(f"      {key}: {value}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024, help="volume side (default 1024)")
    p.add_argument("--chunk", type=int, default=128, help="chunk side (default 128)")
    p.add_argument("--orders", type=int, nargs="+", default=[1, 3])
    p.add_argument(
        "--contestants", nargs="+", choices=CONTESTANTS, default=list(DEFAULT_CONTESTANTS)
    )
    p.add_argument("--worker-memory", default="1GiB", help="memory_limit per worker")
    p.add_argument("--submission-chunks", type=int, default=10_000)
    p.add_argument("--no-submission", action="store_true")
    p.add_argument(
        "--submission-reads",
        nargs="+",
        choices=("shared", "direct"),
        default=["shared", "direct"],
        help="transfuse.zarr_reads of the submitted graphs (default: both)",
    )
    p.add_argument(
        "--submission-only", action="store_true", help="only the graph-submission figures"
    )
    p.add_argument(
        "--prefilter",
        choices=("auto", "local", "shared"),
        default="auto",
        help="dask config transfuse.prefilter for orders > 1 (default auto)",
    )
    p.add_argument(
        "--region-mib",
        type=float,
        default=256.0,
        help="transfuse.io.arrays.ZARR_REGION_BYTES in MiB (default 256, the library's)",
    )
    p.add_argument("--workdir", default=tempfile.gettempdir())
    p.add_argument("--keep", action="store_true", help="keep the generated volume")
    p.add_argument("--json", help="also write the figures to this file")
    # the subprocess side
    p.add_argument("--run", choices=(*CONTESTANTS, "submission"), help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    p.add_argument("--order", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--zarr-reads", default="auto", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.region_mib <= 0:
        p.error(f"--region-mib must be positive, got {args.region_mib}")
    if args.run:
        import dask

        from transfuse.io import arrays

        arrays.ZARR_REGION_BYTES = int(args.region_mib * 2**20)

        runner = {"ngff-zarr": run_ngff_zarr, "submission": run_submission}.get(
            args.run, run_transfuse
        )
        config = {"transfuse.prefilter": args.prefilter, "transfuse.zarr_reads": args.zarr_reads}
        with dask.config.set(config):
            result = runner(args)
        with open(args.result, "w") as f:
            json.dump(result, f)
        return 0

    n = args.size
    work = tempfile.mkdtemp(prefix="transfuse-ooc-", dir=args.workdir)
    src = os.path.join(work, "volume.zarr")
    try:
        t0 = time.perf_counter()
        make_volume(src, n, args.chunk)
        print(f"generated {src} in {time.perf_counter() - t0:.1f} s", flush=True)
        results: dict = {}
        for order in [] if args.submission_only else args.orders:
            per: dict = {}
            outs = {}
            for name in args.contestants:
                if name == "ngff-zarr":
                    try:
                        import ngff_zarr  # noqa: F401
                    except ImportError:
                        per[name] = {"skipped": "not installed (pip install ngff-zarr)"}
                        continue
                out = os.path.join(work, f"out-{name}-{order}.zarr")
                print(f"order {order}: {name} ...", flush=True)
                per[name] = contestant(name, order, src, out, args)
                print(f"  {per[name]}", flush=True)
                if "error" not in per[name]:
                    outs[name] = out
            checks = {}
            if "threads" in outs:
                for other in CONTESTANTS[1:]:
                    if other in outs:
                        interior = 4 if other == "ngff-zarr" else 0
                        diff = compare(outs["threads"], outs[other], args.chunk, n, interior)
                        label = "bit for bit" if diff == 0 else f"{diff:.3g}"
                        where = "sample chunks" if not interior else "interior sample chunks"
                        checks[f"threads vs {other}, {where}"] = label
            per["_compare"] = checks
            for out in outs.values():
                shutil.rmtree(out, ignore_errors=True)
            results[order] = per
        if not args.no_submission:
            for reads in args.submission_reads:
                print(f"graph submission, zarr reads {reads} ...", flush=True)
                results[f"_submission_{reads}"] = contestant("submission", 1, src, "", args, reads)
        report({k: v for k, v in results.items() if not str(k).startswith("_")}, n, args)
        subs = [v for k, v in results.items() if str(k).startswith("_submission")]
        if subs:
            print(
                f"\nsubmission, load average {os.getloadavg()[0]:.2f}\n"
                f"{'zarr reads':>10} {'chunks':>7} {'tasks':>7} {'build s':>8} {'pickle s':>9} "
                f"{'pickled MB':>11} {'persist s':>10} {'held after s':>13}"
            )
        for sub in subs:
            if "error" in sub:
                print(f"  {sub['error']}")
                continue
            print(
                f"{sub['zarr_reads']:>10} {sub['output_chunks']:7d} {sub['tasks']:7d} "
                f"{sub['build_s']:8.2f} {sub['pickle_s']:9.2f} "
                f"{sub['pickled_graph_bytes'] / 1e6:11.2f} {sub['persist_call_s']:10.2f} "
                f"{sub['submitted_s']:13.2f}"
            )
        if subs:
            print(
                "(held after: from the start of building until the scheduler holds every "
                "task; the pickling is timed apart and not included)"
            )
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"size": n, "chunk": args.chunk, "results": results}, f, indent=1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
