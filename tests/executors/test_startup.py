"""Start-up of the compiled kernel, each in a fresh Python process: numba's on-disk cache
(also where neither the package nor the home directory can hold it), concurrent first
calls compiling once, and the reference fallback where numba cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from transfuse.executors import kernel_plan

ROOT = Path(__file__).resolve().parents[2]

#: one small order-1 rotation of a float32 volume, checked against scipy bit for bit;
#: prints what the kernel's dispatcher compiled or loaded, as JSON
JOB = """
import numpy as np, scipy.ndimage as ndi, transfuse as tf
x = np.random.default_rng(3).standard_normal((12, 11, 10)).astype(np.float32)
img = tf.lazy(x, chunks=5).rotate(17, axes=(0, 1), reshape=False, order=1, mode="mirror")
ref = ndi.rotate(x, 17, axes=(0, 1), reshape=False, order=1, mode="mirror")
"""

REPORT = """
from transfuse.executors import kernels_interp as K
d = K._KERNEL
print(json.dumps({
    "signatures": len(d.signatures),
    "hits": sum(d._cache_hits.values()),
    "misses": sum(d._cache_misses.values()),
    "loads_per_signature": sorted(
        d._cache_hits[s] + d._cache_misses[s] for s in d.signatures
    ),
}))
"""


def run_python(source: str, env=None, timeout=600) -> str:
    full = dict(os.environ)
    # the kernels run however small the job (no cold start: transfuse.executors.cold_start)
    full["DASK_TRANSFUSE__COLD_START_VOXELS"] = "0"
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


needs_numba = pytest.mark.skipif(not kernel_plan.AVAILABLE, reason="numba is not installed")


@needs_numba
def test_concurrent_first_calls_compile_once_and_agree():
    # 8 threads reach the kernel's first call together in a fresh process: one compile (or
    # one load from the disk cache) per specialisation, and every thread gets scipy's result
    out = run_python(
        "import json, threading\n"
        + JOB
        + """
barrier = threading.Barrier(8)
results = [None] * 8
def work(i):
    barrier.wait()
    results[i] = img.compute(scheduler="synchronous", executor="cpu")
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert all(np.array_equal(r, ref) for r in results)
"""
        + REPORT
    )
    report = json.loads(out.splitlines()[-1])
    assert report["signatures"] == 1
    assert report["loads_per_signature"] == [1]


@needs_numba
def test_warm_up_compiles_what_the_first_chunk_needs():
    out = run_python(
        "import json\n"
        + """
import numpy as np
from transfuse.executors import kernels_interp as K
assert K.warm_up([np.float32]) >= 0.0
"""
        + JOB
        + """
assert np.array_equal(img.compute(executor="cpu"), ref)
"""
        + REPORT
    )
    report = json.loads(out.splitlines()[-1])
    assert report["signatures"] == 1 and report["loads_per_signature"] == [1]


@needs_numba
@pytest.mark.slow
def test_cache_without_a_writable_location(tmp_path):
    # only numba's "user provided" locator and no NUMBA_CACHE_DIR: numba finds nowhere to
    # cache (as with a read-only install and no writable home); the kernel then caches
    # under the temporary directory, and a second process loads it from there
    env = {
        "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator",
        "NUMBA_CACHE_DIR": "",
        "TMPDIR": str(tmp_path),
    }
    check = f"assert K.fallback_cache_dir().startswith({str(tmp_path)!r})\n"
    source = (
        "import json\n"
        + JOB
        + """
assert np.array_equal(img.compute(executor="cpu"), ref)
from transfuse.executors import kernels_interp as K
"""
        + check
        + REPORT
    )
    first = json.loads(run_python(source, env).splitlines()[-1])
    cached = list(tmp_path.glob("transfuse-numba-cache-*/**/*.nbi"))
    assert cached, list(tmp_path.rglob("*"))
    second = json.loads(run_python(source, env).splitlines()[-1])
    assert first["misses"] == 1 and first["hits"] == 0
    assert second["misses"] == 0 and second["hits"] == 1


def test_without_numba_the_reference_runs_and_says_so_once():
    # numba hidden from the import system: the default backend is the reference, warns
    # once (however many backends are made) and explain() says why
    out = run_python(
        """
