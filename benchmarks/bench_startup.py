"""Issue 12 start-up: a fresh Python process that imports transfuse and rotates a 64³
float32 volume, against one that imports scipy.ndimage and does the same, side by side.

Each contestant runs ``--repeat`` times in its own fresh process (wall time of the whole
process, interpreter start included, and its CPU time, user + system, which a loaded
machine inflates less); the first transfuse process may compile the kernel (numba's
on-disk cache then holds it), so the figures are the medians of the runs after a warm-up
process. The default backend runs a pass this small by the reference while no compiled
kernel is loaded (its cold start, ``transfuse.executors.cold_start``); "kernels from the
start" turns that off, to show what loading numba costs. Then a profile of where a fresh
transfuse process spends its time: the imports (``python -X importtime``, self time summed
per top-level package) and the first and second computes.

Usage: python benchmarks/bench_startup.py [--repeat 5] [--orders 1,3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

JOB = """
import numpy as np
x = np.random.default_rng(0).random((64, 64, 64)).astype(np.float32)
"""
SCIPY = """
import scipy.ndimage as ndi
y = ndi.rotate(x, 20, axes=(0, 1), reshape=False, order={order})
"""
TRANSFUSE = """
import transfuse as tf
y = tf.lazy(x).rotate(20, axes=(0, 1), reshape=False, order={order}).compute(executor={ex!r})
"""
PROFILE = """
import sys, time
t0 = time.perf_counter()
import transfuse as tf
t1 = time.perf_counter()
import numpy as np
x = np.random.default_rng(0).random((64, 64, 64)).astype(np.float32)
img = tf.lazy(x).rotate(20, axes=(0, 1), reshape=False, order={order})
t2 = time.perf_counter()
img.compute()
t3 = time.perf_counter()
img.compute()
t4 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{t3 - t2:.3f}} {{t4 - t3:.3f}}", end=" ")
print("(numba imported)" if "numba" in sys.modules else "(numba not imported)")
"""


#: the default backend with its cold start off: the kernels load in every process
KERNELS_NOW = {"DASK_TRANSFUSE__COLD_START_VOXELS": "0"}


def fresh(source: str, args=(), env=None) -> tuple[float, float]:
    """Wall and CPU time (user + system) of one fresh interpreter running ``source``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args, "-c", source],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def compile_bytecode() -> None:
    """Write the bytecode of transfuse's modules, as ``pip install`` does: where the
    environment sets ``PYTHONDONTWRITEBYTECODE`` (this development machine does) a source
    checkout's modules would otherwise be compiled again in every fresh process, 40-50 ms
    that no installed package pays (scipy's and dask's bytecode came with their wheels)."""
    import compileall

    import transfuse

    compileall.compile_dir(os.path.dirname(transfuse.__file__), quiet=1)


def fresh_process_times(order: int = 1, repeat: int = 5) -> dict[str, tuple[float, float]]:
    """Median wall and CPU time (s) of a fresh process per contestant, after one warm-up
    each (transfuse's bytecode written first: :func:`compile_bytecode`)."""
    compile_bytecode()
    default = JOB + TRANSFUSE.format(order=order, ex=None)
    sources = {
        "scipy.ndimage": (JOB + SCIPY.format(order=order), None),
        "transfuse (default backend)": (default, None),
        "transfuse (scipy backend)": (JOB + TRANSFUSE.format(order=order, ex="scipy"), None),
        "transfuse (default, kernels from the start)": (default, KERNELS_NOW),
    }
    for src, env in sources.values():
        fresh(src, env=env)  # warm-up: numba's disk cache, the OS file cache
    times = {name: [] for name in sources}
    for _ in range(repeat):  # interleaved: load changes hit every contestant alike
        for name, (src, env) in sources.items():
            times[name].append(fresh(src, env=env))
    return {
        name: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for name, v in times.items()
    }


def startup_line(order: int = 1, repeat: int = 5) -> str:
    """Two lines: the fresh-process wall and CPU times, and each one's ratio to scipy's."""
    t = fresh_process_times(order, repeat)
    base_wall, base_cpu = t["scipy.ndimage"]
    wall = "; ".join(f"{name} {w:.2f} s ({w / base_wall:.1f}x)" for name, (w, _) in t.items())
    cpu = "; ".join(f"{name} {c:.2f} s ({c / base_cpu:.1f}x)" for name, (_, c) in t.items())
    return (
        f"fresh process, rotate 64^3 order {order}: {wall}\n"
        f"  cpu time (user + system), same runs: {cpu}"
    )


def import_profile(top: int = 8) -> list[tuple[str, float]]:
    """Self import time (s) summed per top-level package for ``import transfuse``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import transfuse"],
        capture_output=True,
        text=True,
        check=True,
    )
    per: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            root = m[2].split(".")[0]
            per[root] = per.get(root, 0.0) + int(m[1]) / 1e6
    return sorted(per.items(), key=lambda kv: -kv[1])[:top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--orders", default="1,3")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")
    for order in [int(v) for v in args.orders.split(",")]:
        print(startup_line(order, args.repeat))
    for label, env in (("default", None), ("kernels from the start", KERNELS_NOW)):
        print(
            f"\nprofile of one fresh transfuse process (order 1, {label}): import / build / "
            "first compute / second compute (s):",
            subprocess.run(
                [sys.executable, "-c", PROFILE.format(order=1)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **(env or {})},
            ).stdout.strip(),
        )
    print("import transfuse, self time per top-level package (s):")
    for name, sec in import_profile():
        print(f"  {name:14s} {sec:.3f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
