"""The lazy image API: record resampling steps, plan them together, compute once."""

from __future__ import annotations

import dataclasses
import numbers
import warnings

import dask.array as da
import numpy as np
from scipy import special

from .executors import get_executor, to_dask
from .executors.graph import paused_gc
from .executors.spline import field_coefficients
from .grids import resample_pull, view_grid, zoom_grid
from .planner import plan as _plan
from .planner.expr import Source, Step
from .planner.options import ResampleOptions, check_chunks, check_output_shape
from .planner.physical import GridView
from .transforms import Affine, Grid, Rotate, Scale, Transform, Translate

__all__ = ["LazyImage", "lazy", "plan"]


def plan(image):
    """Plan a lazy image (or an image expression): the chain as written, the fused runs
    and the physical passes (:class:`~transfuse.planner.Plan`).

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> p = transfuse.plan(transfuse.lazy(np.ones((8, 8)), chunks=4).rotate(10).zoom(2))
    >>> len(p.steps), len(p.passes)
    (2, 1)
    """
    expr = image._expr if isinstance(image, LazyImage) else image
    return _plan(expr, spline_filter=field_coefficients)


def lazy(array, chunks=None, grid=None) -> LazyImage:
    """Wrap a numpy or dask array (or an xarray DataArray) as a lazy image.

    Parameters
    ----------
    array : array_like, dask.array.Array or xarray.DataArray
        The input image (never modified). A DataArray's regular 1-D coordinates give its
        grid, and results come back as DataArrays (see :mod:`transfuse.xarrays`).
    chunks : int, tuple or "auto", optional
        Chunking to use (dask arrays are rechunked only when given).
    grid : Grid, optional
        Where the voxels lie in physical space (its shape must equal the array's). Without
        one the image is on the unit grid of its shape (index space) and
        :attr:`LazyImage.has_grid` is False.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> transfuse.lazy(x).shift((1, 0), order=1).compute()[:, 0]
    array([0., 0., 4., 8.])
    >>> img = transfuse.lazy(x, grid=transfuse.Grid((4, 4), spacing=0.5))
    >>> img.grid.spacing, img.has_grid
    ((0.5, 0.5), True)
    """
    if grid is not None and not isinstance(grid, Grid):
        raise TypeError(f"grid={grid!r} must be a transfuse.Grid")
    if isinstance(array, LazyImage):
        return array if grid is None else array.with_grid(grid)
    _check_input_chunks(chunks)
    meta = None
    if _is_dataarray(array):
        from .xarrays import from_dataarray

        array, own_grid, meta = from_dataarray(array)
        grid = own_grid if grid is None else grid
    if isinstance(array, da.Array):
        arr = array if chunks is None else array.rechunk(chunks)
    else:
        arr = np.asarray(array) if not hasattr(array, "__array_function__") else array
        if chunks is None and 0 in np.shape(arr):
            chunks = -1  # dask's "auto" cannot split an empty array
        arr = da.from_array(arr, chunks="auto" if chunks is None else chunks)
    if arr.ndim < 1:
        raise ValueError(f"array must have at least one dimension, got shape {arr.shape}")
    dtype = np.dtype(arr.dtype)
    if dtype.kind not in "biuf":
        raise ValueError(f"array dtype {arr.dtype} is not supported (real numbers only)")
    if dtype == np.float16:
        raise ValueError(
            "array dtype float16 is not supported (scipy.ndimage refuses it too): "
            "convert with .astype(np.float32)"
        )
    if not dtype.isnative:  # big-endian data (FITS, some TIFFs): computed in native order
        arr = arr.astype(dtype.newbyteorder("="))
    if any(np.isnan(c) for cs in arr.chunks for c in cs):
        raise ValueError("array has unknown chunk sizes; call compute_chunk_sizes() first")
    source = Source(tuple(arr.shape), np.dtype(arr.dtype), arr.chunks, arr.name)
    image = LazyImage(source, arr, xarray_meta=meta)
    return image if grid is None else image.with_grid(grid)


def _is_dataarray(value) -> bool:
    """An xarray DataArray, recognised without importing xarray."""
    return any(
        c.__name__ == "DataArray" and c.__module__.startswith("xarray") for c in type(value).__mro__
    )


def _check_input_chunks(chunks) -> None:
    """dask's chunk forms (int, per-axis sequence, "auto", -1 or None for a whole axis),
    refusing sizes that are not positive."""
    if chunks is None or isinstance(chunks, str) or isinstance(chunks, dict):
        return
    items = chunks if isinstance(chunks, tuple | list) else [chunks]
    for c in items:
        if c is None or isinstance(c, str) or c == -1:
            continue
        sizes = c if isinstance(c, tuple | list) else [c]
        for v in sizes:
            if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(
                    f"chunks={chunks!r} must be positive integers (or -1/None for a whole axis)"
                )


