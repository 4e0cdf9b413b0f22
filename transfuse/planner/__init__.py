"""The planner: named stages from an image expression to a physical plan (data only).

``logical -> fused -> physical`` (:mod:`transfuse.planner.plan`); the physical plan's types
are in :mod:`transfuse.planner.physical`. The planner imports neither dask nor
scipy.ndimage: executors (:mod:`transfuse.executors`) run what it describes.
"""

from .options import MODES, ResampleOptions
from .physical import PhysicalPass
from .plan import STAGES, Plan, fuse, logical, lower, plan

__all__ = [
    "MODES",
    "STAGES",
    "PhysicalPass",
    "Plan",
    "ResampleOptions",
    "fuse",
    "logical",
    "lower",
    "plan",
]
