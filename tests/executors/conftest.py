"""Hypothesis profiles for the executor property suites.

``ci`` (the default) keeps ``tests/executors`` well under four minutes on a 2-core machine;
``large`` runs thousands of examples per property (select it with the environment variable
``TRANSFUSE_HYPOTHESIS=large``; expect 10-20 minutes).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,  # dask start-up and first-call costs make per-example timing noisy
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("large", max_examples=2000, **_COMMON)
settings.register_profile("dev", max_examples=10, **_COMMON)

settings.load_profile(os.environ.get("TRANSFUSE_HYPOTHESIS", "ci"))
