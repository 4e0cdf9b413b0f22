"""One regression test per measured defect D1-D15 of dask_image.ndinterp (see the shared
notes, peers.md): each asserts that transfuse.ndinterp does what scipy.ndimage does.

D2 (the folding modes, and prefilter with ``nearest`` / ``grid-constant``, in
``affine_transform`` and ``rotate``) and D5 (``map_coordinates`` with the folding modes at
points outside the input) are checked for every mode, order and prefilter, through
``transfuse.ndinterp`` and the lazy API, by the parity matrix, ``tests/test_parity_matrix.py``.
"""

from __future__ import annotations

import contextlib

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from dask.local import get_sync
from scipy import special

import transfuse
from tests.helpers import random_image
from tests.strategies import MODES
from transfuse import ndinterp

NOISE = random_image((40, 36), seed=1515, kind="unit")  # [0, 1) data, as in the measurements
MATRIX = np.array([[0.91, 0.27], [-0.33, 1.07]])
OFFSET = np.array([-3.3, 6.1])


def chunked(x, chunks=9):
    return da.from_array(x, chunks=chunks)


@pytest.mark.parametrize("order", [3, 5])
def test_d1_prefilter_is_on_by_default_and_exact(order):
    # dask_image: no prefilter by default; max error 0.43 (order 3), 0.58 (order 5)
    y = ndinterp.affine_transform(chunked(NOISE), MATRIX, OFFSET, order=order)
    ref = ndi.affine_transform(NOISE, MATRIX, OFFSET, order=order)
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)
    r = ndinterp.rotate(chunked(NOISE), 27, order=order)
    np.testing.assert_allclose(r.compute(), ndi.rotate(NOISE, 27, order=order), atol=1e-10)


@pytest.mark.parametrize("order", [0, 1, 3])
def test_d3_diagonal_matrix_with_several_output_chunks(order):
    # dask_image: error 0.999
    diag, off = np.array([0.63, 1.41]), np.array([2.2, -4.7])
    y = ndinterp.affine_transform(
        chunked(NOISE, 7), diag, off, output_shape=(50, 30), order=order, output_chunks=(11, 8)
    )
    assert y.numblocks == (5, 4)
    ref = ndi.affine_transform(NOISE, diag, off, output_shape=(50, 30), order=order)
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


def test_d4_keys_hold_order_mode_cval_prefilter():
    # dask_image: the stack returned the order-3 result three times
    x = chunked(NOISE)
    orders = [0, 1, 3]
    parts = [ndinterp.affine_transform(x, MATRIX, OFFSET, order=k) for k in orders]
    assert len({p.name for p in parts}) == 3
    stacked = da.stack(parts).compute()
    for k, got in zip(orders, stacked, strict=True):
        ref = ndi.affine_transform(NOISE, MATRIX, OFFSET, order=k)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    assert not np.allclose(stacked[0], stacked[2])

    variants = [
        {"cval": 0.0},
        {"cval": 5.0},
        {"mode": "nearest"},
        {"order": 3, "prefilter": False},
        {"order": 3, "prefilter": True},
    ]
    parts = [ndinterp.affine_transform(x, MATRIX, OFFSET, **kw) for kw in variants]
    assert len({p.name for p in parts}) == len(variants)
    stacked = da.stack(parts).compute()
    for kw, got in zip(variants, stacked, strict=True):
        kw = {"order": 1, **kw}
        ref = ndi.affine_transform(NOISE, MATRIX, OFFSET, **kw)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    for i in range(len(variants)):
        for j in range(i):
            assert not np.array_equal(stacked[i], stacked[j])


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_d6_map_coordinates_prefilter_is_global(order, rng):
    # dask_image: each slice filtered on its own, errors 0.02-0.04
    coords = rng.uniform(0, 35, (2, 500))
    y = ndinterp.map_coordinates(chunked(NOISE, 6), coords, order=order, prefilter=True)
    ref = ndi.map_coordinates(NOISE, coords, order=order, prefilter=True)
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("order", [0, 1])
def test_d7_spline_filters_of_order_0_and_1(order):
    # dask_image: KeyError. scipy's spline_filter1d returns the input (as the output dtype);
    # scipy's spline_filter refuses orders < 2 while being defined as spline_filter1d along
    # every axis: that chain is what transfuse returns.
    x = chunked((NOISE * 100).astype(np.int16))
    for axis in (0, 1):
        y = ndinterp.spline_filter1d(x, order, axis=axis)
        ref = ndi.spline_filter1d(x.compute(), order, axis=axis)
        assert y.dtype == ref.dtype
        np.testing.assert_array_equal(y.compute(), ref)
    chain = x.compute()
    for axis in (0, 1):
        chain = ndi.spline_filter1d(chain, order, axis=axis)
    y = ndinterp.spline_filter(x, order, output=np.float32)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.compute(), chain.astype(np.float32))


