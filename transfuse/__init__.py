"""transfuse: compose n-dimensional geometric transforms lazily and resample once."""

from .lazy import LazyImage, lazy
from .planner import MODES, Plan, ResampleOptions, plan
from .transforms import *  # noqa: F403
from .transforms import __all__ as _transforms_all

__version__ = "0.1.0"
__all__ = [*_transforms_all, "LazyImage", "MODES", "Plan", "ResampleOptions", "lazy", "plan"]
