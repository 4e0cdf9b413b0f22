"""Drop-in replacement for :mod:`dask_image.ndinterp`, exact against :mod:`scipy.ndimage`.

The five functions take the arguments of their dask_image namesakes (same names, same
defaults, except ``prefilter``) and return dask arrays. Each is a thin layer over the lazy API
(:func:`transfuse.lazy`): the pipeline is planned when the function is called, so invalid
arguments raise then, and computing gives what the scipy.ndimage function of the same name
gives on the whole array, for every boundary mode and spline orders 0-5.

Differences from dask_image, all on purpose:

* ``prefilter`` defaults to True, as in scipy: the chunked prefilter is exact here (halos
  deep enough for 1e-10), where dask_image skips it or filters each chunk on its own.
* Every mode is supported, also with ``prefilter=True``; arrays smaller than the halo work.
* ``output`` (a dtype) is honoured; the result keeps the input dtype otherwise, as in scipy.
* ``affine_transform`` chunks its output like the input by default (dask_image: one chunk).
* Unknown keyword arguments raise TypeError (dask_image ignores them silently).
* Invalid arguments raise :class:`NDInterpError`, a ValueError that is also a RuntimeError
  (scipy and dask_image raise RuntimeError for some of them, ValueError for others).
* Non-finite matrices, offsets or coordinates are rejected (scipy computes NaNs).
* ``spline_filter`` with order 0 or 1 returns the input converted to ``output`` (what
  ``spline_filter1d`` along every axis gives, and what scipy's ``spline_filter1d`` does);
  scipy's ``spline_filter`` raises RuntimeError there, dask_image's raises KeyError.
* ``output_chunks`` of the spline filters is honoured (dask_image ignores it).
* ``affine_transform`` takes scipy's rank-changing ``(ndim, n_out)`` matrices (and
  ``(ndim, n_out + 1)`` with an offset column) with an ``output_shape`` of rank ``n_out``.
* ``depth`` of ``spline_filter`` may be one number, one per axis or ``{axis: depth}`` as in
  dask_image; the largest is used on every axis (a deeper halo is only more exact).
  ``spline_filter1d`` takes one number, as dask_image requires.
* Every function takes ``executor=`` (a keyword dask_image does not have): the backend
  doing the per-chunk work (see :mod:`transfuse.executors`).

Inputs may be numpy arrays, dask arrays, or cupy arrays / cupy-backed dask arrays. cupy
inputs run on the ``"gpu"`` backend (cupy blocks in and out) unless ``executor=`` names
another backend, which computes on the host and converts the result back to cupy blocks;
coordinate arrays (``map_coordinates``) are read on the host. Complex inputs are resampled as their
real and imaginary parts, as scipy does.
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
import warnings

import dask.array as da
import numpy as np

from .executors import get_executor, spline_coefficients
from .executors.spline import halo_depth
from .lazy import lazy
from .planner.options import ResampleOptions, check_chunks
from .transforms.nonlinear import CoordinateMap

__all__ = [
    "NDInterpError",
    "affine_transform",
    "map_coordinates",
    "rotate",
    "spline_filter",
    "spline_filter1d",
]


class NDInterpError(ValueError, RuntimeError):
    """An invalid argument, raised when the graph is built.

    A ValueError (transfuse's convention) that is also a RuntimeError (what scipy.ndimage and
    dask_image raise for bad orders and matrix shapes), so code written for either catches it.

    Examples
    --------
    >>> import numpy as np
    >>> try:
    ...     affine_transform(np.zeros((4, 4)), np.eye(2), order=7)
    ... except RuntimeError as exc:
    ...     isinstance(exc, ValueError)
    True
    """


@contextlib.contextmanager
def _argument_errors():
    try:
        yield
    except NDInterpError:
        raise
    except ValueError as exc:
        raise NDInterpError(str(exc)) from exc


# -- array types ----------------------------------------------------------------------------


def _is_cupy(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "cupy"


def _to_cupy(result: da.Array) -> da.Array:
    cp = importlib.import_module("cupy")
    meta = cp.empty((0,) * result.ndim, dtype=result.dtype)
    return result.map_blocks(cp.asarray, dtype=result.dtype, meta=meta)


def _same(result):
    return result


def _is_cupy_input(x) -> bool:
    return _is_cupy(x._meta) if isinstance(x, da.Array) else _is_cupy(x)


def _backend(executor, x):
    """The backend ``executor`` names; for a cupy input the default is ``"gpu"``."""
    if executor is None and _is_cupy_input(x):
        executor = "gpu"
    return get_executor(executor)


def _as_dask(x, name="image", backend=None):
    """``(dask array, function that turns a result back into x's kind)``: numpy blocks,
    except that a cupy input keeps its cupy blocks for the ``"gpu"`` backend."""
    on_device = getattr(backend, "name", None) == "gpu" and _is_cupy_input(x)
    if on_device:
        return (x if isinstance(x, da.Array) else da.from_array(x, asarray=False)), _same
    if isinstance(x, da.Array):
        if _is_cupy(x._meta):
            cp = importlib.import_module("cupy")
            meta = np.empty((0,) * x.ndim, dtype=x.dtype)
            return x.map_blocks(cp.asnumpy, dtype=x.dtype, meta=meta), _to_cupy
        return x, _same
    if _is_cupy(x):
        return da.from_array(importlib.import_module("cupy").asnumpy(x)), _to_cupy
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise NDInterpError(f"{name} must be an array, got {type(x).__name__}") from exc
    return da.from_array(arr), _same


def _host(value):
    """A cupy matrix/offset as numpy; anything else unchanged."""
    return importlib.import_module("cupy").asnumpy(value) if _is_cupy(value) else value


def _coordinates(coordinates):
    if isinstance(coordinates, da.Array):
        if _is_cupy(coordinates._meta):
            cp = importlib.import_module("cupy")
            meta = np.empty((0,) * coordinates.ndim, dtype=coordinates.dtype)
            return coordinates.map_blocks(cp.asnumpy, dtype=coordinates.dtype, meta=meta)
        return coordinates
    if _is_cupy(coordinates):
        return importlib.import_module("cupy").asnumpy(coordinates)
    try:
        return np.asarray(coordinates)
    except (TypeError, ValueError) as exc:
        raise NDInterpError("coordinates must be an array of real numbers") from exc


# -- dtypes, complex values, keyword arguments ----------------------------------------------


def _output_dtype(output, input_dtype, default=None):
    """The result dtype: ``output`` (a dtype) or, when None, ``default`` or the input's."""
    if output is None:
        return np.dtype(default if default is not None else input_dtype)
    if not isinstance(output, type | np.dtype | str) and hasattr(output, "shape"):
        raise NDInterpError(
            "output must be a dtype; output arrays cannot be filled by a dask computation"
        )
    try:
        dt = np.dtype(output)
    except TypeError as exc:
        raise NDInterpError(f"output={output!r} is not a numpy dtype") from exc
    if dt.kind not in "biufc":
        raise NDInterpError(f"output={output!r} must be a numeric dtype")
    return dt


def _real_dtype(dt: np.dtype) -> np.dtype:
    return np.empty(0, dtype=dt).real.dtype


def _by_parts(build, arr: da.Array, cval, out_dtype: np.dtype) -> da.Array:
    """``build(part, cval, dtype)`` for a real array, or per real/imaginary part."""
    if arr.dtype.kind != "c":
        if out_dtype.kind == "c":
            return build(arr, cval, _real_dtype(out_dtype)).astype(out_dtype)
        if isinstance(cval, complex | np.complexfloating):
            raise NDInterpError(f"cval={cval!r} must be real for a real-valued input")
        return build(arr, cval, out_dtype)
    if out_dtype.kind != "c":
        warnings.warn("promoting specified output dtype to complex", stacklevel=3)  # as scipy
        out_dtype = np.promote_types(out_dtype, np.complex64)
    part_dtype = _real_dtype(out_dtype)
    cval = complex(cval)
    real = build(arr.real, cval.real, part_dtype)
    imag = build(arr.imag, cval.imag, part_dtype)
    return (real + 1j * imag).astype(out_dtype)


_INTERP_KWARGS = ("mode", "cval", "prefilter", "output", "executor")


def _interp_kwargs(func: str, kwargs: dict, allowed=_INTERP_KWARGS, image=None) -> dict:
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{func}() got an unexpected keyword argument {unknown[0]!r}")
    return {
        "mode": kwargs.get("mode", "constant"),
        "cval": kwargs.get("cval", 0.0),
        "prefilter": kwargs.get("prefilter", True),
        "output": kwargs.get("output"),
        "executor": _backend(kwargs.get("executor"), image),
    }


def _real_cval(cval):
    return cval.real if isinstance(cval, complex | np.complexfloating) else cval


# -- resampling -------------------------------------------------------------------------------


def affine_transform(
    image,
    matrix,
    offset=0.0,
    output_shape=None,
    order=1,
    output_chunks=None,
    **kwargs,
):
    """Apply an affine transform, as :func:`scipy.ndimage.affine_transform`, on a dask array.

    Every output chunk is one task that reads only the input chunks its footprint touches;
    with ``order > 1`` and ``prefilter=True`` (the default) the input is first converted to
    B-spline coefficients chunk by chunk, exactly (to 1e-10), for every mode.

    Parameters
    ----------
    image : array_like (numpy, dask, cupy)
        The input array.
    matrix : array, shape (ndim,), (ndim, ndim), (ndim, ndim+1) or (ndim+1, ndim+1)
        The pull matrix: output coordinate ``o`` reads the input at ``matrix @ o + offset``.
        A 1-D matrix scales each axis; the last two forms carry the offset in their last
        column (``offset`` is then ignored).
    offset : float or sequence, optional
        The offset into the input, one value or one per axis.
    output_shape : tuple of ints, optional
        Shape of the result (default: the input's).
    order : int, optional
        Spline order 0-5. Default 1 (as in dask_image; scipy's default is 3).
    output_chunks : int or tuple, optional
        Chunks of the result. Default: the input's chunk size (dask_image: one chunk).
    **kwargs
        ``mode`` (any of scipy's eight, default ``'constant'``), ``cval`` (default 0.0),
        ``prefilter`` (default True, as in scipy: exact here; dask_image defaults to False),
        ``output`` (a dtype; default the input's).

    Returns
    -------
    dask.array.Array
        ``scipy.ndimage.affine_transform(image, matrix, offset, output_shape, order=order,
        **kwargs)``, computed lazily.

    Raises
    ------
    NDInterpError
        (ValueError and RuntimeError) for a malformed matrix or offset, a bad order, mode,
        ``cval`` or output shape — when called, not when computed.
    TypeError
        For an unknown keyword argument.

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.ndimage as ndi
    >>> x = np.random.default_rng(0).random((40, 50))
    >>> m = [[0.9, 0.3], [-0.2, 1.1]]
    >>> y = affine_transform(da.from_array(x, chunks=16), m, offset=2.5, order=3, mode="wrap")
    >>> y.chunks[0]
    (16, 16, 8)
    >>> np.allclose(y.compute(), ndi.affine_transform(x, m, 2.5, order=3, mode="wrap"))
    True
    """
    opts = _interp_kwargs("affine_transform", kwargs, image=image)
    arr, back = _as_dask(image, backend=opts["executor"])
    out_dtype = _output_dtype(opts["output"], arr.dtype)

    def build(part, cval, dtype):
        return (
            lazy(part)
            .affine_transform(
                _host(matrix),
                _host(offset),
                output_shape,
                order,
                opts["mode"],
                cval,
                opts["prefilter"],
                output_chunks,
                dtype,
            )
            .to_dask(opts["executor"])
        )

    with _argument_errors():
        return back(_by_parts(build, arr, opts["cval"], out_dtype))


def rotate(
    input_arr,
    angle,
    axes=(1, 0),
    reshape=True,
    output_chunks=None,
    **kwargs,
):
    """Rotate an array, as :func:`scipy.ndimage.rotate`, on a dask array.

    Parameters
    ----------
    input_arr : array_like (numpy, dask, cupy)
        The input array (at least 2-D).
    angle : float
        Rotation angle in degrees.
    axes : tuple of 2 ints, optional
        The plane of rotation. Default: the first two axes.
    reshape : bool, optional
        Grow the output so that it holds the whole rotated input. Default True.
    output_chunks : int or tuple, optional
        Chunks of the result. Default: the input's chunk size.
    **kwargs
        ``order`` (default 1, as in dask_image), ``mode``, ``cval``, ``prefilter`` (default
        True: exact) and ``output`` (a dtype), as for :func:`affine_transform`.

    Returns
    -------
    dask.array.Array
        ``scipy.ndimage.rotate(input_arr, angle, axes, reshape, order=order, **kwargs)``,
        computed lazily.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi
    >>> x = np.random.default_rng(1).random((30, 20))
    >>> y = rotate(x, 30, output_chunks=16, order=3, mode="reflect")
    >>> y.shape == ndi.rotate(x, 30).shape
    True
    >>> np.allclose(y.compute(), ndi.rotate(x, 30, order=3, mode="reflect"))
    True
    """
    opts = _interp_kwargs("rotate", kwargs, (*_INTERP_KWARGS, "order"), image=input_arr)
    order = kwargs.get("order", 1)
    arr, back = _as_dask(input_arr, "input_arr", opts["executor"])
    out_dtype = _output_dtype(opts["output"], arr.dtype)

    def build(part, cval, dtype):
        return (
            lazy(part)
            .rotate(
                angle,
                axes,
                reshape,
                order,
                opts["mode"],
                cval,
                opts["prefilter"],
                output_chunks,
                dtype,
            )
            .to_dask(opts["executor"])
        )

    with _argument_errors():
        return back(_by_parts(build, arr, opts["cval"], out_dtype))


def map_coordinates(  # noqa: A002
    input, coordinates, order=3, mode="constant", cval=0.0, prefilter=True, *, executor=None
):
    """Sample ``input`` at ``coordinates``, as :func:`scipy.ndimage.map_coordinates`.

    The result is chunked like ``coordinates[0]``. Each output chunk is one task that reads
    its chunk of coordinates and only the input chunks those coordinates need (from a
    per-chunk minimum/maximum of the coordinates, computed once when this function is
    called). No task computes another graph, so ``coordinates`` may be a dask array larger
    than memory.

    Parameters
    ----------
    input : array_like (numpy, dask, cupy)
        The input array.
    coordinates : array_like or dask.array.Array, shape (input.ndim, ...)
        ``coordinates[:, i, j, ...]`` is where output point ``(i, j, ...)`` reads the input.
    order : int, optional
        Spline order 0-5, default 3.
    mode : str, optional
        Any of scipy.ndimage's eight boundary modes; default ``'constant'``.
    cval : float, optional
        Value outside the input for ``'constant'`` and ``'grid-constant'``. Default 0.0.
    prefilter : bool, optional
        Convert the input to spline coefficients first (``order > 1``). Default True, as in
        scipy: the chunked prefilter is exact here (dask_image defaults to False because its
        per-chunk filter is not).

    Returns
    -------
    dask.array.Array of shape ``coordinates.shape[1:]`` and the input's dtype.

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.ndimage as ndi
    >>> x = np.random.default_rng(2).random((20, 30))
    >>> c = np.random.default_rng(3).uniform(-3, 33, (2, 1000))
    >>> y = map_coordinates(da.from_array(x, chunks=8), da.from_array(c, chunks=(2, 250)),
    ...                     mode="mirror")
    >>> y.chunks
    ((250, 250, 250, 250),)
    >>> np.allclose(y.compute(), ndi.map_coordinates(x, c, mode="mirror"))
    True
    """
    backend = _backend(executor, input)
    arr, back = _as_dask(input, "input", backend)
    coords = _coordinates(coordinates)
    if coords.dtype.kind == "c":
        raise TypeError("complex coordinates are not supported (as in scipy)")
    if coords.dtype.kind not in "biuf":
        raise NDInterpError(f"coordinates must hold real numbers, got dtype {coords.dtype}")
    if coords.ndim < 2:
        raise NDInterpError("input and output rank must be > 0: coordinates need 2 dimensions")
    if coords.shape[0] != arr.ndim:
        raise NDInterpError(
            f"invalid shape for coordinate array: {tuple(coords.shape)}; the first axis must "
            f"have input.ndim={arr.ndim} entries"
        )
    out_shape = tuple(int(n) for n in coords.shape[1:])
    out_dtype = _output_dtype(None, arr.dtype)
    with _argument_errors():
        ResampleOptions(order=order, mode=mode, cval=_real_cval(cval), prefilter=prefilter)
        if 0 in out_shape:
            return back(da.empty(out_shape, dtype=out_dtype))
        cmap = CoordinateMap(coords)

        def build(part, cv, dtype):
            return (
                lazy(part)
                .transform(cmap, cmap.output_shape, order, mode, cv, prefilter, output=dtype)
                .to_dask(backend)
            )

        return back(_by_parts(build, arr, cval, out_dtype))


def _check_depth(depth, order: int, ndim: int, scalar_only: bool = False) -> int:
    """The halo: dask_image's forms (a number; for ``spline_filter`` also one per axis or
    ``{axis: depth}``), of which the largest is used for every filtered axis."""
    if depth is None:  # the depth the bound gives for the axes filtered together
        return halo_depth(order, ndim=1 if scalar_only else max(ndim, 1))
    if scalar_only and np.ndim(depth) != 0:
        raise NDInterpError(f"depth={depth!r} must be a scalar value (one axis is filtered)")
    if isinstance(depth, dict):
        bad = [k for k in depth if not isinstance(k, numbers.Integral) or not -ndim <= k < ndim]
        if bad:
            raise NDInterpError(f"depth={depth!r} has keys that are not axes of {ndim} dims")
        depth = list(depth.values())
    elif np.ndim(depth) != 0 and len(np.ravel(depth)) != ndim:
        raise NDInterpError(f"depth={depth!r} must have one entry per axis ({ndim})")
    values = [depth] if np.ndim(depth) == 0 else list(np.ravel(depth))
    out = []
    for v in values:
        if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral) or v < 0:
            raise NDInterpError(f"depth={depth!r} must be a non-negative integer")
        out.append(int(v))
    if not out:
        raise NDInterpError(f"depth={depth!r} must be a non-negative integer")
    return max(out)


