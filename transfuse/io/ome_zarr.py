"""OME-Zarr images in and out: multiscale pyramids with their grids.

Reading (:func:`read_ome_zarr`) takes the store's metadata (OME-NGFF 0.4, 0.5 and 0.6, zarr
v2 or v3), picks one resolution level and returns a grid-aware
:class:`~transfuse.LazyImage` over a dask array read chunk by chunk from the store (never
loaded at once). The metadata is read by transfuse itself with the size limits and the
confinement rules of :mod:`transfuse.io.safe_files` (dataset paths stay inside the store) and
converted with :mod:`transfuse.io.ngff`; malformed metadata is a
:class:`~transfuse.io.errors.FormatError`.

Writing (:func:`write_ome_zarr`) uses **ngff-zarr** for the container (see
``docs/formats.md`` for why): the image's grid becomes the datasets' ``scale`` and
``translation`` (and, in 0.6, an ``affine`` to a second coordinate system for a rotated
grid), axes carry types and units, and an optional pyramid is computed lazily; the data is
written chunk by chunk from the dask graph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..transforms import Grid
from .errors import FormatError
from .ngff import grid_from_ngff, ngff_unit
from .recipe_limits import MAX_TEXT_BYTES
from .safe_files import SideFileError, quote, read_limited, side_file

__all__ = [
    "read_ome_zarr",
    "read_ome_zarr_grid",
    "read_ome_zarr_scene",
    "write_ome_zarr",
    "VERSIONS",
]

#: Metadata versions written (0.4: zarr v2; 0.5 and 0.6: zarr v3).
VERSIONS = ("0.4", "0.5", "0.6")
_SPACE = "space"


# -- reading metadata --------------------------------------------------------------------------
def _attributes(store: Path) -> dict:
    """The group attributes of a zarr v3 (``zarr.json``) or v2 (``.zattrs``) store."""
    for name, v3 in (("zarr.json", True), (".zattrs", False)):
        try:
            path = side_file(store, name)
        except SideFileError:
            continue
        try:
            raw = read_limited(path, MAX_TEXT_BYTES, label=name)
        except SideFileError as exc:
            raise FormatError(f"{store}: {exc}") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{store}/{name}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise FormatError(f"{store}/{name}: must hold a JSON object")
        attrs = doc.get("attributes", {}) if v3 else doc
        if not isinstance(attrs, dict):
            raise FormatError(f"{store}/{name}: attributes must be an object")
        return attrs
    raise FormatError(f"{store}: not a zarr group (no zarr.json or .zattrs)")


def _multiscale(attrs: dict, store) -> tuple[dict, str]:
    ome = attrs.get("ome", attrs)
    if not isinstance(ome, dict):
        raise FormatError(f"{store}: 'ome' must be an object")
    ms = ome.get("multiscales")
    if not isinstance(ms, list) or not ms or not isinstance(ms[0], dict):
        raise FormatError(f"{store}: no OME-NGFF 'multiscales' list in the group's attributes")
    version = ome.get("version", ms[0].get("version"))
    if not isinstance(version, str):
        raise FormatError(f"{store}: the metadata has no version string")
    major = version[:3]
    if major not in VERSIONS:
        raise FormatError(
            f"{store}: OME-NGFF version {quote(version)}; transfuse reads 0.4, 0.5 and 0.6"
        )
    return ms[0], major


def _axes(ms: dict, version: str, store):
    """``(system name, axis names, types, units)`` of the system the datasets map into."""
    if version == "0.6":
        systems = ms.get("coordinateSystems")
        if not isinstance(systems, list) or not systems or not isinstance(systems[0], dict):
            raise FormatError(f"{store}: a 0.6 multiscale needs 'coordinateSystems'")
        name, axes = systems[0].get("name"), systems[0].get("axes")
    else:
        name, axes = None, ms.get("axes")
    if not isinstance(axes, list) or not axes or not all(isinstance(a, dict) for a in axes):
        raise FormatError(f"{store}: axes must be a non-empty list of objects")
    names = [a.get("name") for a in axes]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise FormatError(f"{store}: every axis needs a distinct string 'name', got {quote(names)}")
    kinds = [a.get("type") for a in axes]
    units = [a.get("unit") for a in axes]
    if not all(u is None or isinstance(u, str) for u in units):
        raise FormatError(f"{store}: axis units must be strings")
    return name, names, kinds, units


def _dataset(ms: dict, level: int, store) -> dict:
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise FormatError(f"{store}: datasets must be a non-empty list")
    if (
        isinstance(level, bool)
        or not isinstance(level, int)
        or not -len(datasets) <= level < len(datasets)
    ):
        raise ValueError(
            f"level={level!r}: the store has {len(datasets)} levels (0 to {len(datasets) - 1})"
        )
    ds = datasets[level]
    if not isinstance(ds, dict) or not isinstance(ds.get("path"), str):
        raise FormatError(f"{store}: datasets[{level}] needs a string 'path'")
    return ds


def _array_meta(store: Path, path: str) -> tuple[tuple[int, ...], Path]:
    """The shape of the zarr array at ``path`` inside ``store`` (and its directory)."""
    for name in ("zarr.json", ".zarray"):
        try:
            meta = side_file(store, f"{path.strip('/')}/{name}")
        except SideFileError as exc:
            last = exc
            continue
        try:
            doc = json.loads(read_limited(meta, MAX_TEXT_BYTES, label=name).decode("utf-8"))
        except (SideFileError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{store}: the array metadata at {quote(path)}: {exc}") from None
        shape = doc.get("shape") if isinstance(doc, dict) else None
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise FormatError(f"{store}: the array at {quote(path)} has no valid shape")
        return tuple(shape), meta.parent
    raise FormatError(f"{store}: dataset path {quote(path)}: {last}")


def _as_sequence(cts, where):
    """A 0.4/0.5 list (or the 0.6 one-element list) as one transformation object."""
    if isinstance(cts, list):
        if len(cts) == 1:
            return cts[0]
        return {"type": "sequence", "transformations": cts}
    if isinstance(cts, dict):
        return cts
    raise FormatError(f"{where}: coordinateTransformations must be a list")


def _to_system(ms, intrinsic, system, n, store):
    """The matrix from the intrinsic system to ``system`` through the multiscale's own
    ``coordinateTransformations`` (0.6), and the system's name."""
    cts = ms.get("coordinateTransformations")
    if not cts:
        if system not in (None, intrinsic):
            raise ValueError(f"system={system!r}: the image has only {intrinsic!r}")
        return np.eye(n + 1), intrinsic
    from ..systems import CoordinateSystems

    graph = CoordinateSystems.from_ngff(
        {"coordinateSystems": ms.get("coordinateSystems", []), "coordinateTransformations": cts}
    )
    if system is None:
        # the one system the intrinsic one leads to, when there is exactly one
        others = [s for s in graph.systems if s != intrinsic]
        if len(others) != 1:
            return np.eye(n + 1), intrinsic
        system = others[0]
    T = graph.transform(intrinsic, system, ndim=n)
    if not T.is_affine:
        raise FormatError(f"{store}: the map from {intrinsic!r} to {system!r} is not affine")
    return np.asarray(T.matrix(n), dtype=np.float64), system


