"""Chunked spline prefilter: B-spline coefficients of a chunked array, equal to scipy's
whole-array ``spline_filter`` (with its pre-padding) to a stated tolerance.

scipy's prefilter is a recursive (IIR) filter. Filtering a chunk together with a halo of
``d`` samples, taken from the mode's infinite extension of the input, reproduces the
whole-array result up to a constant times ``|z_max|**d`` (``z_max`` the filter's largest
pole; :func:`halo_error_bound` the worst case, :func:`halo_depth` the halo it asks for).
Short axes are filtered whole with scipy itself, which is exact by construction.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from ..planner.boundary import CVAL, filter_source_index

__all__ = [
    "POLE",
    "PrefilterSpec",
    "field_coefficients",
    "filter_axis_whole",
    "halo_depth",
    "float32_coefficients_allowed",
    "halo_error_bound",
    "prefilter_block",
]

#: Largest pole (in magnitude) of the B-spline prefilter per order.
POLE = {2: 0.171572875253810, 3: 0.267949192431123, 4: 0.361341225900220, 5: 0.430575347099973}

#: Default tolerance of the chunked prefilter, relative to max|input|.
TOLERANCE = 1e-10

#: Per order, the worst error of a 1-D halo window of ``d`` samples per side, relative to
#: max|input| and to ``POLE[order]**d``: the largest row sum of ``|chunked - whole|`` over
#: the rows kept (the linear maps measured on unit impulses; the same constant for every
#: ``d`` and kept length, the worse of the two starts in use, the compiled filter's zero
#: causal state and scipy's ``mirror`` initialisation of the window).
#: ``tests/executors/test_prefilter.py`` measures it again.
HALO_ERROR = {2: 1.18, 3: 2.54, 4: 5.18, 5: 9.37}

#: Per order, the largest row sum of ``|whole-line filter|``: how much one filtered axis
#: can grow a value (at the Nyquist frequency, ``1 / B(pi)``: 2, 3, 4.8, 7.5).
FILTER_GAIN = {2: 2.0, 3: 3.0, 4: 4.8, 5: 7.5}


def float32_coefficients_allowed(order: int, nfiltered: int, tolerance: float = 1e-6) -> bool:
    """Whether float32 spline coefficients keep a float32 result within ``tolerance`` x
    max|input| of scipy's float64 one, in the worst case.

    Coefficients are filtered in float64 and rounded once, by at most ``2**-24`` of their
    size, which the filter can make ``FILTER_GAIN[order] ** nfiltered`` times max|input|;
    the interpolation weights are positive and sum to 1, so the value moves by at most as
    much, and its own float32 rounding adds ``2**-24``. Allowed: order 2 up to 3-D, order 3
    up to 2-D, orders 4 and 5 in 1-D (order 3 in 3-D could reach 1.6e-6).

    Examples
    --------
    >>> [float32_coefficients_allowed(3, n) for n in (1, 2, 3)]
    [True, True, False]
    """
    if order < 2:
        return True
    return (FILTER_GAIN[order] ** max(nfiltered, 1) + 1.0) * 2.0**-24 <= tolerance


def halo_error_bound(order: int, depth: int, ndim: int = 3) -> float:
    """The worst error of chunked coefficients with halos of ``depth`` samples, relative
    to max|input| (and max|cval| where the mode pads with it), on ``ndim`` filtered axes.

    The axes' errors add up through the other axes' filters: with ``e`` the 1-D error
    (:data:`HALO_ERROR`) and ``g`` the filter's growth (:data:`FILTER_GAIN`),
    ``chunked - whole`` telescopes axis by axis to at most ``e * sum(g**a * (g + e)**(n-1-a))``.

    Examples
    --------
    >>> f"{halo_error_bound(3, 21):.1e}"
    '6.7e-11'
    """
    if order < 2:
        return 0.0
    e = HALO_ERROR[order] * POLE[order] ** depth
    g = FILTER_GAIN[order]
    return e * sum(g**a * (g + e) ** (ndim - 1 - a) for a in range(ndim))


def halo_depth(order: int, tolerance: float = TOLERANCE, ndim: int = 3) -> int:
    """Halo (samples per side) for which a chunk's coefficients are within ``tolerance``
    (relative to max|input|) of the whole-array ones on ``ndim`` filtered axes, in the
    worst case (:func:`halo_error_bound`); no margin beyond that bound.

    Examples
    --------
    >>> [halo_depth(k) for k in (2, 3, 4, 5)]
    [15, 21, 29, 37]
    >>> [halo_depth(3, ndim=n) for n in (1, 2, 3, 4)]
    [19, 20, 21, 22]
    """
    if order < 2:
        return 0
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance={tolerance!r} must be between 0 and 1")
    if ndim < 1:
        raise ValueError(f"ndim={ndim!r} must be a positive integer")
    depth = max(1, math.floor(math.log(tolerance) / math.log(POLE[order])))
    while halo_error_bound(order, depth, ndim) > tolerance:
        depth += 1
    return depth


def filter_axis_whole(n: int, pad: int, depth: int, nchunks: int) -> bool:
    """Whether an axis is filtered whole (exactly, with scipy) rather than with halos."""
    return nchunks == 1 or n + 2 * pad <= 4 * max(depth, 1)


def padded_cval(cval, dtype):
    """The value of scipy's ``grid-constant`` pre-padding: ``np.pad(x, 12, constant_values=cval)``
    stores ``cval`` in the input's dtype (uint8 input, ``cval=1.5`` pads with 1).

    Examples
    --------
    >>> padded_cval(1.5, np.uint8), padded_cval(1.5, np.float64)
    (1.0, 1.5)
    """
    cell = np.empty((), dtype=dtype)
    cell[...] = np.asarray(cval, dtype=np.float64)  # the assignment np.pad makes
    return float(cell)


def _gather(block, layouts, indices_per_axis, cval):
    """Read ``block`` at input indices given per axis (CVAL: a padded ``cval`` sample, stored
    in the block's dtype as scipy's pre-padding does)."""
    cval = padded_cval(cval, block.dtype)
    pos = [lay.positions(idx) for lay, idx in zip(layouts, indices_per_axis, strict=True)]
    out = block[np.ix_(*pos)].astype(np.float64)
    for axis, idx in enumerate(indices_per_axis):
        m = idx == CVAL
        if m.any():
            sl = [slice(None)] * out.ndim
            sl[axis] = m
            out[tuple(sl)] = cval
    return out


@dataclasses.dataclass(frozen=True)
class PrefilterSpec:
    """What one chunk of spline coefficients needs: the input ``shape``, ``order``,
    ``mode``, pre-padding ``pad`` and its ``cval``, the halo ``depth``, per axis whether it
    is filtered ``whole``, the chunk's domain ``span`` ((start, stop) per axis) and whether
    the axis is ``filtered`` at all (axes not filtered are copied as they are, unpadded);
    ``dtype`` the coefficients' dtype the graph declares (float64, or float32 where a
    backend stores float32 coefficients of float32 inputs: the ``"gpu"`` backend)."""

    shape: tuple[int, ...]
    order: int
    mode: str
    pad: int
    cval: float
    depth: int
    whole: tuple[bool, ...]
    span: tuple[tuple[int, int], ...]
    filtered: tuple[bool, ...]
    dtype: str = "float64"

    def axes(self):
        """Per axis: (length, pre-padding, filtered?, whole?, span)."""
        for n, f, whole, span in zip(self.shape, self.filtered, self.whole, self.span, strict=True):
            yield n, self.pad if f else 0, f, whole, span


def filter_indices(spec: PrefilterSpec) -> list[np.ndarray]:
    """Per axis, the input index read at each position of the chunk's filter window."""
    out = []
    depth = spec.depth
    for n, pad, filtered, whole, (s, e) in spec.axes():
        if not filtered:
            dom = np.arange(s, e)
        elif whole:
            dom = np.arange(-pad, n + pad)
        else:
            dom = np.arange(s - depth, e + depth)
        out.append(filter_source_index(dom, n, spec.mode, pad))
    return out