def _per_axis(value, ndim: int, name: str, positive: bool = False) -> np.ndarray:
    """One number for every axis, or one per axis, as float64; finite (and > 0). Text and
    booleans are refused (never parsed as numbers)."""
    items = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(v, str | bytes | bool | np.bool_) for v in items) or (
        isinstance(value, np.ndarray) and value.dtype.kind not in "iuf"
    ):
        raise ValueError(f"{name}={value!r} must be one number or one per axis")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} must be one number or one per axis") from exc
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    kind = "positive" if positive else "finite"
    if arr.shape != (ndim,) or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        raise ValueError(f"{name}={value!r} must be one {kind} number or one per axis")
    return arr


def _plane_axes(axes, ndim: int) -> list[int]:
    """Two distinct axes of an ``ndim``-D image, sorted and non-negative."""
    try:
        axes = list(axes)
    except TypeError as exc:
        raise ValueError(f"axes={axes!r} must be two integer axes") from exc
    if len(axes) != 2 or any(
        isinstance(a, bool | np.bool_) or not isinstance(a, numbers.Integral) for a in axes
    ):
        raise ValueError(f"axes={axes!r} must be two integer axes")
    axes = [int(a) + ndim if a < 0 else int(a) for a in axes]
    if any(a < 0 or a >= ndim for a in axes) or axes[0] == axes[1]:
        raise ValueError(f"axes={axes!r} is not a plane of a {ndim}-D image")
    return sorted(axes)


def _grid_view(key, shape):
    """The :class:`~transfuse.planner.physical.GridView` of numpy basic indexing ``key`` on
    a grid of ``shape``, and the selection's shape."""
    items = key if isinstance(key, tuple) else (key,)
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise ValueError(f"index {key!r}: an index can only have a single ellipsis")
    if Ellipsis in items:
        i = items.index(Ellipsis)
        fill = (slice(None),) * (len(shape) - len(items) + 1)
        items = items[:i] + fill + items[i + 1 :]
    if len(items) > len(shape):
        raise ValueError(f"index {key!r} has {len(items)} entries for {len(shape)} axes")
    items = items + (slice(None),) * (len(shape) - len(items))
    axes, out_shape = [], []
    for a, (k, n) in enumerate(zip(items, shape, strict=True)):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            size = len(range(start, stop, step))
            axes.append((len(out_shape), start if size else 0, step))
            out_shape.append(size)
        elif isinstance(k, numbers.Integral) and not isinstance(k, bool | np.bool_):
            if not -n <= k < n:
                raise ValueError(f"index {k} is out of bounds for axis {a} with size {n}")
            axes.append((None, int(k) % n, 0))
        else:
            raise ValueError(
                f"index {key!r}: only integers, slices and ... select a lazy view "
                f"(got {type(k).__name__}); compute first for fancy indexing"
            )
    if not out_shape:
        raise ValueError(f"index {key!r} selects a single point: keep one axis, e.g. [i:i+1]")
    return GridView(tuple(axes), tuple(shape), tuple(out_shape)), tuple(out_shape)


