"""Issue 12 start-up: a fresh Python process that imports transfuse and rotates a 64³
float32 volume, against one that imports scipy.ndimage and does the same, side by side.

Each contestant runs ``--repeat`` times in its own fresh process (wall time of the whole
process, interpreter start included); the first transfuse process may compile the kernel
(numba's on-disk cache then holds it), so the figures are the medians of the runs after a
warm-up process. Then a profile of where a fresh transfuse process spends its time: the
imports (``python -X importtime``, self time summed per top-level package) and the first
and second computes.

Usage: python benchmarks/bench_startup.py [--repeat 5] [--orders 1,3]
"""

from __future__ import annotations

import argparse
import os
import re
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
import time
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
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{t3 - t2:.3f}} {{t4 - t3:.3f}}")
"""


def fresh(source: str, args=()) -> float:
    """Wall time of one fresh interpreter running ``source``."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args, "-c", source], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return elapsed


def fresh_process_times(order: int = 1, repeat: int = 5) -> dict[str, float]:
    """Median wall time (s) of a fresh process per contestant, after one warm-up each."""
    sources = {
        "scipy.ndimage": JOB + SCIPY.format(order=order),
        "transfuse (default backend)": JOB + TRANSFUSE.format(order=order, ex=None),
        "transfuse (scipy backend)": JOB + TRANSFUSE.format(order=order, ex="scipy"),
    }
    for src in sources.values():
        fresh(src)  # warm-up: numba's disk cache, the OS file cache
    times = {name: [] for name in sources}
    for _ in range(repeat):  # interleaved: load changes hit every contestant alike
        for name, src in sources.items():
            times[name].append(fresh(src))
    return {name: statistics.median(v) for name, v in times.items()}


def startup_line(order: int = 1, repeat: int = 5) -> str:
    """One line: the fresh-process times and transfuse's ratio to scipy."""
    t = fresh_process_times(order, repeat)
    base = t["scipy.ndimage"]
    parts = [f"{name} {v:.2f} s ({v / base:.1f}x)" for name, v in t.items()]
    return f"fresh process, rotate 64^3 order {order}: " + "; ".join(parts)


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
    print(
        "\nprofile of one fresh transfuse process (order 1): import / build / first compute / "
        "second compute (s):",
        subprocess.run(
            [sys.executable, "-c", PROFILE.format(order=1)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
    )
    print("import transfuse, self time per top-level package (s):")
    for name, sec in import_profile():
        print(f"  {name:14s} {sec:.3f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