import sys, warnings
sys.modules["numba"] = None  # "import numba" raises ImportError
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
"""
        + textwrap.indent(textwrap.dedent(JOB), "    ")
        + """
    a = img.compute()
    b = img.compute(executor="cpu")
    text = img.explain("physical", executor="cpu")
assert np.array_equal(a, ref) and np.array_equal(b, ref)
from transfuse.executors.cpu import NO_NUMBA_WARNING
said = [w for w in caught if str(w.message) == NO_NUMBA_WARNING]
assert len(said) == 1 and said[0].category is RuntimeWarning, [str(w.message) for w in caught]
assert "numba is not installed" in text, text
print("ok")
"""
    )
    assert out.strip().endswith("ok")


def test_first_compute_does_not_import_distributed():
    # dask would import distributed (0.5-1 s) just to learn that no client is active
    out = run_python(
        JOB
        + """
import sys
assert np.array_equal(img.compute(), ref)
assert np.array_equal(img.compute(scheduler="threads"), ref)
print("distributed" in sys.modules)
"""
    )
    assert out.split()[-1] == "False"


def test_lazy_compute_runs_on_an_active_distributed_client():
    distributed = pytest.importorskip("distributed")
    import numpy as np

    import transfuse as tf

    x = np.arange(36.0).reshape(6, 6)
    img = tf.lazy(x, chunks=3).shift((0.5, 0), order=1)
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    ) as client:
        got = img.compute()
        seen = client.run_on_scheduler(_task_prefixes)
    assert seen > 0  # the tasks ran on the client's scheduler
    assert np.array_equal(got, img.compute(scheduler="synchronous"))


def _task_prefixes(dask_scheduler=None):
    """How many kinds of task the distributed scheduler has seen (run on the scheduler)."""
    return len(dask_scheduler.task_prefixes)


@needs_numba
def test_the_demo_warm_up_compiles_what_its_pass_runs():
    """After ``warm_up_demo`` the demo's own compute makes no numba specialisation that was
    not made (the interpolation kernel, the chunk's tap tables), so the demo's timing is
    never a first use's compile, and its pass ran compiled."""
    out = run_python(
        """
import json
import numpy as np, scipy.ndimage as ndi, transfuse as tf
from transfuse import demo
from transfuse.executors import kernel_prep, kernels_interp
demo.warm_up_demo()
kernels = {"kernel": kernels_interp._KERNEL, "sources": kernel_prep._SOURCES,
           "tables": kernel_prep._TABLES}
before = {k: len(d.signatures) for k, d in kernels.items()}
calls = []
real = kernels_interp.interpolate
kernels_interp.interpolate = lambda *a, **k: calls.append(1) or real(*a, **k)
x = demo.demo_volume(32)
img = tf.lazy(x, chunks=16)
for step in demo.demo_steps(32):
    img = img.transform(step, order=1)
got = img.compute(scheduler="threads")
steps = demo.demo_steps(32)
ref = ndi.affine_transform(x, (steps[0] @ steps[1] @ steps[2]).matrix(), order=1)
after = {k: len(d.signatures) for k, d in kernels.items()}
print(json.dumps({"before": before, "after": after, "calls": len(calls),
                  "equal": bool(np.array_equal(got, ref))}))
""",
        # the cold start as a user gets it: the warm-up itself turns it off
        env={"DASK_TRANSFUSE__COLD_START_VOXELS": str(2**21)},
    )
    report = json.loads(out.splitlines()[-1])
    assert report["equal"]
    assert report["calls"] > 0  # the compiled kernel ran the chunks, not the reference
    assert report["after"] == report["before"]
    assert min(report["before"].values()) >= 1