def prefilter_block(block, layouts, spec: PrefilterSpec, ndi=ndimage):
    """Coefficients of one chunk.

    Parameters
    ----------
    block : ndarray
        The input chunks the chunk's filter window reads, assembled.
    layouts : list of AxisLayout
        Where input indices sit in ``block``, per axis.
    spec : PrefilterSpec

    Returns
    -------
    ndarray of float64, the coefficients for the domain range ``spec.span``.
    """
    order, mode, depth = spec.order, spec.mode, spec.depth
    crops = []
    axes = list(spec.axes())
    for _, pad, filtered, whole, (s, e) in axes:
        if not filtered:
            crops.append(slice(0, e - s))
        else:
            crops.append(slice(s + pad, e + pad) if whole else slice(depth, depth + e - s))
    window = _gather(block, layouts, filter_indices(spec), spec.cval)
    scipy_mode = {"reflect": "reflect", "grid-wrap": "grid-wrap", "nearest": "nearest"}.get(
        mode, "mirror"
    )
    for axis, (_, _, filtered, whole, _) in enumerate(axes):
        if filtered and window.shape[axis] > 1:
            ndi.spline_filter1d(
                window, order, axis=axis, output=window, mode=scipy_mode if whole else "mirror"
            )
        # the filter is separable: once an axis is filtered its halo is no longer needed,
        # and the later axes filter the kept samples only (the same values, fewer samples:
        # a 64-sample chunk with 23-sample halos filters 3.3x, not 5.1x, its own size)
        keep = [slice(None)] * window.ndim
        keep[axis] = crops[axis]
        window = window[tuple(keep)]
    return np.ascontiguousarray(window)