def _placed(grid: Grid, m: np.ndarray) -> Grid:
    """``grid`` moved by the affine ``m`` of its physical space."""
    n = grid.ndim
    full = m @ grid.physical_matrix()
    linear = full[:n, :n]
    spacing = np.linalg.norm(linear, axis=0)
    try:
        return Grid(
            grid.shape, tuple(spacing), tuple(full[:n, n]), linear / spacing, grid.axes, grid.units
        )
    except ValueError as exc:
        raise FormatError(f"the image's grid in its system: {exc}") from None


def read_ome_zarr_grid(path, level: int = 0, *, system: str | None = None):
    """The grid of one level of an OME-Zarr image, and where its array lies.

    Returns ``(grid, array_path, info)``; ``info`` holds ``version``, ``levels`` and the
    ``system`` the grid maps into. See :func:`read_ome_zarr`.
    """
    store = Path(os.fspath(path))
    if not store.is_dir():
        raise FormatError(f"{quote(str(store))}: not a zarr store (a directory)")
    attrs = _attributes(store)
    ms, version = _multiscale(attrs, store)
    intrinsic, names, _kinds, units = _axes(ms, version, store)
    ds = _dataset(ms, level, store)
    shape, array_dir = _array_meta(store, ds["path"])
    n = len(shape)
    if len(names) != n:
        raise FormatError(f"{store}: {len(names)} axes for a {n}-D array at {quote(ds['path'])}")
    cts = ds.get("coordinateTransformations")
    where = f"{store}: datasets[{level}]"
    systems = ms.get("coordinateSystems") if version == "0.6" else None
    axes = [{"name": a, "unit": u} for a, u in zip(names, units, strict=True)]
    try:
        if cts:
            grid = grid_from_ngff(shape, _as_sequence(cts, where), axes, systems)
        else:
            grid = Grid(shape, axes=tuple(names), units=tuple(units))
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
    if version == "0.6":
        to_system, name = _to_system(ms, intrinsic, system, n, store)
    elif system is not None:
        raise ValueError(f"system={system!r}: OME-NGFF {version} images have one system")
    else:
        to_system, name = np.eye(n + 1), None
    if not np.array_equal(to_system, np.eye(n + 1)):
        grid = _placed(grid, to_system)
    info = {"version": version, "levels": len(ms["datasets"]), "system": name}
    return grid, array_dir, info


