"""Hypothesis profiles for every property test, and fixtures shared by the test modules.

Profiles (select with the environment variable ``TRANSFUSE_HYPOTHESIS``):

* ``ci`` (the default) keeps the whole suite to a couple of minutes on a 2-core machine and
  draws the same examples every run;
* ``large`` runs ten times as many examples per property (expect 10-20 minutes), drawn
  afresh each run;
* ``dev`` a handful of examples per property, for a quick local run.

No test module writes ``max_examples=``: one that needs more or fewer examples uses
``tests.strategies.examples(factor)``, a multiple of the loaded profile's count.

Shared code lives in two modules of the ``tests`` package: ``tests.strategies`` (hypothesis
strategies: shapes, chunkings, interpolation options, matrices, transform nodes) and
``tests.helpers`` (seeded data, :func:`~tests.helpers.assert_parity`, the scipy tolerance).

The long sweeps are marked ``slow``: ``python -m pytest -m "not slow"`` skips them for a
quick local run; CI runs everything.
"""

from __future__ import annotations

import os

# The "gpu" backend's tests (tests/executors/test_gpu.py) run its numba.cuda kernels in
# numba-cuda's simulator, which is switched on only if the variable is set before numba.cuda
# is first imported (nothing else in the suite imports it; numba's CPU jit ignores it).
# TRANSFUSE_TEST_REAL_GPU=1 runs them on a real device (benchmarks/gpu_check.py does).
if os.environ.get("TRANSFUSE_TEST_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import dask  # noqa: E402
import numpy as np  # noqa: E402
import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import stable_seed

# The "cpu" backend runs small passes by the reference until a compiled kernel is loaded
# (transfuse.executors.cold_start): off for the suite, so that every "cpu" test runs the
# kernels it names; tests/test_startup_imports.py checks the cold start in fresh processes.
dask.config.set({"transfuse.cold_start_voxels": 0})

_COMMON = dict(
    deadline=None,  # dask start-up and first-call costs make per-example timing noisy
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# CI draws the same examples every run (a red CI run must be reproducible); the large
# profile explores afresh each time.
settings.register_profile("ci", max_examples=200, derandomize=True, **_COMMON)
settings.register_profile("large", max_examples=2000, **_COMMON)
settings.register_profile("dev", max_examples=10, **_COMMON)

settings.load_profile(os.environ.get("TRANSFUSE_HYPOTHESIS", "ci"))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name (parameters included): the same numbers in
    every run and whichever other tests run, unlike a module-level generator shared by
    the tests of a module."""
    return np.random.default_rng(stable_seed(request.node.name))
