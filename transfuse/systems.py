"""Coordinate systems as a graph: named spaces linked by transforms, images placed in them.

A :class:`CoordinateSystems` holds

* **systems** (nodes): named spaces such as ``"scanner"``, ``"atlas"``, ``"moving"``;
* **transforms** (edges): ``add_transform(src, dst, T)`` says that ``T`` maps a point given in
  ``src`` coordinates to the same point in ``dst`` coordinates (a registration). The reverse
  edge is added **only where the inverse is exact**: an affine transform with numeric
  parameters (its inverse matrix), or a map given together with its inverse (``inverse=``,
  e.g. an NGFF ``bijection``, or both directions of an ``inverseOf``). A displacement field on
  its own gets no reverse edge: its inverse is only iterative;
* **images**: ``add_image(name, data, system, grid)``: the grid maps the image's array indices
  into ``system``.

:meth:`CoordinateSystems.transform` composes the transforms along the shortest path into one
transform; :meth:`CoordinateSystems.resample` resamples an image into any system it is linked
to, in one pass (the path's transforms fuse with the grids' maps). A missing link is an
error that names it, e.g. ``no path from 'moving' to 'atlas': 'moving' connects to
{'scanner'}``.

An OME-NGFF 0.6 scene (``coordinateSystems`` and ``coordinateTransformations`` with
``input``/``output``, including ``sequence``, ``inverseOf``, ``bijection``, ``byDimension``)
becomes such a graph with :meth:`CoordinateSystems.from_ngff`.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np

from .grids import as_grid
from .transforms import Compose, Grid, Identity, Transform

__all__ = ["CoordinateSystems", "PlacedImage"]


@dataclasses.dataclass(frozen=True)
class PlacedImage:
    """An image in a coordinate system: its data, the system and the grid into it."""

    name: str
    data: object
    system: str
    grid: Grid

    def lazy(self):
        """The data as a :class:`~transfuse.LazyImage` on :attr:`grid`."""
        from .lazy import LazyImage, lazy

        if isinstance(self.data, LazyImage):
            return self.data.with_grid(self.grid)
        return lazy(self.data, grid=self.grid)


def _exact_inverse(transform: Transform) -> Transform | None:
    """The inverse of ``transform`` when it is exact (affine, numeric), else None."""
    if transform.is_affine and not transform.free_symbols:
        try:
            return transform.inverse()
        except (ValueError, ZeroDivisionError, NotImplementedError, np.linalg.LinAlgError):
            return None
    return None


def _compose(parts: list[Transform], ndim) -> Transform:
    parts = [p for p in parts if not isinstance(p, Identity)]
    if not parts:
        return Identity(ndim)
    return parts[0] if len(parts) == 1 else Compose(tuple(parts))


class CoordinateSystems:
    """Named coordinate systems linked by transforms, and images placed in them.

    Examples
    --------
    Two registrations: ``moving`` to ``scanner`` (a shift) and ``scanner`` to ``atlas``
    (a scale); the reverse edges are added because both are affine:

    >>> import numpy as np
    >>> from transfuse import Grid, Scale, Translate
    >>> from transfuse.systems import CoordinateSystems
    >>> cs = CoordinateSystems()
    >>> cs.add_transform("moving", "scanner", Translate((1.0, 2.0)))
    >>> cs.add_transform("scanner", "atlas", Scale(2.0))
    >>> cs.transform("moving", "atlas")([[0.0, 0.0]])
    array([[2., 4.]])
    >>> cs.transform("atlas", "moving")([[2.0, 4.0]])
    array([[0., 0.]])
    >>> cs.add_image("img", np.arange(16.0).reshape(4, 4), "moving", Grid((4, 4)))
    >>> atlas_grid = Grid((4, 4), spacing=2.0, origin=(2.0, 4.0))  # where the image lands
    >>> out = cs.resample("img", into="atlas", onto=atlas_grid, order=1)
    >>> np.allclose(out.compute(), np.arange(16.0).reshape(4, 4)), out.grid.spacing
    (True, (2.0, 2.0))
    >>> cs.add_system("elsewhere")
    >>> cs.transform("moving", "elsewhere")
    Traceback (most recent call last):
    ...
    ValueError: no path from 'moving' to 'elsewhere': 'moving' connects to {'atlas', 'scanner'}; ...
    """

    def __init__(self):
        self.graph = nx.DiGraph()
        self.images: dict[str, PlacedImage] = {}

    # -- building ---------------------------------------------------------------------------
    def add_system(self, name: str, axes=None, units=None) -> None:
        """Add a coordinate system (systems named by edges and images are added anyway).

        ``axes``: axis names (numpy order); ``units``: one unit per axis or None.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name={name!r} must be a non-empty string")
        attrs = {}
        if axes is not None:
            attrs["axes"] = tuple(axes)
        if units is not None:
            attrs["units"] = units
        self.graph.add_node(name, **attrs)

    def add_transform(
        self, src: str, dst: str, transform: Transform, inverse: Transform | None = None
    ) -> None:
        """Link ``src`` to ``dst``: ``transform`` maps ``src`` points to ``dst`` points.

        The reverse edge ``dst -> src`` is ``inverse`` when given (it must be the exact
        inverse; e.g. an NGFF ``bijection``'s other member), else the exact inverse of an
        affine ``transform``; a non-linear transform without ``inverse`` links one way only.
        A later edge between the same systems replaces the earlier one.
        """
        for value, name in ((src, "src"), (dst, "dst")):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}={value!r} must be a non-empty system name")
        if src == dst:
            raise ValueError(f"src and dst are both {src!r}: a transform links two systems")
        for value, name in ((transform, "transform"), (inverse, "inverse")):
            if value is not None and not isinstance(value, Transform):
                raise TypeError(f"{name}={value!r} is not a transfuse Transform")
        ndims = {t.ndim for t in (transform, inverse) if t is not None} - {None}
        if len(ndims) > 1:
            raise ValueError(f"transform and inverse differ in dimension: {sorted(ndims)}")
        for name in (src, dst):
            if name not in self.graph:
                self.add_system(name)
        self.graph.add_edge(src, dst, transform=transform, exact=True, given=True)
        back = inverse if inverse is not None else _exact_inverse(transform)
        if back is not None:
            self.graph.add_edge(dst, src, transform=back, exact=True, given=inverse is not None)
        elif self.graph.has_edge(dst, src) and not self.graph.edges[dst, src]["given"]:
            self.graph.remove_edge(dst, src)  # a stale inverse of an earlier edge

    def add_image(self, name: str, data, system: str, grid: Grid | None = None) -> None:
        """Place an image: ``grid`` maps its array indices into ``system``.

        ``data`` is an array (numpy, dask) or a :class:`~transfuse.LazyImage`; ``grid``
        defaults to the lazy image's grid, else the unit grid of the array's shape.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name={name!r} must be a non-empty string")
        if not isinstance(system, str) or not system:
            raise ValueError(f"system={system!r} must be a non-empty system name")
        if grid is None:
            own = getattr(data, "grid", None)
            grid = own if isinstance(own, Grid) else Grid(np.shape(data))
        if not isinstance(grid, Grid):
            raise TypeError(f"grid={grid!r} must be a transfuse.Grid")
        if tuple(np.shape(data)) != grid.shape:
            raise ValueError(f"grid.shape={grid.shape} differs from the data's {np.shape(data)}")
        if system not in self.graph:
            self.add_system(system)
        self.images[name] = PlacedImage(name, data, system, grid)

    # -- querying ---------------------------------------------------------------------------
    @property
    def systems(self) -> list[str]:
        return sorted(self.graph.nodes)

    def _check_system(self, name, role):
        if name not in self.graph:
            raise KeyError(
                f"{role}={name!r} is not a coordinate system here; known: {self.systems}"
            )

    def path(self, src: str, dst: str) -> list[str]:
        """The systems on the shortest path from ``src`` to ``dst`` (both included)."""
        self._check_system(src, "src")
        self._check_system(dst, "dst")
        try:
            return nx.shortest_path(self.graph, src, dst)
        except nx.NetworkXNoPath:
            reach = sorted(nx.descendants(self.graph, src))
            into = sorted(nx.ancestors(self.graph, dst))
            raise ValueError(
                f"no path from {src!r} to {dst!r}: {src!r} connects to "
                f"{{{', '.join(map(repr, reach))}}}"
                + (
                    f"; {dst!r} is reached from {{{', '.join(map(repr, into))}}}"
                    if into
                    else f"; nothing links into {dst!r}"
                )
            ) from None

    def transform(self, src: str, dst: str, ndim: int | None = None) -> Transform:
        """The map from ``src`` points to ``dst`` points: the transforms along the shortest
        path composed into one (``T_last @ ... @ T_first``)."""
        nodes = self.path(src, dst)
        steps = [
            self.graph.edges[a, b]["transform"] for a, b in zip(nodes[:-1], nodes[1:], strict=True)
        ]
        if ndim is None:
            ndim = next((t.ndim for t in steps if t.ndim is not None), None)
        return _compose(steps[::-1], ndim)

    def image(self, image) -> PlacedImage:
        if isinstance(image, PlacedImage):
            return image
        if isinstance(image, str) and image in self.images:
            return self.images[image]
        raise KeyError(f"image={image!r} is not an image here; known: {sorted(self.images)}")

    def resample(self, image, into: str, onto=None, **options):
        """Resample an image into the system ``into``, on the grid ``onto``.

        Parameters
        ----------
        image : str or PlacedImage
            The image's name (``add_image``).
        into : str
            The system the result lives in.
        onto : Grid or LazyImage, optional
            The output grid in ``into`` coordinates. Default: the image's own grid when
            ``into`` is its system, else a required argument.
        **options
            ``order``, ``mode``, ``cval``, ... as for :meth:`~transfuse.LazyImage.resample`.

        Returns
        -------
        LazyImage
            On ``onto``; one resampling pass, the path's transforms fused with the grids.
        """
        placed = self.image(image)
        self._check_system(into, "into")
        if onto is None:
            if into != placed.system:
                raise ValueError(
                    f"onto= is needed: {placed.name!r} lives in {placed.system!r}, not {into!r}"
                )
            onto = placed.grid
        onto = as_grid(onto, "onto")
        pull = self.transform(into, placed.system, ndim=placed.grid.ndim)
        return placed.lazy().resample(pull, onto=onto, space="physical", **options)

    # -- OME-NGFF ---------------------------------------------------------------------------
    @classmethod
    def from_ngff(cls, scene, *, arrays=None, images=None, vector_axis=None):
        """A graph from an OME-NGFF 0.6 scene.

        Parameters
        ----------
        scene : dict
            The group's attributes (``{"ome": {"scene": {...}}}``), its ``ome`` object, or
            the scene object itself: ``coordinateSystems`` and ``coordinateTransformations``
            whose ``input``/``output`` name systems (``{"name": ..., "path": ...}``; a
            system in a subgroup is called ``"path/name"`` here).
        arrays : mapping or callable, optional
            Resolves a ``path`` to an array (fields, parameters), as in
            :func:`~transfuse.io.ngff.from_ngff`.
        images : mapping, optional
            ``{name: (data, system, grid)}`` images to place.

        Each transformation gives the edge ``input -> output`` (its forward map) and, where
        exact, ``output -> input`` (its pull map): both for matrix types and their
        sequences, ``bijection`` and ``inverseOf``; one way for a bare field.
        """
        from .io.errors import FormatError
        from .io.ngff import ngff_maps

        body = scene
        if isinstance(body, dict) and "ome" in body:
            body = body["ome"]
        if isinstance(body, dict) and "scene" in body:
            body = body["scene"]
        if not isinstance(body, dict):
            raise FormatError("scene: must be an object with 'coordinateTransformations'")
        systems = body.get("coordinateSystems", [])
        transformations = body.get("coordinateTransformations")
        if not isinstance(transformations, list) or not transformations:
            raise FormatError("scene: coordinateTransformations must be a non-empty list")
        if not isinstance(systems, list):
            raise FormatError("scene: coordinateSystems must be a list")
        out = cls()
        for i, cs in enumerate(systems):
            if not isinstance(cs, dict) or not isinstance(cs.get("name"), str) or not cs["name"]:
                raise FormatError(f"scene: coordinateSystems[{i}] needs a non-empty string 'name'")
            axes = cs.get("axes")
            if not isinstance(axes, list) or not all(isinstance(a, dict) for a in axes):
                raise FormatError(f"scene: coordinateSystems[{i}] needs a list of axis objects")
            names = [a.get("name") for a in axes]
            if not all(isinstance(n, str) for n in names):
                raise FormatError(f"scene: coordinateSystems[{i}]: every axis needs a 'name'")
            out.add_system(cs["name"], axes=names, units=tuple(a.get("unit") for a in axes))
        for i, node in enumerate(transformations):
            where = f"scene: coordinateTransformations[{i}]"
            if not isinstance(node, dict):
                raise FormatError(f"{where}: must be an object")
            src, dst = (
                _system_ref(node.get(role), f"{where}.{role}") for role in ("input", "output")
            )
            forward, pull = ngff_maps(node, systems, arrays=arrays, vector_axis=vector_axis)
            if forward is not None:
                out.add_transform(src, dst, forward, inverse=pull)
            elif pull is not None:
                out.add_transform(dst, src, pull)
            else:
                raise FormatError(f"{where}: neither direction has an exact form")
        for name, (data, system, grid) in (images or {}).items():
            out.add_image(name, data, system, grid)
        return out


def _system_ref(ref, where):
    from .io.errors import FormatError

    if isinstance(ref, str) and ref:
        return ref
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]:
        path = ref.get("path")
        if path is None or path == "":
            return ref["name"]
        if isinstance(path, str):
            return f"{path.strip('/')}/{ref['name']}"
    raise FormatError(f"{where}: must name a coordinate system ({{'name': ...}})")