def read_ome_zarr(path, level: int = 0, *, system: str | None = None, chunks=None):
    """Read one level of an OME-Zarr image as a grid-aware lazy image.

    Parameters
    ----------
    path : str or os.PathLike
        The image group (``image.ome.zarr``): OME-NGFF 0.4 (zarr v2), 0.5 or 0.6 (zarr v3).
    level : int
        The resolution level (``datasets[level]``; 0 is the finest).
    system : str, optional
        0.6 only: the coordinate system to place the grid in, reached from the datasets'
        own system through the multiscale's ``coordinateTransformations`` (affine). Default:
        the one other system when there is exactly one (as :func:`write_ome_zarr` writes a
        rotated grid), else the datasets' own system.
    chunks : optional
        Dask chunks (default: the store's).

    Returns
    -------
    LazyImage
        Over the level's zarr array (read chunk by chunk, :mod:`.zarr_chunks`), with
        ``.grid`` from the level's scale and translation (and the system's affine).

    Raises
    ------
    FormatError
        For metadata that is malformed, of another version, or names a path outside the
        store.
    """
    from ..lazy import lazy
    from .zarr_chunks import zarr_dask_array

    grid, array_dir, _ = read_ome_zarr_grid(path, level, system=system)
    data = zarr_dask_array(array_dir, chunks=chunks)
    if data.shape != grid.shape:
        raise FormatError(f"{path}: the array has shape {data.shape}, its metadata {grid.shape}")
    return lazy(data, grid=grid)


# -- writing -----------------------------------------------------------------------------------
def _axis_type(name: str) -> str:
    return {"c": "channel", "t": "time"}.get(name, _SPACE)


