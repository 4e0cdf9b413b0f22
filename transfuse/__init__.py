"""transfuse: compose n-dimensional geometric transforms lazily and resample once."""

from .dask_import import import_dask_array

import_dask_array()  # before any module imports dask.array: without xarray and pandas

from .grids import bounding_grid, grid_like
from .io import read_transform, write_transform
from .lazy import LazyImage, lazy, plan
from .multi_image import compute_all, resample
from .planner import MODES, Plan, ResampleOptions
from .planner.options import set_limits
from .points import PointEvaluator as _PointEvaluator
from .transforms import *  # noqa: F403
from .transforms import __all__ as _transforms_all
from .transforms.nonlinear import register_evaluator as _register_evaluator

_register_evaluator(_PointEvaluator())

__version__ = "0.1.0"
__all__ = [
    *_transforms_all,
    "LazyImage",
    "MODES",
    "Pipeline",
    "Plan",
    "RecipeError",
    "ResampleOptions",
    "bounding_grid",
    "compute_all",
    "dumps",
    "grid_like",
    "lazy",
    "loads",
    "plan",
    "CoordinateSystems",
    "read_ome_zarr",
    "read_transform",
    "resample",
    "set_limits",
    "write_ome_zarr",
    "write_transform",
]

_FROM_IO = {"loads", "dumps", "Pipeline", "RecipeError", "from_ngff", "to_ngff"}


_LAZY = {
    "read_ome_zarr": "transfuse.io.ome_zarr",
    "write_ome_zarr": "transfuse.io.ome_zarr",
    "CoordinateSystems": "transfuse.systems",
}


def __getattr__(name):
    if name in _LAZY:  # OME-Zarr (ngff-zarr, zarr) and networkx are imported on first use
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _FROM_IO:  # recipe machinery is imported on first use
        from . import io

        return getattr(io, name)
    raise AttributeError(f"module 'transfuse' has no attribute {name!r}")
