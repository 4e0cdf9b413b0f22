"""The parity matrix: every mode x order x prefilter, the lazy API and ``transfuse.ndinterp``
against scipy.ndimage, once each, deterministically.

This is the suite's one sweep over the interpolation options (hypothesis may not draw each
of the 96 combinations in the ci profile; the property families of
``tests/executors/test_scipy_parity.py`` explore everything else). Each combination runs,
through each entry point, the cases of :data:`CASES`:

* ``affine_transform`` of a rotation-shear: folds near the array and offsets up to 1e6
  samples outside, on 1- and 2-sample input chunks (smaller than the spline support) beside
  longer ones, and on regular chunks; ragged output chunks;
* ``affine_transform`` along an axis long enough that the prefilter runs chunk by chunk with
  halos (one chunk shorter than the halo);
* ``map_coordinates`` (``CoordinateMap`` in the lazy API) at points up to several periods
  outside the array and far away, from chunked coordinates;
* ``rotate`` with ``reshape`` on and off.

Each runs on the default ``"cpu"`` backend (the compiled kernel) and on the ``"scipy"``
reference backend. Tolerance (:func:`tests.helpers.assert_parity`): orders 0 and 1 bit for
bit, orders 2-5 within ``1e-8 * max|input|`` (``cval`` is within the input's range); the
``"cpu"`` backend also keeps the accuracy contract of the README, ``1e-10 * max|input|``
in float64.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import dask
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
#: 1- and 2-sample chunks (smaller than the spline support) beside longer ones
TINY = ((1, 2, 8), (1, 3, 5))
#: long enough along axis 0 that the prefilter uses halos for every order (see
#: ``transfuse.executors.spline.filter_axis_whole``), with a chunk shorter than the halo
LONG_SHAPE, LONG_CHUNKS = (150, 3), ((5, 45, 60, 40), (2, 1))


@dataclass(frozen=True)
class Case:
    """One call, made through scipy (on the whole array), the lazy API and ndinterp."""

    label: str
    image: str  # "small" (SHAPE) or "long" (LONG_SHAPE)
    scipy: object  # (x, kw) -> array
    lazy: object  # (x, kw) -> LazyImage
    ndinterp: object  # (x, kw) -> dask array


def _affine(label, offset, chunks, out_chunks, *, image="small", matrix=None, out_shape=None):
    matrix = np.array([[0.9, -0.4], [0.35, 1.2]]) if matrix is None else np.asarray(matrix)
    out_shape = (13, 7) if out_shape is None else out_shape

    def check_ndinterp(x, kw):
        y = ndinterp.affine_transform(
            da.from_array(x, chunks=chunks),
            matrix,
            offset,
            output_shape=out_shape,
            output_chunks=out_chunks,
            **kw,
        )
        assert isinstance(y, da.Array)
        assert y.chunks == da.empty(out_shape, chunks=out_chunks).chunks
        return y

    return Case(
        label,
        image,
        lambda x, kw: ndi.affine_transform(x, matrix, offset, output_shape=out_shape, **kw),
        lambda x, kw: transfuse.lazy(x, chunks).affine_transform(
            matrix, offset, output_shape=out_shape, output_chunks=out_chunks, **kw
        ),
        check_ndinterp,
    )


@functools.cache
def _coordinates():
    """Points of shape (2, 10, 12): inside, several periods outside, and far away."""
    rng = np.random.default_rng(stable_seed("parity-matrix-coordinates"))
    c = np.stack([rng.uniform(-2.5 * n, 3.5 * n, (10, 12)) for n in SHAPE])
    c[:, 0, :4] = [[1e6 + 0.3, -1e6 - 0.7, 3.0, -2.5], [4.25, 1e4 + 0.25, -3e5 - 0.5, 8.0]]
    return c


COORD_CHUNKS = (2, 5, 7)


def _map_ndinterp(x, kw):
    c = da.from_array(_coordinates(), chunks=COORD_CHUNKS)
    y = ndinterp.map_coordinates(da.from_array(x, chunks=TINY), c, **kw)
    assert y.chunks == c.chunks[1:]
    return y


def _rotate(reshape, angle=37.3, chunks=4):
    def check_ndinterp(x, kw):
        y = ndinterp.rotate(da.from_array(x, chunks=chunks), angle, reshape=reshape, **kw)
        assert max(max(c) for c in y.chunks) <= chunks  # the input's chunks by default
        return y

    return Case(
        f"rotate reshape={reshape}",
        "small",
        lambda x, kw: ndi.rotate(x, angle, reshape=reshape, **kw),
        lambda x, kw: transfuse.lazy(x, chunks).rotate(angle, reshape=reshape, **kw),
        check_ndinterp,
    )


CASES = [
    _affine("affine near, tiny chunks", [-3.3, 2.7], TINY, ((2, 6, 5), (1, 6))),
    _affine("affine far (axis 0), tiny chunks", [1e6 + 0.3, -2.0], TINY, ((5, 1, 7), (3, 4))),
    _affine("affine far (axis 1), regular chunks", [0.5, -1e3], (4, 3), ((13,), (1, 6))),
    _affine(
        "affine, prefilter with halos",
        [-2.6, 0.4],
        LONG_CHUNKS,
        ((50, 50, 56), (3,)),
        image="long",
        matrix=[[1.02, 0.05], [-0.03, 0.9]],
        out_shape=(156, 3),
    ),
    Case(
        "map_coordinates",
        "small",
        lambda x, kw: ndi.map_coordinates(x, _coordinates(), **kw),
        lambda x, kw: transfuse.lazy(x, TINY).transform(
            transfuse.CoordinateMap(_coordinates()), output_chunks=COORD_CHUNKS[1:], **kw
        ),
        _map_ndinterp,
    ),
    _rotate(reshape=True),
    _rotate(reshape=False),
]


@functools.cache
def inputs(mode, order, prefilter):
    """The inputs of one combination (its own seeds) and a cval inside their range."""
    seed = stable_seed("parity-matrix", mode, order, prefilter)
    small = 2 * random_image(SHAPE, seed)
    long = 2 * random_image(LONG_SHAPE, seed + 1)
    cval = 0.5 * float(min(np.abs(small).max(), np.abs(long).max()))
    return {"small": small, "long": long}, cval


@functools.cache
def references(mode, order, prefilter):
    """scipy.ndimage's results for one combination, computed once for both entry points."""
    images, cval = inputs(mode, order, prefilter)
    kw = dict(order=order, mode=mode, cval=cval, prefilter=prefilter)
    return tuple(case.scipy(images[case.image], kw) for case in CASES)


#: the accuracy contract of the compiled kernel (float64), relative to max|input|
CONTRACT_FLOAT64 = 1e-10


@pytest.mark.parametrize("executor", ["cpu", "scipy"])
@pytest.mark.parametrize("api", ["lazy", "ndinterp"])
@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_parity_matrix(mode, order, prefilter, api, executor):
    images, cval = inputs(mode, order, prefilter)
    kw = dict(order=order, mode=mode, cval=cval, prefilter=prefilter)
    for case, ref in zip(CASES, references(mode, order, prefilter), strict=True):
        x = images[case.image]
        assert abs(cval) <= np.abs(x).max()  # the tolerance scales with max|input| alone
        with dask.config.set({"transfuse.executor": executor}):
            got = compute(getattr(case, api)(x, kw))
        try:
            assert_parity(got, ref, x=x, cval=cval, order=order)
            if executor == "cpu":
                err = np.max(np.abs(got - ref), initial=0.0)
                assert err <= CONTRACT_FLOAT64 * np.abs(x).max(), err
        except AssertionError as exc:
            raise AssertionError(f"{executor}, {api}, {case.label}: {exc}") from exc