def write_ome_zarr(
    image,
    path,
    *,
    grid: Grid | None = None,
    version: str = "0.5",
    scale_factors=None,
    levels: int | None = None,
    chunks=None,
    name: str = "image",
    labels: bool = False,
    overwrite: bool = False,
) -> None:
    """Write an image as an OME-Zarr multiscale, chunk by chunk (ngff-zarr's writer).

    Parameters
    ----------
    image : LazyImage, dask array or numpy array
        A lazy image brings its grid (``image.grid``) and is computed chunk by chunk as it
        is written; nothing is materialised whole.
    path : str or os.PathLike
        The store to create (``.ome.zarr``).
    grid : Grid, optional
        The image's grid (default: the lazy image's, else the unit grid). Axes named
        ``c``/``t`` are written as channel/time axes, the others as space.
    version : {"0.4", "0.5", "0.6"}
        0.4/0.5 store only a per-axis scale and translation: a rotated grid (``direction``
        not the identity) is refused with a ValueError. 0.6 writes a rotated grid as a
        scale + translation into an axis-aligned ``"<name>-aligned"`` system plus an
        ``affine`` from it to the ``"physical"`` system.
    scale_factors : list, optional
        Pyramid levels below the first, as ngff-zarr takes them (e.g. ``[2, 4]`` or
        ``[{"z": 1, "y": 2, "x": 2}]``). ``levels=k`` is short for ``[2, 4, ..., 2**(k-1)]``.
        Default: one level.
    chunks : int or tuple, optional
        Chunks of the stored arrays (ngff-zarr's default when omitted).
    labels : bool
        A label image: the pyramid takes the most frequent label (never interpolates).
    overwrite : bool
        Replace an existing store.
    """
    import dask.array as da
    import ngff_zarr as nz

    from ..lazy import LazyImage

    if version not in VERSIONS:
        raise ValueError(f"version={version!r} must be one of {VERSIONS}")
    if isinstance(image, LazyImage):
        grid = image.grid if grid is None else grid
        data = image.to_dask()
    else:
        data = image if isinstance(image, da.Array) else da.asarray(np.asarray(image))
    if grid is None:
        grid = Grid(data.shape)
    if not isinstance(grid, Grid):
        raise TypeError(f"grid={grid!r} must be a transfuse.Grid")
    if grid.shape != tuple(data.shape):
        raise ValueError(f"grid.shape={grid.shape} differs from the image's {data.shape}")
    if levels is not None:
        if scale_factors is not None:
            raise ValueError("pass levels= or scale_factors=, not both")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels={levels!r} must be a positive integer")
        scale_factors = [2**k for k in range(1, levels)]
    aligned = grid.is_axis_aligned()
    if not aligned and version != "0.6":
        raise ValueError(
            f"version={version!r} stores only a per-axis scale and translation; this grid has "
            f"direction={grid.direction} (rotated): write version='0.6' (an affine to a "
            "'physical' system) or resample onto an axis-aligned grid first"
        )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{os.fspath(path)!r} exists; pass overwrite=True to replace it")
    dims = list(grid.axes)
    spatial = [d for d in dims if _axis_type(d) == _SPACE]
    if not set(dims) <= {"t", "c", "z", "y", "x"}:
        raise ValueError(f"grid.axes={grid.axes} must be named from t, c, z, y, x for OME-Zarr")
    origin = grid.origin if aligned else (0.0,) * grid.ndim
    ngff_image = nz.to_ngff_image(
        data,
        dims=dims,
        scale=dict(zip(dims, grid.spacing, strict=True)),
        translation=dict(zip(dims, origin, strict=True)),
        name=name,
        axes_units={
            d: ngff_unit(u) for d, u in zip(dims, grid.units, strict=True) if u and d in spatial
        },
    )
    method = nz.Methods.DASK_IMAGE_MODE if labels else nz.Methods.DASK_IMAGE_GAUSSIAN
    multiscales = nz.to_multiscales(
        ngff_image, scale_factors=scale_factors or [], method=method, chunks=chunks
    )
    nz.to_ngff_zarr(str(path), multiscales, version=version, overwrite=True)
    if not aligned:
        _add_physical_affine(Path(path), grid, name)


