"""Hypothesis profiles for every property test.

``ci`` (the default) keeps the whole suite to a couple of minutes on a 2-core machine and
draws the same examples every run; ``large`` runs thousands of examples per property of the
scipy parity suite (select it with the environment variable ``TRANSFUSE_HYPOTHESIS=large``;
expect 10-20 minutes).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
