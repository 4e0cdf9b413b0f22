"""Device check of the ``"gpu"`` backend (issue 13), under 5 minutes on one GPU:

1. runs ``tests/executors/test_gpu.py`` on the device (``TRANSFUSE_TEST_REAL_GPU=1``: cupy
   arrays, compiled kernels, no simulator);
2. times a rotation + scaling of a ``--size``³ float32 volume (default 512) at orders 1 and 3:
   ``cupyx.scipy.ndimage.affine_transform`` on the whole volume, the transfuse ``"gpu"``
   backend with chunks ``--chunk``³ (default 256) on the device-resident volume, and the
   CPU executor (``"cpu"``, every host core, on a ``--cpu-size``³ volume: same work per
   voxel, less of it);
3. a 3-step chain (rotate, zoom, shift) fused into one resample, against cupyx applying
   the three steps one after the other;
4. an affine @ displacement-field chain, against cupyx ``map_coordinates`` given the
   coordinate array (its construction not timed);
5. an out-of-core run equivalent to ``--ooc``³ (default 2048): a host (numpy) volume
   streamed to the device chunk by chunk, results copied back chunk by chunk.

Prints medians of ``--repeat`` runs, Gvoxel/s, the fraction of the device's memory
bandwidth (measured: a device-to-device copy) and of the host-to-device bandwidth
(measured: a copy of a numpy array), ratios, and the peak device memory of each run
(cupy's memory pool, emptied before each run). The in-device runs hold the whole input
and output volumes (as cupyx does); the out-of-core run shows the bounded footprint
(``transfuse.gpu.chunks_in_flight`` chunks' windows, coefficients and outputs).
``--json PATH`` writes the figures.

``--simulate`` runs the same logic on tiny arrays with numba-cuda's simulator and
scipy.ndimage in place of cupyx (what CI runs: ``tests/test_gpu_check.py``); its timings
mean nothing.

Usage: python benchmarks/gpu_check.py [--size 512] [--chunk 256] [--repeat 3] [--json F]
       python benchmarks/gpu_check.py --simulate
On the lent device machine: see benchmarks/gpu_device_run.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Env:
    """What differs between the device and the simulated check: the array module, the
    whole-array contestant, synchronisation and the memory pool."""

    def __init__(self, simulate: bool):
        self.simulate = simulate
        if simulate:
            os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
            import scipy.ndimage as ndx

            from transfuse.executors import gpu_device

            self.xp = np
            self.ndx = ndx
            self.device = gpu_device.HostDevice()
            self.name = "simulator (numba-cuda CUDASIM, host stand-in)"
        else:
            import cupy
            import cupyx.scipy.ndimage as ndx

            from transfuse.executors import gpu_device

            self.xp = cupy
            self.ndx = ndx
            self.device = gpu_device.select_device("cupy")
            props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
            name = props["name"]
            self.name = name.decode() if isinstance(name, bytes) else str(name)
        from transfuse.executors.gpu import GPUExecutor

        self.executor = GPUExecutor(self.device)

    def sync(self):
        self.device.synchronize()

    def reset_pool(self):
        if not self.simulate:
            self.sync()
            self.xp.get_default_memory_pool().free_all_blocks()

    def pool_bytes(self):
        """Bytes cupy's pool holds (freed blocks stay in it: the run's peak, near enough)."""
        if self.simulate:
            return None
        return int(self.xp.get_default_memory_pool().total_bytes())

    def to_host(self, a):
        return self.device.to_host(a)


def run_tests(env, args) -> dict:
    if args.simulate or args.skip_tests:
        return {"tests": "skipped (" + ("simulate" if args.simulate else "--skip-tests") + ")"}
    environment = dict(os.environ, TRANSFUSE_TEST_REAL_GPU="1")
    environment.pop("NUMBA_ENABLE_CUDASIM", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    cmd += ["tests/executors/test_gpu.py", "-o", "addopts=--import-mode=importlib"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=environment, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    print("\n".join(tail))
    return {
        "tests_rc": proc.returncode,
        "tests_tail": tail[-1] if tail else "",
        "tests_s": round(time.perf_counter() - t0, 1),
    }


def smooth_volume(n: int) -> np.ndarray:
    g = np.linspace(0, 1, n, dtype=np.float32)
    z, y, x = np.meshgrid(g, g, g, indexing="ij", sparse=True)
    vol = np.sin(2 * np.pi * z) * np.cos(3 * np.pi * y) + 0.5 * np.cos(5 * np.pi * x) * z
    return np.ascontiguousarray(vol, dtype=np.float32)


def the_map(n: int):
    import transfuse as tf

    c = ((n - 1) / 2,) * 3
    t = tf.Rotate(20, axes=(0, 1), center=c) @ tf.Rotate(-10, axes=(1, 2), center=c)
    s = tf.Translate(c) @ tf.Scale((1 / 1.05,) * 3) @ tf.Translate(tuple(-v for v in c))
    m = (t @ s).matrix()
    return m[:3, :3].copy(), m[:3, 3].copy()


def timed(env, fn, repeat):
    """Median seconds of ``repeat`` runs (after one warm-up run, which compiles kernels),
    the last result and the peak pool bytes of one run."""
    fn()
    env.sync()
    env.reset_pool()
    times, out = [], None
    for _ in range(repeat):
        out = None  # the previous result back to the pool: the peak is one run's
        env.sync()
        t0 = time.perf_counter()
        out = fn()
        env.sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out, env.pool_bytes()


def bandwidths(env, args) -> dict:
    """Measured device-to-device and host-to-device copy bandwidths (bytes/s)."""
    nbytes = 2**30 if not args.simulate else 2**20
    host = np.ones(nbytes // 4, dtype=np.float32)
    dev = env.device.to_device(host)
    env.sync()
    t_h2d, _, _ = timed(env, lambda: env.device.to_device(host), 3)
    t_d2d, _, _ = timed(env, lambda: dev.copy(), 3)
    return {"d2d_bytes_per_s": 2 * nbytes / t_d2d, "h2d_bytes_per_s": nbytes / t_h2d}


def _gvox(nvox, seconds):
    return nvox / seconds / 1e9


def row(results, label, seconds, nvox, bw=None, peak=None, extra=""):
    gv = _gvox(nvox, seconds)
    frac = "" if bw is None else f"{8 * nvox / seconds / bw:6.1%}"
    pk = "" if peak is None else f"{peak / 2**30:7.2f} GiB"
    print(f"  {label:<44s} {seconds * 1e3:9.1f} ms {gv:9.3f} Gvox/s {frac:>7s} {pk:>11s} {extra}")
    results[label] = {"median_s": seconds, "gvox_s": gv, "peak_bytes": peak}
    return gv


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--cpu-size", type=int, default=256)
    p.add_argument("--ooc", type=int, default=2048, help="edge of the out-of-core equivalent")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--orders", default="1,3")
    p.add_argument("--simulate", action="store_true", help="tiny arrays, numba-cuda simulator")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.simulate:
        args.size, args.chunk, args.cpu_size, args.ooc, args.repeat = 8, 4, 8, 16, 1
        args.orders = "1,3"
    env = Env(args.simulate)

    import dask
    import dask.array as da

    import transfuse as tf

    results: dict = {"device": env.name, "python": platform.python_version(), "args": vars(args)}
    results.update(run_tests(env, args))
    bw = bandwidths(env, args)
    results.update(bw)
    print(
        f"device: {env.name}; copies: device {bw['d2d_bytes_per_s'] / 1e9:.0f} GB/s, "
        f"host->device {bw['h2d_bytes_per_s'] / 1e9:.1f} GB/s "
        "(bandwidth fractions below: 8 bytes per output voxel against the device copy)"
    )
    n, ch = args.size, args.chunk
    nvox = n**3
    lin, off = the_map(n)
    host_vol = smooth_volume(n)
    vol = env.device.to_device(host_vol)
    ndx, gpu = env.ndx, env.executor
    dbw = bw["d2d_bytes_per_s"]
    orders = [int(o) for o in args.orders.split(",")]

    for order in orders:
        print(f"affine {n}^3 float32, order {order}:")
        t_cx, ref, pk_cx = timed(
            env,
            lambda order=order: ndx.affine_transform(vol, lin, off, order=order, mode="constant"),
            args.repeat,
        )
        row(results, f"cupyx whole volume, order {order}", t_cx, nvox, dbw, pk_cx)
        dvol = da.from_array(vol, chunks=ch, asarray=False)
        lazy = tf.lazy(dvol).affine_transform(lin, off, order=order, mode="constant")
        t_tf, got, pk_tf = timed(env, lambda lazy=lazy: lazy.compute(executor=gpu), args.repeat)
        err = float(np.abs(env.to_host(got).astype(np.float64) - env.to_host(ref)).max())
        row(
            results,
            f"transfuse gpu chunks {ch}^3, order {order}",
            t_tf,
            nvox,
            dbw,
            pk_tf,
            f"x{t_cx / t_tf:.2f} vs cupyx, max diff {err:.2g}",
        )
        results[f"transfuse gpu chunks {ch}^3, order {order}"]["max_diff"] = err
        cn = args.cpu_size
        clin, coff = the_map(cn)
        cvol = smooth_volume(cn)
        clazy = tf.lazy(cvol, chunks=min(64, cn)).affine_transform(clin, coff, order=order)
        with dask.config.set(scheduler="threads"):
            t_cpu, _, _ = timed(env, lambda clazy=clazy: clazy.compute(executor="cpu"), 1)
        cpu_gv = _gvox(cn**3, t_cpu)
        cores = os.cpu_count() or 1
        two_core = cpu_gv * min(2, cores) / cores  # the 2-core-class host, pro rata
        gpu_gv = _gvox(nvox, t_tf)
        label = f"cpu executor {cn}^3, {cores} threads"
        print(
            f"  {label:<44s} {t_cpu * 1e3:9.1f} ms {cpu_gv:9.3f} Gvox/s   gpu/cpu "
            f"x{gpu_gv / cpu_gv:.0f} (x{gpu_gv / two_core:.0f} against 2 cores pro rata)"
        )
        results[f"ratio gpu/cpu-2-cores, order {order}"] = gpu_gv / two_core
        results[f"cpu executor, order {order}"] = {
            "median_s": t_cpu,
            "gvox_s": cpu_gv,
            "threads": os.cpu_count(),
        }
        results[f"ratio gpu/cupyx, order {order}"] = t_cx / t_tf
        results[f"ratio gpu/cpu, order {order}"] = _gvox(nvox, t_tf) / cpu_gv

    print(f"3-step chain {n}^3 float32, order 1 (rotate, shift, rotate):")
    dvol = da.from_array(vol, chunks=ch, asarray=False)
    step = (1.5, -2.25, 0.75)
    chain = (
        tf.lazy(dvol)
        .rotate(15, axes=(1, 2), reshape=False, order=1)
        .shift(step, order=1)
        .rotate(-8, axes=(0, 1), reshape=False, order=1)
    )
    assert len(chain.plan().passes) == 1  # fused into one resample

    def cupyx_chain():
        a = ndx.rotate(vol, 15, axes=(1, 2), reshape=False, order=1)
        a = ndx.shift(a, step, order=1)
        return ndx.rotate(a, -8, axes=(0, 1), reshape=False, order=1)

    t_c3, _, pk_c3 = timed(env, cupyx_chain, args.repeat)
    row(results, "cupyx 3 steps one by one", t_c3, nvox, dbw, pk_c3)
    t_t3, _, pk_t3 = timed(env, lambda: chain.compute(executor=gpu), args.repeat)
    row(results, "transfuse gpu 3 steps fused", t_t3, nvox, dbw, pk_t3, f"x{t_c3 / t_t3:.2f}")

    print(f"affine @ displacement field {n}^3 float32 (field order 3 on a coarse grid), order 1:")
    rng = np.random.default_rng(0)
    g = max(4, n // 32)
    u = 2.0 * rng.standard_normal((3, g, g, g))
    field = tf.DisplacementField(u, spacing=(n - 1) / (g - 1), order=3, mode="nearest")
    centre = ((n - 1) / 2,) * 3
    warped = tf.lazy(dvol).transform(tf.Rotate(10, axes=(1, 2), center=centre) @ field, order=1)
    t_tw, got, pk_tw = timed(env, lambda: warped.compute(executor=gpu), args.repeat)
    row(results, "transfuse gpu affine @ field", t_tw, nvox, dbw, pk_tw)
    # the whole-array contestant is given the coordinate array (computed on the device by
    # the backend's stage evaluation; not timed)
    from transfuse.executors import gpu_stages

    stages = warped.plan().passes[0].stages
    box = tuple((0, k) for k in warped.shape)
    pts = gpu_stages.coordinates(env.device, stages, box, gpu._sample_field)
    t_cm, ref, pk_cm = timed(
        env, lambda pts=pts: ndx.map_coordinates(vol, pts, order=1), args.repeat
    )
    err = float(np.abs(env.to_host(got).astype(np.float64) - env.to_host(ref)).max())
    row(
        results,
        "whole-array map_coordinates (coordinates given)",
        t_cm,
        nvox,
        dbw,
        pk_cm,
        f"transfuse x{t_cm / t_tw:.2f}, max diff {err:.2g}",
    )
    results["transfuse gpu affine @ field"]["max_diff"] = err
    del pts

    m = args.ooc
    reps = max(1, m // n)
    print(
        f"out of core, {m}^3-equivalent float32 from host memory ({reps}^3 tiles of {n}^3), "
        f"chunks {ch}^3, order 1, each output chunk copied back to the host:"
    )
    tiles = da.from_array(host_vol, chunks=ch)
    big = tiles
    for axis in range(3):
        big = da.concatenate([big] * reps, axis=axis)
    blin, boff = the_map(big.shape[0])
    ooc = tf.lazy(big).affine_transform(blin, boff, order=1).to_dask(executor=gpu)
    sums = ooc.map_blocks(
        lambda b: np.asarray(env.to_host(b), dtype=np.float64).sum().reshape((1,) * b.ndim),
        chunks=tuple((1,) * len(c) for c in ooc.chunks),
        dtype=np.float64,
        meta=np.empty((0,) * ooc.ndim),
    )
    env.reset_pool()
    t0 = time.perf_counter()
    total = float(sums.sum().compute(scheduler="threads"))
    t_ooc = time.perf_counter() - t0
    nbig = int(np.prod(big.shape))
    h2d = bw["h2d_bytes_per_s"]
    frac = 4 * nbig / t_ooc / h2d  # input bytes moved per second against the measured copy
    peak = env.pool_bytes()
    row(
        results,
        "transfuse gpu out of core",
        t_ooc,
        nbig,
        None,
        peak,
        f"{frac:.1%} of host->device (sum {total:.4g})",
    )
    results["transfuse gpu out of core"]["h2d_fraction"] = frac
    slots = results.setdefault(
        "chunks_in_flight", dask.config.get("transfuse.gpu.chunks_in_flight", 2)
    )
    chunk_bytes = 4 * ch**3
    print(
        f"  (bound: {slots} chunks in flight; one {ch}^3 float32 chunk is "
        f"{chunk_bytes / 2**30:.3f} GiB)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return results


if __name__ == "__main__":
    main()
