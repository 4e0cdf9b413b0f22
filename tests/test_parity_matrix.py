"""The parity matrix: every mode x order x prefilter, the lazy API and ``transfuse.ndinterp``
against scipy.ndimage, once each, deterministically.

This is the suite's one sweep over the interpolation options (hypothesis may not draw each
of the 96 combinations in the ci profile; the property families of
``tests/executors/test_scipy_parity.py`` explore everything else). Each combination runs,
through each entry point:

* ``affine_transform`` of a rotation-shear: folds near the array and offsets up to 1e6
  samples outside, on 1- and 2-sample input chunks (smaller than the spline support) beside
  longer ones, and on regular chunks; ragged output chunks;
* ``map_coordinates`` (``CoordinateMap`` in the lazy API) at points up to several periods
  outside the array and far away, from chunked coordinates;
* ``rotate`` with ``reshape`` on and off.

Tolerance (:func:`tests.helpers.assert_parity`): orders 0 and 1 bit for bit, orders 2-5
within ``1e-8 * max|input|`` (``cval`` is within the input's range).
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse
from tests.helpers import assert_parity, compute, random_image, stable_seed
from tests.strategies import MODES, ORDERS
from transfuse import ndinterp

pytestmark = pytest.mark.slow

SHAPE = (11, 9)
OUT_SHAPE = (13, 7)
MATRIX = np.array([[0.9, -0.4], [0.35, 1.2]])
#: (offset, input chunks, output chunks): folds near the array on 1- and 2-sample chunks
#: (smaller than the spline support) beside longer ones, then offsets far outside along
#: each axis
TINY = ((1, 2, 8), (1, 3, 5))
AFFINE_CASES = [
    ([-3.3, 2.7], TINY, ((2, 6, 5), (1, 6))),
    ([1e6 + 0.3, -2.0], TINY, ((5, 1, 7), (3, 4))),
    ([0.5, -1e3], (4, 3), ((13,), (1, 6))),
]
COORD_SHAPE, COORD_CHUNKS = (10, 12), (2, 5, 7)
ANGLE = 37.3
ROTATE_CHUNKS = 4


def data(mode, order, prefilter):
    """The input of one combination (its own seed) and a cval inside its range."""
    x = 2 * random_image(SHAPE, stable_seed("parity-matrix", mode, order, prefilter))
    cval = 0.5 * float(np.abs(x).max())
    return x, cval


@functools.cache
def coordinates(mode, order, prefilter):
    """Points of shape (2, *COORD_SHAPE): inside, several periods outside, and far away."""
    rng = np.random.default_rng(stable_seed("parity-matrix-coordinates", mode, order, prefilter))
    c = np.stack([rng.uniform(-2.5 * n, 3.5 * n, COORD_SHAPE) for n in SHAPE])
    c[:, 0, :4] = [[1e6 + 0.3, -1e6 - 0.7, 3.0, -2.5], [4.25, 1e4 + 0.25, -3e5 - 0.5, 8.0]]
    return c


@functools.cache
def references(mode, order, prefilter):
    """scipy.ndimage's results for one combination, computed once for both entry points."""
    x, cval = data(mode, order, prefilter)
    kw = dict(order=order, mode=mode, cval=cval, prefilter=prefilter)
    affine = [
        ndi.affine_transform(x, MATRIX, offset, output_shape=OUT_SHAPE, **kw)
        for offset, _, _ in AFFINE_CASES
    ]
    mapped = ndi.map_coordinates(x, coordinates(mode, order, prefilter), **kw)
    rotated = {r: ndi.rotate(x, ANGLE, reshape=r, **kw) for r in (True, False)}
    return affine, mapped, rotated


def lazy_results(x, coords, kw):
    for offset, chunks, out_chunks in AFFINE_CASES:
        img = transfuse.lazy(x, chunks).affine_transform(
            MATRIX, offset, output_shape=OUT_SHAPE, output_chunks=out_chunks, **kw
        )
        yield f"affine_transform offset={offset} chunks={chunks}", compute(img)
    out_chunks = COORD_CHUNKS[1:]
    img = transfuse.lazy(x, TINY).transform(
        transfuse.CoordinateMap(coords), output_chunks=out_chunks, **kw
    )
    yield "map_coordinates", compute(img)
    for reshape in (True, False):
        img = transfuse.lazy(x, ROTATE_CHUNKS).rotate(ANGLE, reshape=reshape, **kw)
        yield f"rotate reshape={reshape}", compute(img)


def ndinterp_results(x, coords, kw):
    for offset, chunks, out_chunks in AFFINE_CASES:
        y = ndinterp.affine_transform(
            da.from_array(x, chunks=chunks),
            MATRIX,
            offset,
            output_shape=OUT_SHAPE,
            output_chunks=out_chunks,
            **kw,
        )
        assert isinstance(y, da.Array)
        assert y.chunks == da.empty(OUT_SHAPE, chunks=out_chunks).chunks
        yield f"affine_transform offset={offset} chunks={chunks}", compute(y)
    c = da.from_array(coords, chunks=COORD_CHUNKS)
    y = ndinterp.map_coordinates(da.from_array(x, chunks=TINY), c, **kw)
    assert y.chunks == c.chunks[1:]
    yield "map_coordinates", compute(y)
    for reshape in (True, False):
        y = ndinterp.rotate(da.from_array(x, chunks=ROTATE_CHUNKS), ANGLE, reshape=reshape, **kw)
        assert max(max(c) for c in y.chunks) <= ROTATE_CHUNKS  # the input's chunks by default
        yield f"rotate reshape={reshape}", compute(y)


@pytest.mark.parametrize("api", ["lazy", "ndinterp"])
@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_parity_matrix(mode, order, prefilter, api):
    x, cval = data(mode, order, prefilter)
    assert abs(cval) <= np.abs(x).max()  # the tolerance scales with max|input| alone
    kw = dict(order=order, mode=mode, cval=cval, prefilter=prefilter)
    affine, mapped, rotated = references(mode, order, prefilter)
    expected = [*affine, mapped, rotated[True], rotated[False]]
    results = (lazy_results if api == "lazy" else ndinterp_results)(
        x, coordinates(mode, order, prefilter), kw
    )
    checked = 0
    for (label, got), ref in zip(results, expected, strict=True):
        try:
            assert_parity(got, ref, x=x, cval=cval, order=order)
        except AssertionError as exc:
            raise AssertionError(f"{api} {label}: {exc}") from exc
        checked += 1
    assert checked == len(AFFINE_CASES) + 3
