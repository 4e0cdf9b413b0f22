"""scipy.ndimage's ``map_coordinates`` and ``affine_transform`` (``prefilter=False``)
through the compiled kernel of :mod:`.kernels_interp`, for the stage evaluation of
:mod:`.stages` (displacement fields sampled from their coefficients).

The kernel performs scipy's floating-point operations (coordinates, mode rule, weights,
taps in scipy's order), so for orders 0 and 1 the values are scipy's bit for bit and
for orders 2-5 they are within ~1e-16 relative (the kernel's factored cubic sum). Where
the kernel does not apply (more than 3 axes, a complex or object array, a coordinate
scipy's C code cannot handle either) the call goes to scipy.ndimage itself. The same
compiled specialisations as the resampling kernel serve (float32 or float64 samples),
so nothing new is compiled.

Examples
--------
>>> import numpy as np
>>> import scipy.ndimage as ndi
>>> a = np.arange(12.0).reshape(3, 4)
>>> c = np.array([[0.5, 1.25, 2.0], [0.5, 2.75, -1.0]])
>>> bool(np.array_equal(map_coordinates(a, c, order=1, mode="reflect"),
...                     ndi.map_coordinates(a, c, order=1, mode="reflect")))
True
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..planner.boundary import CVAL, tap_source_index
from . import kernels_interp as K

__all__ = ["affine_transform", "map_coordinates"]

_CANONICAL = {"grid-mirror": "reflect"}


def _applies(input, order, mode, output) -> bool:
    """Whether the kernel computes this call (results in float64, then cast to a float
    result dtype as scipy casts them; integer results, which scipy rounds, go to scipy)."""
    return (
        K.AVAILABLE
        and isinstance(input, np.ndarray)
        and 1 <= input.ndim <= 3
        and input.dtype.kind in "biuf"
        and 0 <= int(order) <= 5
        and _CANONICAL.get(mode, mode) in K.MODE_CODES
        and input.size > 0
        and _result_dtype(input, output).kind == "f"
    )


def _tables(shape, strides, mode, order):
    """Per axis (padded to 3): the buffer offset of every tap index the kernel's mode rule
    can reach on this array (``TAP_CVAL`` where ``grid-constant`` reads cval), and the
    first tap index of the table."""
    lead = 3 - len(shape)
    tables = [np.zeros(1, dtype=np.int64)] * lead
    starts = [0] * lead
    # folded coordinates lie in (-1, n); nearest/grid-constant ones move back to within
    # order + 2 samples of the array: taps reach at most 2 * order + 4 beyond either end
    margin = 2 * order + 6
    for n, stride in zip(shape, strides, strict=True):
        idx = np.arange(-margin, n + margin, dtype=np.int64)
        src = tap_source_index(idx, n, mode, 0)
        tables.append(np.where(src == CVAL, K.TAP_CVAL, src * stride))
        starts.append(-margin)
    return tables, starts


def _run(input, order, mode, cval, spec, out3):
    mode = _CANONICAL.get(mode, mode)
    buf, strides = K.flat_buffer(input)
    tables, starts = _tables(input.shape, strides, mode, int(order))
    lead = 3 - input.ndim
    shape = np.ones(3, dtype=np.int64)
    shape[lead:] = input.shape
    interp = np.zeros(3, dtype=np.int64)
    interp[lead:] = 1
    return K.interpolate(
        buf,
        tables,
        starts,
        shape,
        interp,
        0,
        K.MODE_CODES[mode],
        int(order),
        float(cval),
        spec,
        [0, 0, 0],
        out3,
        strides=[0] * lead + list(strides),
    )


def _target(output, shape):
    """A C-contiguous float64 array of ``shape`` to fill: ``output`` itself when it is
    one, else a new array (copied into ``output`` afterwards)."""
    if (
        isinstance(output, np.ndarray)
        and output.dtype == np.float64
        and output.shape == tuple(shape)
        and output.flags.c_contiguous
        and output.flags.writeable
    ):
        return output
    return np.empty(shape)


def _result_dtype(input, output):
    """The dtype scipy gives the result (the input's when ``output`` is None)."""
    if isinstance(output, np.ndarray):
        return output.dtype
    return np.dtype(input.dtype if output is None else output)


def _finish(result, output, dtype):
    if isinstance(output, np.ndarray):
        if result is not output:
            output[...] = result
        return output
    return result if dtype == np.float64 else result.astype(dtype)


_NO_OPS = np.zeros(0, dtype=np.int64)
_NO_OPV = np.zeros((0, 3))
_NO_COORDS = np.zeros((1, 1, 1, 1))


def map_coordinates(
    input, coordinates, output=None, order=3, mode="constant", cval=0.0, prefilter=False
):
    """``scipy.ndimage.map_coordinates(..., prefilter=False)`` by the compiled kernel.

    Parameters
    ----------
    input : ndarray
        The (coefficient) array, 1 to 3 axes for the kernel (others go to scipy).
    coordinates : array_like
        ``(input.ndim, ...)`` coordinates.
    output : ndarray or dtype, optional
        Where to write (float64 arrays are filled in place) or the result dtype.
    order, mode, cval
        As in scipy.ndimage.
    prefilter : bool
        Must be False (the kernel reads the array as coefficients).

    Returns
    -------
    ndarray
        The values at the coordinates.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64)
    if prefilter or not _applies(input, order, mode, output) or coordinates.shape[0] != input.ndim:
        return ndimage.map_coordinates(
            input,
            coordinates,
            output=output,
            order=order,
            mode=mode,
            cval=cval,
            prefilter=prefilter,
        )
    pts = coordinates.shape[1:]
    n = input.ndim
    flat = np.ascontiguousarray(coordinates).reshape(n, 1, 1, -1)
    crow = np.full(3, -1, dtype=np.int64)
    crow[3 - n :] = np.arange(n)
    spec = (
        K.FORM_COORDS,
        np.zeros((3, 3)),
        np.zeros(3),
        _NO_OPS,
        _NO_OPV,
        np.full(3, -1, dtype=np.int64),
        np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=np.int64),
        flat,
        crow,
    )
    target = _target(output, pts)
    if not _run(input, order, mode, cval, spec, target.reshape(1, 1, -1)):
        return ndimage.map_coordinates(
            input,
            coordinates,
            output=output,
            order=order,
            mode=mode,
            cval=cval,
            prefilter=False,
        )
    return _finish(target, output, _result_dtype(input, output))


def affine_transform(
    input,
    matrix,
    offset=0.0,
    output_shape=None,
    output=None,
    order=3,
    mode="constant",
    cval=0.0,
    prefilter=False,
):
    """``scipy.ndimage.affine_transform(..., prefilter=False)`` with a 2-D ``(input.ndim,
    len(output_shape))`` matrix, by the compiled kernel (other forms go to scipy).

    Parameters
    ----------
    input : ndarray
        The (coefficient) array.
    matrix : ndarray
        ``(input.ndim, len(output_shape))``.
    offset : float or sequence
        Added to the mapped output index.
    output_shape : tuple, optional
        Defaults to ``input.shape``.
    output, order, mode, cval, prefilter
        As in :func:`map_coordinates`.

    Returns
    -------
    ndarray
        The resampled array.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    shape = tuple(input.shape if output_shape is None else output_shape)
    usable = (
        not prefilter
        and _applies(input, order, mode, output)
        and matrix.ndim == 2
        and matrix.shape == (input.ndim, len(shape))
        and 1 <= len(shape) <= 3
    )
    if not usable:
        return ndimage.affine_transform(
            input,
            matrix,
            offset,
            output_shape=output_shape,
            output=output,
            order=order,
            mode=mode,
            cval=cval,
            prefilter=prefilter,
        )
    n_in, n_out = matrix.shape
    lin = np.zeros((3, 3))
    lin[3 - n_in :, 3 - n_out :] = matrix
    off = np.zeros(3)
    off[3 - n_in :] = np.broadcast_to(np.asarray(offset, dtype=np.float64), (n_in,))
    gsrc = np.full(3, -1, dtype=np.int64)
    gsrc[3 - n_out :] = np.arange(3 - n_out, 3)
    gstep = np.zeros(3, dtype=np.int64)
    gstep[3 - n_out :] = 1
    spec = (
        K.FORM_MATRIX,
        lin,
        off,
        _NO_OPS,
        _NO_OPV,
        gsrc,
        np.zeros(3, dtype=np.int64),
        gstep,
        _NO_COORDS,
        np.full(3, -1, dtype=np.int64),
    )
    target = _target(output, shape)
    if not _run(input, order, mode, cval, spec, target.reshape((1,) * (3 - len(shape)) + shape)):
        return ndimage.affine_transform(
            input,
            matrix,
            offset,
            output_shape=output_shape,
            output=output,
            order=order,
            mode=mode,
            cval=cval,
            prefilter=False,
        )
    return _finish(target, output, _result_dtype(input, output))