def test_d8_arrays_smaller_than_the_halo(rng):
    # dask_image: "overlapping depth larger than your array" (10x10 at order 3)
    small = rng.random((10, 10))
    x = chunked(small, 5)
    for mode in ("mirror", "wrap", "grid-wrap", "nearest"):
        assert (
            np.abs(
                ndinterp.spline_filter(x, 3, mode=mode).compute()
                - ndi.spline_filter(small, 3, mode=mode)
            ).max()
            < 1e-12
        )
        assert (
            np.abs(
                ndinterp.spline_filter1d(x, 5, mode=mode).compute()
                - ndi.spline_filter1d(small, 5, mode=mode)
            ).max()
            < 1e-12
        )
    m = [[0.9, 0.2], [-0.2, 0.9]]
    y = ndinterp.affine_transform(x, m, 1.0, order=3)
    np.testing.assert_allclose(y.compute(), ndi.affine_transform(small, m, 1.0), atol=1e-12)
    coords = rng.uniform(-1, 10, (2, 30))
    y = ndinterp.map_coordinates(x, coords, mode="wrap")
    ref = ndi.map_coordinates(small, coords, mode="wrap")
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_d9_prefilter_keeps_the_dtype_and_output_is_honoured(dtype, rng):
    # dask_image: float64 out whatever came in; output= ignored
    img = (NOISE * 250).astype(dtype)
    y = ndinterp.affine_transform(chunked(img), MATRIX, OFFSET, order=3, prefilter=True)
    ref = ndi.affine_transform(img, MATRIX, OFFSET, order=3, prefilter=True)
    assert y.dtype == ref.dtype == dtype
    got = y.compute()
    assert got.dtype == dtype
    np.testing.assert_allclose(got.astype(float), ref.astype(float), rtol=0, atol=1e-4)
    coords = rng.uniform(0, 35, (2, 100))
    m = ndinterp.map_coordinates(chunked(img), coords, order=3, prefilter=True)
    assert m.dtype == dtype
    np.testing.assert_allclose(
        m.compute().astype(float),
        ndi.map_coordinates(img, coords, order=3).astype(float),
        rtol=0,
        atol=1e-4,
    )
    out = ndinterp.affine_transform(img, MATRIX, OFFSET, order=3, output=np.float32)
    assert out.dtype == np.float32 and out.compute().dtype == np.float32
    ref32 = ndi.affine_transform(img, MATRIX, OFFSET, order=3, output=np.float32)
    np.testing.assert_allclose(out.compute(), ref32, rtol=0, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_d10_order0_ties_with_several_output_chunks(mode, rng):
    # dask_image: 124 of 1024 pixels wrong. Every coordinate here is an exact multiple of
    # 0.25 (scipy's arithmetic is exact), so a quarter of them are exact .5 ties, which
    # scipy resolves by floor(c + 0.5).
    x = rng.random((32, 32))
    diag, off = np.array([0.5, 0.75]), np.array([0.5, -3.0])
    y = ndinterp.affine_transform(
        chunked(x, 8), diag, off, output_shape=(40, 48), order=0, mode=mode, output_chunks=8
    )
    assert y.numblocks == (5, 6)
    ref = ndi.affine_transform(x, diag, off, output_shape=(40, 48), order=0, mode=mode)
    np.testing.assert_array_equal(y.compute(), ref)
    m = np.array([[0.5, 0.5], [-0.5, 0.5]])
    y = ndinterp.affine_transform(chunked(x, 8), m, [8.0, 16.0], order=0, mode=mode)
    ref = ndi.affine_transform(x, m, [8.0, 16.0], order=0, mode=mode)
    np.testing.assert_array_equal(y.compute(), ref)
    coords = np.mgrid[-8:40:0.5, -4:36:0.5]
    y = ndinterp.map_coordinates(
        chunked(x, 8), da.from_array(coords, chunks=(2, 24, 20)), order=0, mode=mode
    )
    np.testing.assert_array_equal(y.compute(), ndi.map_coordinates(x, coords, order=0, mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_d10_order0_near_ties_from_inexact_arithmetic(mode, rng):
    # (o - 7/1.5) * 1.5 lands 1 ulp below .5 for some o: scipy's own rounding must be kept
    x = rng.random((32, 32))
    diag, off = np.array([0.5, 1.5]), np.array([0.5, -7.0])
    y = ndinterp.affine_transform(
        chunked(x, 8), diag, off, output_shape=(32, 32), order=0, mode=mode, output_chunks=8
    )
    ref = ndi.affine_transform(x, diag, off, output_shape=(32, 32), order=0, mode=mode)
    np.testing.assert_array_equal(y.compute(), ref)


def test_d11_default_output_chunks_are_the_inputs():
    # dask_image: one chunk of the whole output shape
    x = chunked(NOISE, (10, 12))
    y = ndinterp.affine_transform(x, MATRIX, OFFSET, output_shape=(55, 47))
    assert set(y.chunks[0][:-1]) == {10} and set(y.chunks[1][:-1]) == {12}
    r = ndinterp.rotate(x, 45)
    assert max(r.chunks[0]) == 10 and max(r.chunks[1]) == 12
    assert r.numblocks[0] > 1 and r.numblocks[1] > 1


@pytest.mark.parametrize("order, layers", [(1, 2), (3, 3)])
def test_d12_one_resampling_layer_one_task_per_output_block(order, layers):
    # dask_image: 4096 output blocks -> 25,701 tasks in 3,987 layers
    x = da.zeros((1024, 1024), chunks=16)
    y = ndinterp.affine_transform(x, [[0.99, 0.1], [-0.1, 0.99]], [5.0, -3.0], order=order)
    assert y.numblocks == (64, 64)
    graph = y.__dask_graph__()
    assert len(graph.layers) == layers  # input [+ prefilter] + one resampling layer
    assert len(graph.layers[y.name]) == 4096
    assert len(graph) == layers * 4096
    # the resampling layer depends on one layer only (the input or its coefficients)
    assert len(graph.dependencies[y.name]) == 1


@contextlib.contextmanager
def refuse_nested_compute():
    """A synchronous scheduler that fails when a task computes a graph of its own."""
    state = {"depth": 0, "calls": 0}

    def get(dsk, keys, **kwargs):
        if state["depth"]:
            raise AssertionError("nested compute inside a task")
        state["depth"] += 1
        state["calls"] += 1
        try:
            return get_sync(dsk, keys, **kwargs)
        finally:
            state["depth"] -= 1

    with dask.config.set(scheduler=get):
        yield state


def test_d13_map_coordinates_never_computes_inside_tasks(rng):
    # dask_image: .compute() inside its tasks, the whole input graph in one argument
    coords = da.from_array(rng.uniform(-2, 40, (2, 30, 20)), chunks=(2, 10, 10))
    x = chunked(NOISE)
    with refuse_nested_compute() as state:
        y = ndinterp.map_coordinates(x, coords, order=3)
        got = y.compute()
    assert state["calls"] >= 1
    np.testing.assert_allclose(
        got, ndi.map_coordinates(NOISE, coords.compute(), order=3), rtol=0, atol=1e-10
    )
    # each task depends on coordinate chunks and input/coefficient chunks, never a graph
    graph = y.__dask_graph__()
    for dep in graph.dependencies[y.name]:
        assert dep.startswith(("spline-coefficients", coords.name))


def test_d13_the_nested_compute_detector_detects(rng):
    dask_image = pytest.importorskip("dask_image.ndinterp")
    coords = da.from_array(rng.uniform(0, 30, (2, 20)), chunks=(2, 10))
    y = dask_image.map_coordinates(chunked(NOISE), coords, order=1)
    with refuse_nested_compute(), pytest.raises(AssertionError, match="nested"):
        y.compute()


def _rotate_matrix(shape, angle):
    """scipy.ndimage.rotate's pull matrix (reshape=False), homogeneous."""
    c, s = special.cosdg(angle), special.sindg(angle)
    rot = np.array([[c, s], [-s, c]])
    centre = (np.asarray(shape) - 1) / 2
    out = np.eye(3)
    out[:2, :2] = rot
    out[:2, 2] = centre - rot @ centre
    return out


def test_d14_a_chain_resamples_once():
    # dask_image: one resampling per step (twice the tasks; 0.54 off a single resampling)
    lazy = transfuse.lazy(NOISE, chunks=10).rotate(30, reshape=False, order=1).zoom(1.5, order=1)
    plan = lazy.plan()
    assert len(plan.passes) == 1
    out = lazy.to_dask()
    graph = out.__dask_graph__()
    assert sum(name.startswith("resample") for name in graph.layers) == 1
    r = _rotate_matrix(NOISE.shape, 30)
    np.testing.assert_allclose(
        ndi.affine_transform(NOISE, r, order=1), ndi.rotate(NOISE, 30, reshape=False, order=1)
    )
    zoom_shape = tuple(round(n * 1.5) for n in NOISE.shape)
    z = np.diag([(n - 1) / (m - 1) for n, m in zip(NOISE.shape, zoom_shape, strict=True)] + [1])
    once = ndi.affine_transform(NOISE, r @ z, output_shape=zoom_shape, order=1)
    got = out.compute()
    np.testing.assert_allclose(got, once, rtol=0, atol=1e-10)
    twice = ndi.zoom(ndi.rotate(NOISE, 30, reshape=False, order=1), 1.5, order=1)
    assert np.abs(got - twice).max() > 0.05  # two resamplings are visibly different


@pytest.mark.parametrize("name", ["affine_transform", "rotate", "map_coordinates"])
def test_d15_order_7_raises_when_the_graph_is_built(name):
    # dask_image: accepted, RuntimeError only at compute
    x = chunked(NOISE)
    calls = {
        "affine_transform": lambda: ndinterp.affine_transform(x, MATRIX, order=7),
        "rotate": lambda: ndinterp.rotate(x, 10, order=7),
        "map_coordinates": lambda: ndinterp.map_coordinates(x, np.zeros((2, 4)), order=7),
    }
    with pytest.raises(RuntimeError, match="order=7") as info:
        calls[name]()
    assert isinstance(info.value, ValueError)
