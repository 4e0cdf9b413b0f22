"""Reading and writing transforms: JSON recipes, ITK transform files, OME-NGFF.

:func:`read_transform` / :func:`write_transform` choose the format by extension:

* ``.json`` — a transfuse recipe (a transform or a whole pipeline), see ``docs/recipes.md``;
* ``.tfm`` / ``.txt`` — an ITK text transform file, see ``docs/formats.md``.

OME-NGFF ``coordinateTransformations`` are JSON metadata inside a zarr store rather than
files of their own: use :func:`from_ngff` / :func:`to_ngff` on the metadata, and
:mod:`transfuse.io.ome_zarr` (``read_ome_zarr`` / ``write_ome_zarr``) for OME-Zarr images.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..transforms.base import register_recipe_codec

register_recipe_codec(lambda: importlib.import_module("transfuse.io.recipes"))

__all__ = ["read_transform", "write_transform"]

_ITK_SUFFIXES = (".tfm", ".txt")


def _suffix(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", *_ITK_SUFFIXES):
        raise ValueError(
            f"path={str(path)!r}: unknown transform file type {suffix!r} "
            "(use .json for recipes, .tfm or .txt for ITK)"
        )
    return suffix


def _no_grid_for_recipes(spacing, origin, direction, grid, input_grid, space):
    if any(v is not None for v in (spacing, origin, direction, grid, input_grid)):
        raise ValueError(
            "grids (grid=, input_grid=, spacing, origin, direction) are for ITK files, not recipes"
        )
    if space != "index":
        raise ValueError(f"space={space!r}: a recipe is already in index space (space='index')")


def read_transform(
    path,
    spacing=None,
    origin=None,
    direction=None,
    *,
    grid=None,
    input_grid=None,
    space: str = "index",
):
    """Read a transform (or a pipeline recipe) from ``path``, by extension.

    Parameters
    ----------
    path : str or Path
    grid, input_grid : Grid, optional
        For ITK files: the output (fixed) and input (moving) image grids, used to express the
        physical-space transform in index space (default: the unit grid; ``input_grid``
        defaults to ``grid``). See :func:`transfuse.io.itk.read_itk`.
    space : {"index", "physical"}
        For ITK files: ``"physical"`` gives the transform as ITK means it, a pull map on
        physical points in numpy axis order, for ``.resample(..., space="physical")``
        (no grids then). Recipes are index space only.
    spacing, origin, direction : optional
        Deprecated loose grid values in ITK's ``(x, y, z)`` order (use ``grid=``).

    Returns
    -------
    Transform, Pipeline, or list of Transform
        A list for an ITK file that lists several transforms without a composite header.

    Examples
    --------
    >>> import tempfile, pathlib, transfuse
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "shift.json"
    >>> transfuse.write_transform(transfuse.Translate((1.0, 2.0)), path)
    >>> transfuse.read_transform(path)
    Translate(vector=(1, 2))
    """
    suffix = _suffix(path)
    if suffix == ".json":
        _no_grid_for_recipes(spacing, origin, direction, grid, input_grid, space)
        from .recipes import read_recipe

        return read_recipe(path)
    from .itk import read_itk

    return read_itk(path, spacing, origin, direction, grid=grid, input_grid=input_grid, space=space)


def write_transform(
    transform,
    path,
    spacing=None,
    origin=None,
    direction=None,
    *,
    grid=None,
    input_grid=None,
    space: str = "index",
) -> None:
    """Write ``transform`` (or a pipeline recipe) to ``path``, by extension; the converse of
    :func:`read_transform` with the same ``grid``, ``input_grid`` and ``space``."""
    suffix = _suffix(path)
    if suffix == ".json":
        _no_grid_for_recipes(spacing, origin, direction, grid, input_grid, space)
        from .recipes import write_recipe

        write_recipe(transform, path)
        return
    from .itk import write_itk

    write_itk(
        transform, path, spacing, origin, direction, grid=grid, input_grid=input_grid, space=space
    )


def __getattr__(name):
    # the format modules are imported on first use
    if name in ("from_ngff", "to_ngff"):
        from . import ngff

        return getattr(ngff, name)
    if name in ("read_itk", "write_itk"):
        from . import itk

        return getattr(itk, name)
    if name in (
        "loads",
        "dumps",
        "read_recipe",
        "write_recipe",
        "Pipeline",
        "to_dict",
        "from_dict",
    ):
        from . import recipes

        return getattr(recipes, name)
    if name in ("RecipeError", "FormatError"):
        from . import errors

        return getattr(errors, name)
    raise AttributeError(name)