def _view_chunks(view, step, array):
    """Chunks of a view: the step's output chunk size per kept axis, divided by the step."""
    if step.output_chunks is not None:
        base = check_chunks(step.output_chunks, step.output_shape)
        sizes = [max(c) if c else 1 for c in base]
    elif array.ndim == len(step.output_shape) and step.view is None:
        sizes = [max(c) for c in array.chunks]
    else:
        sizes = list(step.output_shape)
    out = []
    for (j, _, stride), size in zip(view.axes, sizes, strict=True):
        if j is not None:
            out.append(max(1, size // abs(stride)))
    return tuple(out)


def _options(order, mode, cval, prefilter):
    return ResampleOptions(order=order, mode=mode, cval=cval, prefilter=prefilter)


def _out_dtype(output, default):
    if output is None:
        return None
    try:
        dt = np.dtype(output)
    except TypeError as exc:
        raise ValueError(
            f"output={output!r} must be a numpy dtype (arrays are not accepted by a lazy image)"
        ) from exc
    if dt.kind not in "biuf":
        raise ValueError(f"output={output!r} must be a real numeric dtype")
    return dt


class LazyImage:
    """An image with pending resampling steps. Methods return new lazy images; nothing is
    computed until :meth:`compute` (or :meth:`to_dask` and dask's compute).

    When consecutive steps use the same ``order``, ``mode``, ``cval`` and ``prefilter`` they
    are fused and the input is resampled once with the composed transform (no intermediate
    crop: content outside an intermediate grid is not lost). Steps with different options
    start a new resampling pass, as if run one after the other; :meth:`explain` shows it.
    """

    def __init__(
        self, expr: Source | Step, array: da.Array, grid=None, has_grid=False, xarray_meta=None
    ):
        self._expr = expr
        self._array = array
        self._grid = grid  # a Grid, None (the unit grid) or the text of why there is none
        self._has_grid = bool(has_grid)
        self._xarray_meta = xarray_meta
        #: compute non-affine maps in a layer shared with other images (transfuse.resample)
        self._share_map = False

    def _derive(self, expr, grid) -> LazyImage:
        """A new image on the same input, with what the input knows about its space."""
        out = LazyImage(expr, self._array, grid, self._has_grid, self._xarray_meta)
        out._share_map = self._share_map
        return out

    # -- physical space ---------------------------------------------------------------------
    @property
    def grid(self) -> Grid:
        """Where the image's voxels lie in physical space (see ``docs/physical-space.md``):
        the grid given to :func:`lazy`, carried through every step; for a plain array, the
        unit grid of its shape (index space).

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> g = transfuse.Grid((8, 8), spacing=(2.0, 1.0), origin=(10.0, 0.0))
        >>> img = transfuse.lazy(np.zeros((8, 8)), grid=g)
        >>> img[2:, ::2].grid.origin, img[2:, ::2].grid.spacing
        ((14.0, 0.0), (2.0, 2.0))
        >>> img.zoom(2).grid.shape
        (16, 16)
        """
        if self._grid is None:
            return Grid(self.shape)
        if isinstance(self._grid, str):
            raise ValueError(self._grid)
        return self._grid

    @property
    def has_grid(self) -> bool:
        """Whether the user gave the image a grid (``lazy(..., grid=...)``, a DataArray's
        coordinates); False for a plain array, which stays in index space."""
        return self._has_grid

    def with_grid(self, grid: Grid) -> LazyImage:
        """The same image placed on ``grid`` (its shape must be the image's).

        >>> import numpy as np, transfuse
        >>> transfuse.lazy(np.zeros((3, 4))).with_grid(transfuse.Grid((3, 4))).has_grid
        True
        """
        if not isinstance(grid, Grid):
            raise TypeError(f"grid={grid!r} must be a transfuse.Grid")
        if grid.shape != tuple(self.shape):
            raise ValueError(
                f"grid has shape {grid.shape}, the image has shape {tuple(self.shape)}: "
                "a grid must describe every voxel of its image"
            )
        return LazyImage(self._expr, self._array, grid, True, self._xarray_meta)

    def _same_map_grid(self, shape) -> Grid | str | None:
        """The grid of an index-space operation that moves the content: the input grid's
        index->physical map, with the new shape."""
        if self._grid is None:
            return None
        if isinstance(self._grid, str):
            return self._grid
        return self._grid.replace(shape=tuple(shape))

    # -- geometry ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._expr.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        node = self._expr
        while isinstance(node, Step):
            if node.dtype is not None:
                return np.dtype(node.dtype)
            node = node.child
        return np.dtype(node.dtype)

    @property
    def steps(self) -> list[Step]:
        out, node = [], self._expr
        while isinstance(node, Step):
            out.append(node)
            node = node.child
        return out[::-1]

    def __repr__(self) -> str:
        return f"<LazyImage shape={self.shape} dtype={self.dtype} steps={len(self.steps)}>"

    # -- building -------------------------------------------------------------------------
    def _step(
        self,
        transform,
        output_shape,
        options,
        output_chunks,
        output,
        label,
        operation,
        grid=None,
        batch=(),
    ) -> LazyImage:
        own_shape = getattr(transform, "output_shape", None)
        if own_shape is not None:  # maps defined on their own output grid (CoordinateMap)
            if output_shape is not None and tuple(output_shape) != tuple(own_shape):
                raise ValueError(
                    f"output_shape={tuple(output_shape)} differs from the transform's own "
                    f"output grid {tuple(own_shape)}"
                )
            output_shape = check_output_shape(own_shape)
        else:
            output_shape = check_output_shape(
                self.shape if output_shape is None else output_shape, self.ndim
            )
        if output_chunks is not None:
            check_chunks(output_chunks, output_shape)
        step = Step(
            self._expr,
            transform,
            output_shape,
            options,
            output_chunks,
            _out_dtype(output, self.dtype),
            label,
            operation,
            batch_axes=tuple(batch),
        )
        if grid is None:
            grid = self._same_map_grid(output_shape)
        return self._derive(step, grid)

    def transform(
        self,
        transform: Transform,
        output_shape=None,
        order=3,
        mode="constant",
        cval=0.0,
        prefilter=True,
        output_chunks=None,
        output=None,
    ) -> LazyImage:
        """Resample through ``transform`` (a pull map: output coordinates -> input).

        ``lazy(x).transform(T).compute()`` equals
        ``scipy.ndimage.affine_transform(x, T.matrix())``.

        Parameters
        ----------
        transform : Transform
        output_shape : tuple of int, optional
            Default: the current shape.
        order : int
            Spline order 0-5.
        mode : str
            One of scipy.ndimage's eight boundary modes.
        cval : float
            Value outside the input for ``constant``/``grid-constant``.
        prefilter : bool
            Convert the input to spline coefficients first (exact on chunked data).
        output_chunks : int or tuple, optional
            Default: the input's chunk size.
        output : dtype, optional
            Output dtype (default: the input's).

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> x = np.zeros((5, 5)); x[1, 2] = 1
        >>> y = transfuse.lazy(x).transform(transfuse.Translate((1, 0)), order=0).compute()
        >>> int(y[0, 2])
        1
        """
        if not isinstance(transform, Transform):
            raise ValueError(f"transform={transform!r} is not a transfuse Transform")
        transform.resolve_ndim(self.ndim)
        return self._step(
            transform,
            output_shape,
            _options(order, mode, cval, prefilter),
            output_chunks,
            output,
            "",
            "transform",
        )

    def resample(
        self,
        transform: Transform | None = None,
        onto=None,
        space="physical",
        order=3,
        mode="constant",
        cval=0.0,
        prefilter=True,
        output_chunks=None,
        output=None,
    ) -> LazyImage:
        """Resample onto a grid through a transform given in physical space (ITK's
        convention) or in index space.

        With ``space="physical"``, ``transform`` pulls output *physical* points to input
        physical points, and the index-space map the planner fuses is::

            self.grid.to_index() @ transform @ onto.to_physical()

        so a chain of affine steps is still one matrix and one pass. With
        ``space="index"``, ``transform`` is an index-space pull map (output index -> input
        index) and ``onto`` only sets the output grid.

        Parameters
        ----------
        transform : Transform, optional
            The pull map (default: the identity, i.e. just change the grid).
        onto : Grid, LazyImage or xarray.DataArray, optional
            The output grid (an image: its grid). Default: this image's grid. An image
            with ``c``/``t`` axes may be given a grid of its spatial axes only.
        space : {"physical", "index"}
            Which coordinates ``transform`` maps.
        order, mode, cval, prefilter, output_chunks, output
            As for :meth:`transform`.

        Returns
        -------
        LazyImage
            On the grid ``onto`` (``result.grid``).

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> x = np.arange(16.0).reshape(4, 4)
        >>> img = transfuse.lazy(x, grid=transfuse.Grid((4, 4), spacing=2.0))
        >>> fine = transfuse.Grid((7, 7), spacing=1.0)  # the same extent, twice the samples
        >>> y = img.resample(onto=fine, order=1)
        >>> y.grid.shape, float(y.compute()[1, 0])
        ((7, 7), 2.0)
        >>> len(y.plan().passes)
        1
        """
        pull, target, batch = resample_pull(self.grid, transform, onto, space)
        out = self._step(
            pull,
            target.shape,
            _options(order, mode, cval, prefilter),
            output_chunks,
            output,
            f"resample(space={space!r}, onto shape={target.shape})",
            "transform",
            target,
            batch,
        )
        out._has_grid = self._has_grid or onto is not None  # the user chose this grid
        return out

    def affine_transform(
        self,
        matrix,
        offset=0.0,
        output_shape=None,
        order=3,
        mode="constant",
        cval=0.0,
        prefilter=True,
        output_chunks=None,
        output=None,
    ) -> LazyImage:
        """As :func:`scipy.ndimage.affine_transform` (matrix forms (n,), (n, n), (n, n+1),
        (n+1, n+1); with the last two the offset column wins over ``offset``, as in scipy).

        Examples
        --------
        >>> import numpy as np, scipy.ndimage as ndi, transfuse
        >>> x = np.random.default_rng(0).random((6, 7))
        >>> m = [[0.9, 0.2], [-0.1, 1.1]]
        >>> np.allclose(transfuse.lazy(x).affine_transform(m, 0.5).compute(),
        ...             ndi.affine_transform(x, m, 0.5))
        True
        """
        opts = _options(order, mode, cval, prefilter)
        arr = np.asarray(matrix) if not hasattr(matrix, "free_symbols") else matrix
        rank = None if output_shape is None or np.ndim(output_shape) == 0 else len(output_shape)
        if rank is not None and rank < self.ndim and getattr(arr, "ndim", 2) == 2:
            return self._rank_changing(arr, offset, output_shape, opts, output_chunks, output, rank)
        if getattr(arr, "ndim", 2) == 2 and arr.shape[1] == self.ndim + 1:
            if np.ndim(offset) != 0 or offset != 0:
                warnings.warn(
                    "offset is ignored: matrix has an offset column (as in scipy)", stacklevel=2
                )
            offset = 0.0
        transform = Affine(matrix, offset, ndim=self.ndim)
        if getattr(arr, "ndim", 2) == 1 and transform.free_symbols == frozenset():
            diag = np.asarray(arr, dtype=np.float64)
            if np.any(diag == 0):
                raise ValueError(
                    f"matrix={list(diag)} has a zero entry; a 1-D matrix scales "
                    "each axis and must not be 0"
                )
            off = np.broadcast_to(np.asarray(offset, dtype=np.float64), diag.shape)
            # scipy computes c = (o + offset / matrix) * matrix, axis by axis
            transform = Scale(tuple(diag.tolist())) @ Translate(tuple((off / diag).tolist()))
        return self._step(
            transform,
            output_shape,
            opts,
            output_chunks,
            output,
            f"affine_transform(offset={np.asarray(offset).tolist()})",
            "affine_transform",
        )

    def _rank_changing(self, matrix, offset, output_shape, opts, output_chunks, output, rank):
        """scipy's ``(n_in, n_out)`` / ``(n_in, n_out + 1)`` matrices with an output of rank
        ``n_out < n_in``: the matrix padded with zero columns to a square one, resampled on
        a grid with trailing axes of 1 that a view drops (the zeros add exactly nothing)."""
        m = np.asarray(matrix, dtype=np.float64)
        n_in = self.ndim
        if m.shape[0] != n_in or m.shape[1] not in (rank, rank + 1):
            raise ValueError(
                f"matrix has shape {m.shape}: an output of rank {rank} from a {n_in}-D image "
                f"needs ({n_in}, {rank}) or ({n_in}, {rank + 1})"
            )
        if m.shape[1] == rank + 1:
            if np.ndim(offset) != 0 or offset != 0:
                warnings.warn(
                    "offset is ignored: matrix has an offset column (as in scipy)", stacklevel=3
                )
            m, offset = m[:, :rank], m[:, rank]
        square = np.zeros((n_in, n_in))
        square[:, :rank] = m
        full_shape = tuple(output_shape) + (1,) * (n_in - rank)
        chunks = None
        if output_chunks is not None:
            chunks = check_chunks(output_chunks, check_output_shape(output_shape, rank))
            chunks = tuple(chunks) + ((1,),) * (n_in - rank)
        step = self._step(
            Affine(square, offset, ndim=n_in),
            full_shape,
            opts,
            chunks,
            output,
            f"affine_transform(matrix {m.shape[0]}x{rank}, offset={np.asarray(offset).tolist()})",
            "affine_transform",
        )
        return step[(Ellipsis, *(0,) * (n_in - rank))]

    def rotate(
        self,
        angle,
        axes=(1, 0),
        reshape=True,
        order=3,
        mode="constant",
        cval=0.0,
        prefilter=True,
        output_chunks=None,
        output=None,
    ) -> LazyImage:
        """As :func:`scipy.ndimage.rotate`: ``angle`` degrees in the plane of ``axes`` about
        the image centre; ``reshape`` grows the output to hold the whole input.

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> transfuse.lazy(np.ones((10, 20))).rotate(90).shape
        (20, 10)
        """
        if self.ndim < 2:
            raise ValueError("rotate needs an image of at least 2 dimensions")
        axes = _plane_axes(axes, self.ndim)
        if not isinstance(angle, numbers.Real) or isinstance(angle, bool | np.bool_):
            raise ValueError(f"angle={angle!r} must be a finite number")
        if not np.isfinite(angle):
            raise ValueError(f"angle={angle!r} must be a finite number")
        angle = float(angle)
        c, s = special.cosdg(angle), special.sindg(angle)
        rot = np.array([[c, s], [-s, c]])
        img_shape = np.asarray(self.shape)
        in_plane = img_shape[axes]
        if reshape:
            iy, ix = in_plane
            bounds = rot @ [[0, 0, iy, iy], [0, ix, 0, ix]]
            out_plane = (np.ptp(bounds, axis=1) + 0.5).astype(int)
        else:
            out_plane = in_plane
        out_shape = img_shape.copy()
        out_shape[axes] = out_plane
        center = np.zeros(self.ndim)
        out_center = np.zeros(self.ndim)
        center[axes] = (in_plane - 1) / 2
        out_center[axes] = (out_plane - 1) / 2
        # scipy's pull matrix for the plane (a0, a1) is [[cos, sin], [-sin, cos]]: Rotate's
        # for axes (a1, a0)
        transform = Rotate(
            angle,
            axes=(axes[1], axes[0]),
            center=tuple(center.tolist()),
            ndim=self.ndim,
            output_center=tuple(out_center.tolist()),
        )
        label = f"rotate({angle:g}, axes={tuple(axes)}, reshape={reshape})"
        return self._step(
            transform,
            tuple(int(v) for v in out_shape),
            _options(order, mode, cval, prefilter),
            output_chunks,
            output,
            label,
            "rotate",
        )

    def zoom(
        self,
        zoom,
        order=3,
        mode="constant",
        cval=0.0,
        prefilter=True,
        *,
        grid_mode=False,
        output_chunks=None,
        output=None,
    ) -> LazyImage:
        """As :func:`scipy.ndimage.zoom` (output shape ``round(shape * zoom)``).

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> transfuse.lazy(np.ones((4, 6))).zoom(2).shape
        (8, 12)
        """
        factors = _per_axis(zoom, self.ndim, "zoom", positive=True)
        out_shape = tuple(int(round(n * z)) for n, z in zip(self.shape, factors, strict=True))
        check_output_shape(out_shape, self.ndim, name="round(shape * zoom)")
        opts = _options(order, mode, cval, prefilter)
        if np.all(factors == 1) and prefilter:
            return self  # scipy returns the input unchanged (gh-20999)
        nin = np.array(self.shape, dtype=np.int64)
        nout = np.array(out_shape, dtype=np.int64)
        if not grid_mode:
            nin, nout = nin - 1, nout - 1
        ratio = np.divide(nin, nout, out=np.ones(self.ndim), where=nout != 0)
        label = f"zoom({np.asarray(zoom).tolist()}{', grid_mode=True' if grid_mode else ''})"
        if grid_mode:  # scipy: c = (o + 0.5) * ratio - 0.5
            transform = Translate((-0.5,) * self.ndim) @ Scale(tuple(ratio.tolist()))
            transform = transform @ Translate((0.5,) * self.ndim)
            start = 0.5 * ratio - 0.5
        else:
            transform = Scale(tuple(ratio.tolist()))
            start = np.zeros(self.ndim)
        grid = self._zoom_grid(start, ratio, out_shape)
        return self._step(transform, out_shape, opts, output_chunks, output, label, "zoom", grid)

    def _zoom_grid(self, start, ratio, shape):
        if isinstance(self._grid, str):
            return self._grid
        return zoom_grid(self.grid, start, ratio, shape)

    def shift(
        self,
        shift,
        order=3,
        mode="constant",
        cval=0.0,
        prefilter=True,
        output_chunks=None,
        output=None,
    ) -> LazyImage:
        """As :func:`scipy.ndimage.shift`: content moves by ``shift`` samples.

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> transfuse.lazy(np.arange(5.0)).shift(2, order=0).compute()
        array([0., 0., 0., 1., 2.])
        """
        vec = _per_axis(shift, self.ndim, "shift")
        transform = Translate(tuple(-vec))
        return self._step(
            transform,
            None,
            _options(order, mode, cval, prefilter),
            output_chunks,
            output,
            f"shift({vec.tolist()})",
            "shift",
        )

    def flip(self, axes, order=0, mode="constant", cval=0.0, output_chunks=None) -> LazyImage:
        """Reverse the image along ``axes`` (like ``np.flip``), as a fusable step."""
        from .transforms import Flip

        axes = (axes,) if np.ndim(axes) == 0 else tuple(axes)
        for a in axes:
            if isinstance(a, bool | np.bool_) or not isinstance(a, numbers.Integral):
                raise ValueError(f"axes={axes!r} must be integers")
            if not -self.ndim <= a < self.ndim:
                raise ValueError(f"axes={axes!r}: axis {a} is out of range for {self.ndim} axes")
        axes = tuple(int(a) % self.ndim for a in axes)
        centers = tuple((self.shape[a] - 1) / 2 for a in axes)
        return self.transform(
            Flip(axes, center=centers, ndim=self.ndim),
            order=order,
            mode=mode,
            cval=cval,
            output_chunks=output_chunks,
        )

    # -- views ----------------------------------------------------------------------------
    def __getitem__(self, key) -> LazyImage:
        """A lazy view: ``img[40]``, ``img[:, 100:300, ::2]``, ``img[..., 5]``.

        The selection is composed into the plan: only the selected points are computed and
        only the input chunks they touch are read. An integer drops its axis (an oblique
        slice of a rotated volume is one 2-D resample); slices may have steps, negative
        ones included. Values equal the full result's at the same points (bit for bit at
        orders 0 and 1).

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> x = np.random.default_rng(0).random((30, 40, 50))
        >>> img = transfuse.lazy(x, chunks=10).rotate(30, axes=(1, 2), order=1)
        >>> plane = img[12, :, ::2]
        >>> plane.shape
        (60, 32)
        >>> bool((plane.compute() == img.compute()[12, :, ::2]).all())
        True
        """
        view, shape = _grid_view(key, self.shape)
        grid = self._view_grid(view)
        meta = self._xarray_meta
        if meta is not None and meta.batch and not isinstance(self._grid, str):
            from .xarrays import select_batch

            meta = select_batch(meta, self.grid.axes, view.index())
        if not self.steps:  # nothing to resample: a view of the input itself
            sub = lazy(self._array[view.index()])
            return LazyImage(sub._expr, sub._array, grid, self._has_grid, meta)
        step = self._expr
        full = step.view.compose(view) if step.view is not None else view
        chunks = _view_chunks(view, step, self._array)
        new = dataclasses.replace(step, view=full, output_shape=shape, output_chunks=chunks)
        out = self._derive(new, grid)
        out._xarray_meta = meta
        return out

    def _view_grid(self, view):
        if isinstance(self._grid, str):
            return self._grid
        try:
            return view_grid(self.grid, view)
        except ValueError as exc:  # an oblique plane: the view computes, its grid is unknown
            return f"this view has no grid: {exc}"

    def preview(self, max_size: int = 256, executor=None) -> np.ndarray:
        """A cheap look at the result: every ``k``-th point per axis so that no axis has
        more than ``max_size`` points, computed through a view (only those points).

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> img = transfuse.lazy(np.ones((1000, 600)), chunks=200).rotate(10, order=1)
        >>> img.preview(max_size=100).shape
        (99, 96)
        """
        if isinstance(max_size, bool) or not isinstance(max_size, numbers.Integral):
            raise ValueError(f"max_size={max_size!r} must be a positive integer")
        if max_size < 1:
            raise ValueError(f"max_size={max_size!r} must be a positive integer")
        steps = tuple(slice(None, None, max(1, -(-n // max_size))) for n in self.shape)
        return self[steps].compute(executor=executor)

    def bind(self, **values) -> LazyImage:
        """Bind free symbols of every step (see :meth:`transfuse.Transform.bind`)."""
        free = {s.name for step in self.steps for s in step.transform.free_symbols}
        unknown = sorted(set(values) - free)
        if unknown:
            raise ValueError(
                f"bind(): {', '.join(unknown)} not among the free symbols {sorted(free)}"
            )

        def rebind(node):
            if not isinstance(node, Step):
                return node
            names = {s.name for s in node.transform.free_symbols}
            mine = {k: v for k, v in values.items() if k in names}
            t = node.transform.bind(**mine) if mine else node.transform
            return dataclasses.replace(node, child=rebind(node.child), transform=t)

        return self._derive(rebind(self._expr), self._grid)

    # -- results --------------------------------------------------------------------------
    def plan(self):
        """Plan the pending steps (see :func:`transfuse.plan`)."""
        return plan(self)

    def explain(self, stage: str = "all", executor=None) -> str:
        """The plan as text, for one planner stage (``"logical"``, ``"fused"``,
        ``"physical"``) or all of them (see :meth:`transfuse.planner.Plan.explain`), and
        which kernel the backend runs each pass with: ``executor`` (any stage), by default
        the default backend (stages ``"physical"`` and ``"all"``); ``executor=False``
        leaves that out.

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> img = transfuse.lazy(np.zeros((8, 8)), chunks=4).rotate(10, order=3)
        >>> img.explain("fused", executor="scipy").splitlines()[-1]
        'backend scipy: pass 1 runs scipy.ndimage per chunk'
        >>> import dask
        >>> with dask.config.set({"transfuse.cold_start_voxels": 0}):  # see executors.cold_start
        ...     img.explain(executor="cpu").splitlines()[-1]  # doctest: +ELLIPSIS
        'backend cpu: pass 1 runs compiled kernel: matrix map, order 3, mode constant, 2-D...'
        """
        plan = self.plan()
        text = plan.explain(stage)
        if executor is False or (executor is None and stage not in ("all", "physical")):
            return text
        backend = get_executor(executor)
        describe = getattr(backend, "describe", None)
        lines = [text]
        for k, p in enumerate(plan.passes, 1):
            how = describe(p) if describe is not None else "(the backend does not say)"
            lines.append(f"backend {backend.name}: pass {k} runs {how}")
        return "\n".join(lines)

    def to_dask(self, executor=None) -> da.Array:
        """The result as a dask array (one graph: prefilter + one resampling layer per pass).

        Parameters
        ----------
        executor : str or executor instance, optional
            The backend doing the per-chunk work: ``"scipy"`` (reference), ``"cpu"``
            (compiled kernels where they apply), ``"null"`` (records, computes nothing).
            Default: dask config ``transfuse.executor``, else ``"cpu"``.
        """
        if not self.steps:
            return self._array
        backend = get_executor(executor)
        with paused_gc():
            return to_dask(self.plan(), self._array, backend, share_map=self._share_map)

    def _one_array(self, executor, compute_kwargs):
        """A dask collection computing the result into one array
        (:func:`.executors.in_memory.into_collection`), or None where that does not apply:
        no step, a custom ``get``, a scheduler outside this process (``compute_kwargs``
        are those given to dask's ``compute``)."""
        if not self.steps or compute_kwargs.get("get") is not None:
            return None
        from .executors.in_memory import into_collection

        backend = get_executor(executor)
        scheduler = compute_kwargs.get("scheduler")
        return into_collection(self.plan(), self._array, backend, self._share_map, scheduler)

    def compute(self, executor=None, progress=False, **kwargs):
        """Compute the result (``executor`` as for :meth:`to_dask`; ``progress=True`` shows
        dask's progress bar, see :mod:`transfuse.progress`; other keyword arguments go to
        dask's ``compute``): a numpy array, or, for an image built from an xarray
        DataArray, a DataArray on the output grid (see :meth:`to_xarray`).

        On dask's threaded or synchronous scheduler the chunks are written straight into
        the array returned (:mod:`transfuse.executors.in_memory`: no concatenation); the
        values are those of ``to_dask().compute()``, bit for bit."""
        from .executors.scheduling import local_scheduler
        from .progress import progress_bar

        if kwargs.get("get") is None:
            scheduler = local_scheduler(kwargs.get("scheduler"))
            if scheduler is not None:
                kwargs["scheduler"] = scheduler
        with progress_bar(progress):
            one = self._one_array(executor, kwargs)
            values = (self.to_dask(executor) if one is None else one).compute(**kwargs)
        if self._xarray_meta is None:
            return values
        from .xarrays import to_dataarray

        return to_dataarray(values, self.grid, self._xarray_meta)

    def to_xarray(self, executor=None):
        """The result as a lazy (dask-backed) xarray DataArray: the output grid's
        coordinates (axis-aligned grids only), units as coordinate ``attrs["units"]``, and
        the input DataArray's ``attrs`` and ``name`` when there was one.

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> g = transfuse.Grid((4, 4), spacing=0.5, origin=(1.0, 0.0), units="mm")
        >>> a = transfuse.lazy(np.ones((4, 4)), grid=g).zoom(2, order=0).to_xarray()
        >>> a.dims, a.coords["y"].attrs["units"], a.shape
        (('y', 'x'), 'mm', (8, 8))
        """
        from .xarrays import to_dataarray

        return to_dataarray(self.to_dask(executor), self.grid, self._xarray_meta)

    def to_zarr(
        self, path, *, overwrite=False, scheduler="threads", num_workers=None, executor=None
    ) -> None:
        """Compute the result into a new zarr (v3) array at ``path``, chunk by chunk.

        Each task reads the input chunks its output chunk needs and writes that chunk; a
        zarr (or any lazily read) input is streamed, so memory stays near the working set
        of the tasks running at once (``num_workers`` of them; see docs/cluster.md), not
        the image. All or nothing: the array is written under a temporary name beside
        ``path`` and renamed into place when complete (see
        :func:`transfuse.io.arrays.write_image`).

        Parameters
        ----------
        path : str or Path
            A ``.zarr`` path (``image.zarr``, or an array inside a store, ``image.zarr/0``);
            the zarr chunks are the output chunks.
        overwrite : bool
            Replace an existing ``path``.
        scheduler : str or None
            ``"threads"`` (default), ``"processes"``, ``"synchronous"``, or None for
            dask's current default (a ``distributed.Client`` once one is made: the same
            job then runs on a cluster, the workers writing their chunks).
        num_workers : int, optional
            Threads or processes of a local scheduler.
        executor : optional
            As for :meth:`to_dask`.

        Raises
        ------
        ValueError
            If ``path`` is not a ``.zarr`` path.
        transfuse.io.arrays.ImageFileError
            If ``path`` exists (without ``overwrite``) or its directory does not.

        Examples
        --------
        >>> import os, tempfile, zarr
        >>> out = os.path.join(tempfile.mkdtemp(), "rotated.zarr")
        >>> lazy(np.ones((40, 40)), chunks=16).rotate(30, order=1).to_zarr(out)
        >>> z = zarr.open_array(out, mode="r")
        >>> z.shape, z.chunks
        ((55, 55), (16, 16))
        """
        from .io.arrays import image_format, write_image

        if image_format(path) != "zarr":
            raise ValueError(f"path={str(path)!r} must be a .zarr path (image.zarr)")
        write_image(
            self.to_dask(executor),
            path,
            overwrite=overwrite,
            scheduler=scheduler,
            num_workers=num_workers,
        )

    def _repr_html_(self) -> str:
        from .display import lazy_html

        return lazy_html(self)