def _spline_options(order, mode):
    with _argument_errors():
        return ResampleOptions(order=order, mode=mode, prefilter=True)


def _filter1d(arr: da.Array, opts: ResampleOptions, axis: int, depth: int, executor):
    """The 1-D spline filter of ``arr`` along ``axis``: the graph builder's prefilter layer
    with every other axis left alone (float64)."""
    others = tuple(a for a in range(arr.ndim) if a != axis)
    return spline_coefficients(arr, opts, depth=depth, pad=0, batch_axes=others, executor=executor)


def _finish(result: da.Array, output_chunks) -> da.Array:
    if output_chunks is None:
        return result
    with _argument_errors():
        return result.rechunk(check_chunks(output_chunks, result.shape))


def spline_filter1d(
    image,
    order=3,
    axis=-1,
    output=np.float64,
    mode="mirror",
    output_chunks=None,
    *,
    depth=None,
    executor=None,
    **kwargs,
):
    """The 1-D B-spline prefilter along ``axis``, as :func:`scipy.ndimage.spline_filter1d`.

    Chunked with halos taken from the mode's extension of the input, deep enough that every
    chunk equals scipy's whole-array result to 1e-10 (relative); axes shorter than four
    halos, or in one chunk, are filtered whole with scipy (exact). All modes, ``wrap``
    included; orders 0 and 1 return the input converted to ``output``, as in scipy.

    Parameters
    ----------
    image : array_like (numpy, dask, cupy)
    order : int, optional
        Spline order 0-5, default 3.
    axis : int, optional
        Axis to filter, default the last.
    output : dtype, optional
        Result dtype, default float64.
    mode : str, optional
        Boundary mode (scipy's eight), default ``'mirror'``.
    output_chunks : int or tuple, optional
        Chunks of the result (default: the input's).
    depth : int, optional
        Halo per side, overriding the default from
        :func:`transfuse.executors.spline.halo_depth` (15-37 samples for orders 2-5 in 3-D).
        A per-axis sequence or dict (as dask_image takes) counts by its largest value.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.ndimage as ndi
    >>> x = np.random.default_rng(4).random((8, 300))
    >>> y = spline_filter1d(da.from_array(x, chunks=(4, 64)), order=5, mode="wrap")
    >>> ref = ndi.spline_filter1d(x, 5, mode="wrap")
    >>> bool(np.abs(y.compute() - ref).max() < 1e-10 * np.abs(ref).max())
    True
    """
    if kwargs:
        raise TypeError(
            f"spline_filter1d() got an unexpected keyword argument {next(iter(kwargs))!r}"
        )
    backend = _backend(executor, image)
    arr, back = _as_dask(image, backend=backend)
    out_dtype = _output_dtype(output, arr.dtype, np.float64)
    opts = _spline_options(order, mode)
    depth = _check_depth(depth, opts.order, arr.ndim, scalar_only=True)
    if not isinstance(axis, numbers.Integral) or not -arr.ndim <= axis < arr.ndim:
        raise NDInterpError(f"axis={axis!r} is out of bounds for an array of {arr.ndim} dims")
    axis = int(axis) % arr.ndim

    def build(part, _cval, dtype):
        if opts.order < 2 or part.shape[axis] == 1:
            return part.astype(dtype)
        return _filter1d(part, opts, axis, depth, backend).astype(dtype)

    return back(_finish(_by_parts(build, arr, 0.0, out_dtype), output_chunks))


