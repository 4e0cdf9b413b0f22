"""Lazy views (``img[...]``, ``preview``) and scipy's rank-changing matrices (notebooks
issue, item 1): the selection is composed into the plan."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

import transfuse as tf
import transfuse.ndinterp

RNG = np.random.default_rng(7)
VOLUME = RNG.random((30, 40, 50))


def _input_keys(arr, source_name):
    """Input chunk keys the resampling tasks of ``arr`` read."""
    graph = dict(arr.__dask_graph__())
    keys = set()
    for key, task in graph.items():
        if isinstance(key, tuple) and str(key[0]).startswith("resample-"):
            keys.update(task.dependencies)  # the coefficient (here: input) chunks
    return {k for k in keys if k[0] == source_name}


@pytest.mark.parametrize("order", [0, 1])
def test_plane_of_a_rotated_volume_is_bit_exact_and_reads_only_its_chunks(order):
    img = tf.lazy(VOLUME, chunks=10).rotate(30, axes=(1, 2), order=order)
    full = img.compute()
    plane = img[12]
    assert plane.shape == full.shape[1:]
    np.testing.assert_array_equal(plane.compute(), full[12])
    keys = _input_keys(plane.to_dask(), img._array.name)
    assert keys and {k[1] for k in keys} == {1}  # plane 12 lives in chunk 1 of axis 0
    # the 2-D rotation of a 40 x 50 plane in 10 x 10 chunks touches at most all 20 of them
    assert len(keys) <= 20
    assert len(_input_keys(img.to_dask(), img._array.name)) == 60


def test_oblique_slice_is_one_2d_resample():
    img = tf.lazy(VOLUME, chunks=10).transform(
        tf.Rotate(20, axes=(0, 2), center=(15, 20, 25)), order=1
    )
    sl = img[:, 17, :]
    (p,) = sl.plan().passes
    assert p.output.shape == (30, 50) and p.ntasks == 15
    np.testing.assert_array_equal(sl.compute(), img.compute()[:, 17, :])


@given(
    st.tuples(
        st.one_of(st.integers(-30, 29), st.slices(30)),
        st.one_of(st.integers(-40, 39), st.slices(40)),
        st.slices(50),
    ),
    st.sampled_from([0, 1]),
)
def test_any_basic_index_equals_the_full_result(key, order):
    img = tf.lazy(VOLUME, chunks=(10, 15, 20)).rotate(15, axes=(0, 1), order=order)
    img = img.shift((0.5, -1.25, 2.0), order=order)
    full = _FULL.setdefault(order, img.compute())
    expected = full[key]
    if expected.size == 0 or expected.ndim == 0:
        return
    np.testing.assert_array_equal(img[key].compute(), expected)


_FULL: dict = {}


def test_view_of_a_view_and_negative_steps():
    img = tf.lazy(VOLUME, chunks=10).zoom(1.2, order=1)
    full = img.compute()
    v = img[2:30:3][:, ::-2][4]
    np.testing.assert_array_equal(v.compute(), full[2:30:3][:, ::-2][4])


def test_higher_orders_agree_to_tolerance():
    img = tf.lazy(VOLUME, chunks=10).rotate(25, axes=(1, 2), order=3, mode="mirror")
    np.testing.assert_allclose(img[7].compute(), img.compute()[7], rtol=0, atol=1e-10)


def test_view_then_more_steps():
    x = VOLUME[0]
    # a view that drops an axis ends the fused run: plane, then zoom, as run one by one
    img = tf.lazy(VOLUME, chunks=10).shift((0, 0.5, 0.25), order=1)
    v = img[3].zoom(2, order=1)
    assert len(v.plan().passes) == 2
    np.testing.assert_array_equal(v.compute(), ndi.zoom(img.compute()[3], 2, order=1))
    # a view keeping every axis fuses: one resample with the composed map
    w = tf.lazy(x, chunks=8).rotate(10, reshape=False, order=1)[::2, 5:].rotate(-5, order=1)
    assert len(w.plan().passes) == 1
    r1 = tf.Rotate(10, axes=(1, 0), center=(19.5, 24.5)).matrix(2)
    view = np.array([[2.0, 0, 0], [0, 1, 5], [0, 0, 1]])
    shape = (20, 45)
    r2 = w.steps[-1].transform.matrix(2)
    m = r1 @ view @ r2
    ref = ndi.affine_transform(x, m, output_shape=w.shape, order=1)
    np.testing.assert_allclose(w.compute(), ref, rtol=0, atol=1e-9)
    assert shape == w.steps[-1].child.output_shape


def test_views_of_inputs_and_coordinate_maps():
    np.testing.assert_array_equal(tf.lazy(VOLUME, chunks=10)[3, ::2].compute(), VOLUME[3, ::2])
    c = RNG.uniform(-2, 32, (2, 20, 30))
    x = VOLUME[5]
    img = tf.lazy(x, chunks=10).transform(tf.CoordinateMap(c), order=1, mode="nearest")
    np.testing.assert_array_equal(
        img[4:9, ::3].compute(), ndi.map_coordinates(x, c[:, 4:9, ::3], order=1, mode="nearest")
    )
    c3 = RNG.uniform(-2, 32, (2, 6, 20, 30))  # an integer index drops an axis of the grid
    img3 = tf.lazy(x, chunks=10).transform(tf.CoordinateMap(c3), order=1)
    np.testing.assert_array_equal(
        img3[3, ::2].compute(), ndi.map_coordinates(x, c3[:, 3, ::2], order=1)
    )


def test_preview_is_a_strided_view():
    img = tf.lazy(VOLUME, chunks=10).rotate(30, axes=(1, 2), order=1)
    p = img.preview(max_size=16)
    np.testing.assert_array_equal(p, img.compute()[::2, ::4, ::4])
    assert max(p.shape) <= 16
    with pytest.raises(ValueError, match="max_size"):
        img.preview(max_size=0)


def test_bad_indices_refused():
    img = tf.lazy(VOLUME, chunks=10).shift(1, order=0)
    with pytest.raises(ValueError, match="out of bounds for axis 0"):
        img[30]
    with pytest.raises(ValueError, match="only integers, slices"):
        img[[1, 2]]
    with pytest.raises(ValueError, match="only integers, slices"):
        img[None]
    with pytest.raises(ValueError, match="4 entries for 3 axes"):
        img[1, 2, 3, 4]
    with pytest.raises(ValueError, match="single point"):
        img[1, 2, 3]


@pytest.mark.parametrize("order", [0, 1, 3])
def test_rank_changing_matrices_like_scipy(order):
    m = np.array([[1.0, 0.2], [0.1, 1.0], [0.3, 0.5]])
    off = [1.0, 0.5, 2.0]
    ref = ndi.affine_transform(VOLUME, m, offset=off, output_shape=(24, 31), order=order)
    out = tf.lazy(VOLUME, chunks=10).affine_transform(m, off, output_shape=(24, 31), order=order)
    tol = 0 if order < 2 else 1e-10
    np.testing.assert_allclose(out.compute(), ref, rtol=0, atol=tol)
    nd = tf.ndinterp.affine_transform(VOLUME, m, off, output_shape=(24, 31), order=order)
    np.testing.assert_allclose(nd.compute(), ref, rtol=0, atol=tol)
    with_column = np.column_stack([m, off])
    again = tf.lazy(VOLUME, chunks=10).affine_transform(with_column, output_shape=(24, 31))
    np.testing.assert_allclose(
        again.compute(), ndi.affine_transform(VOLUME, m, off, output_shape=(24, 31)), atol=1e-10
    )
    with pytest.raises(ValueError, match=r"needs \(3, 2\) or \(3, 3\)"):
        tf.lazy(VOLUME).affine_transform(np.ones((3, 4)), output_shape=(5, 5))


def test_a_thin_plane_prefilters_only_its_neighbourhood():
    vol = np.random.default_rng(9).random((160, 160, 160)).astype(np.float32)
    img = tf.lazy(vol, chunks=160).rotate(20, axes=(0, 2), order=3, reshape=False, mode="mirror")
    plane = img[:, 40]
    arr = plane.to_dask()
    keys = [k for k in dict(arr.__dask_graph__()) if isinstance(k, tuple)]
    local = [k for k in keys if "local" in str(k[0])]
    assert len(local) == 1  # one output chunk: one small prefilter of its slab
    np.testing.assert_allclose(arr.compute(), img.compute()[:, 40], rtol=0, atol=1e-6)