def field_coefficients(values, order: int, mode: str, cval: float, npad: int, chunks=None):
    """Spline coefficients of a gridded vector field ``(ncomp, *grid)`` exactly as
    :func:`scipy.ndimage.map_coordinates` computes them inside (``npad`` samples of
    pre-padding, then ``spline_filter`` with the mode), so that interpolating them without
    prefilter equals scipy's samples bit for bit.

    A dask field, or a numpy one with grid ``chunks`` given, gives a lazy dask array
    instead: its chunks are the field's (components in one chunk, the pre-padding added
    to the end chunks), each filtered with a halo like an image's
    (:func:`~transfuse.executors.graph.spline_coefficients`, 1e-10 of the whole-array
    coefficients); for ``order <= 1`` the samples themselves, as float64.

    Examples
    --------
    >>> u = np.random.default_rng(0).random((1, 9))
    >>> c = field_coefficients(u, 3, "mirror", 0.0, 0)
    >>> pts = np.array([[2.5, 7.25]])
    >>> bool(np.array_equal(ndimage.map_coordinates(c[0], pts, prefilter=False),
    ...                     ndimage.map_coordinates(u[0], pts, mode="mirror")))
    True
    """
    if chunks is not None or (hasattr(values, "dask") and hasattr(values, "chunks")):
        return _chunked_field_coefficients(values, order, mode, cval, chunks)
    comps = []
    for comp in np.asarray(values, dtype=np.float64):
        if npad:
            if mode == "nearest":
                comp = np.pad(comp, npad, mode="edge")
            else:
                comp = np.pad(comp, npad, mode="constant", constant_values=cval)
        comps.append(ndimage.spline_filter(comp, order, output=np.float64, mode=mode))
    return np.stack(comps)


def _chunked_field_coefficients(values, order, mode, cval, chunks):
    import dask.array as da

    from ..planner.options import ResampleOptions
    from .graph import spline_coefficients
    from .scipy_backend import ScipyExecutor

    if hasattr(values, "dask"):
        arr = values.rechunk({0: -1}) if len(values.chunks[0]) > 1 else values
    else:
        arr = da.from_array(np.asarray(values), chunks=(values.shape[0], *chunks))
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    if order <= 1:
        return arr
    options = ResampleOptions(order=order, mode=mode, cval=cval)
    return spline_coefficients(arr, options, batch_axes=(0,), executor=ScipyExecutor())