def spline_filter(
    image,
    order=3,
    output=np.float64,
    mode="mirror",
    output_chunks=None,
    *,
    depth=None,
    executor=None,
    **kwargs,
):
    """The n-D B-spline prefilter, as :func:`scipy.ndimage.spline_filter`.

    One layer of chunk tasks (each filters its chunk and a halo along every axis) when
    ``output`` is float64; for other dtypes, one layer per axis, each rounding to ``output``
    as scipy does between axes. Equal to scipy to 1e-10 (relative) for every mode,
    ``wrap`` included; orders 0 and 1 return the input converted to ``output``.

    Parameters
    ----------
    image : array_like (numpy, dask, cupy)
    order : int, optional
        Spline order 0-5, default 3.
    output : dtype, optional
        Result dtype, default float64.
    mode : str, optional
        Boundary mode (scipy's eight), default ``'mirror'``.
    output_chunks : int or tuple, optional
        Chunks of the result (default: the input's).
    depth : int, optional
        Halo per side, overriding the default (see :func:`spline_filter1d`).

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.ndimage as ndi
    >>> x = np.random.default_rng(5).random((100, 90))
    >>> y = spline_filter(da.from_array(x, chunks=32), order=3, mode="nearest")
    >>> ref = ndi.spline_filter(x, 3, mode="nearest")
    >>> bool(np.abs(y.compute() - ref).max() < 1e-10 * np.abs(ref).max())
    True
    """
    if kwargs:
        raise TypeError(
            f"spline_filter() got an unexpected keyword argument {next(iter(kwargs))!r}"
        )
    backend = _backend(executor, image)
    arr, back = _as_dask(image, backend=backend)
    out_dtype = _output_dtype(output, arr.dtype, np.float64)
    opts = _spline_options(order, mode)
    depth = _check_depth(depth, opts.order, arr.ndim)

    def build(part, _cval, dtype):
        if opts.order < 2 or part.ndim == 0:  # a 0-d input is its own spline (scipy)
            return part.astype(dtype)
        if dtype == np.float64:
            return spline_coefficients(part, opts, depth=depth, pad=0, executor=backend)
        current = part  # scipy rounds to the output dtype between axes
        for axis in range(part.ndim):
            if part.shape[axis] > 1:
                current = _filter1d(current, opts, axis, depth, backend).astype(dtype)
        return current.astype(dtype)

    return back(_finish(_by_parts(build, arr, 0.0, out_dtype), output_chunks))