def _add_physical_affine(store: Path, grid: Grid, name: str) -> None:
    """0.6: rename the datasets' system to ``<name>-aligned`` and add ``physical`` with the
    affine ``p = origin + direction @ q`` from it (rows of ``[direction | origin]``)."""
    meta_path = store / "zarr.json"
    doc = json.loads(meta_path.read_text())
    ms = doc["attributes"]["ome"]["multiscales"][0]
    old = ms["coordinateSystems"][0]["name"]
    aligned = f"{name}-aligned"
    ms["coordinateSystems"][0]["name"] = aligned
    for ds in ms["datasets"]:
        for ct in ds["coordinateTransformations"]:
            if ct.get("output", {}).get("name") == old:
                ct["output"]["name"] = aligned
    axes = [dict(a) for a in ms["coordinateSystems"][0]["axes"]]
    ms["coordinateSystems"].append({"name": "physical", "axes": axes})
    rows = np.hstack([np.asarray(grid.direction), np.asarray(grid.origin)[:, None]])
    ms["coordinateTransformations"] = [
        {
            "type": "affine",
            "affine": [[float(v) + 0.0 for v in row] for row in rows],
            "input": {"name": aligned},
            "output": {"name": "physical"},
        }
    ]
    meta_path.write_text(json.dumps(doc, indent=4))


# -- scenes ------------------------------------------------------------------------------------
def read_ome_zarr_scene(path, level: int = 0):
    """An OME-NGFF 0.6 scene store as a :class:`~transfuse.systems.CoordinateSystems`.

    The root group's ``ome.scene`` gives the registrations; every image subgroup a
    transformation refers to (``{"name": n, "path": p}``) is read with
    :func:`read_ome_zarr` at ``level`` and placed as the image ``p`` in the system ``"p/n0"``
    (``n0``: its datasets' own system), and its multiscale's own transformations link
    ``"p/n0"`` to its other systems (``"p/physical"``, ...). Arrays named by ``path`` in the
    scene's transformations (fields, parameters) are read from the store, inside it.

    Raises
    ------
    FormatError
        For a store without a scene, malformed metadata, or a path outside the store.
    """
    from ..systems import CoordinateSystems
    from .recipe_limits import MAX_NPY_BYTES
    from .zarr_store import open_confined_array

    store = Path(os.fspath(path))
    if not store.is_dir():
        raise FormatError(f"{quote(str(store))}: not a zarr store (a directory)")
    attrs = _attributes(store)
    ome = attrs.get("ome")
    scene = ome.get("scene") if isinstance(ome, dict) else None
    if not isinstance(scene, dict):
        raise FormatError(f"{store}: no OME-NGFF 'scene' in the group's attributes")

    def array(ref):
        _, array_dir = _array_meta(store, ref)
        z = open_confined_array(array_dir)
        if z.nbytes > MAX_NPY_BYTES:  # a scene's fields are loaded: bounded before reading
            raise FormatError(
                f"{store}: array {ref!r} holds {z.nbytes} bytes, more than the "
                f"{MAX_NPY_BYTES} a scene's transformation array may load"
            )
        return np.asarray(z)

    graph = CoordinateSystems.from_ngff(scene, arrays=array)
    subgroups = set()
    for node in scene.get("coordinateTransformations", []):
        for role in ("input", "output"):
            ref = node.get(role) if isinstance(node, dict) else None
            if isinstance(ref, dict) and isinstance(ref.get("path"), str) and ref["path"]:
                subgroups.add(ref["path"].strip("/"))
    for sub in sorted(subgroups):
        try:
            meta = side_file(store, f"{sub}/zarr.json")
        except SideFileError as exc:
            raise FormatError(f"{store}: the scene's image {quote(sub)}: {exc}") from None
        ms, version = _multiscale(_attributes(meta.parent), meta.parent)
        if version != "0.6":
            raise FormatError(f"{store}: the scene's image {quote(sub)} is {version}, not 0.6")
        intrinsic = _axes(ms, version, meta.parent)[0]
        image = read_ome_zarr(meta.parent, level, system=intrinsic)
        graph.add_image(sub, image, f"{sub}/{intrinsic}", image.grid)
        own = ms.get("coordinateTransformations")
        if own:
            local = CoordinateSystems.from_ngff(
                {
                    "coordinateSystems": ms.get("coordinateSystems", []),
                    "coordinateTransformations": own,
                }
            )
            for a, b, data in local.graph.edges(data=True):
                graph.graph.add_edge(f"{sub}/{a}", f"{sub}/{b}", **data)
    return graph
