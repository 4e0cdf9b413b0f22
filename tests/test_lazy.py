"""The lazy image API against scipy.ndimage (issue 2).

Every mode x order x prefilter of ``affine_transform``, ``rotate`` and coordinate maps is
checked by the parity matrix (``tests/test_parity_matrix.py``), and fused chains of random
steps by ``tests/executors/test_scipy_parity.py``; this module checks the other methods, how
steps compose, and bad input.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse as tf
from tests.helpers import assert_parity, random_image
from tests.strategies import ORDERS


@pytest.mark.parametrize("order", ORDERS)
def test_image_methods_equal_scipy_functions(order):
    """zoom, shift and the diagonal form of affine_transform at every order (rotate and the
    general affine_transform: the parity matrix)."""
    x = random_image((17, 22), seed=1, kind="unit")
    lazy = tf.lazy(x, chunks=(5, 7))
    cases = [
        (lazy.zoom((1.5, 0.7), order=order), ndi.zoom(x, (1.5, 0.7), order=order)),
        (
            lazy.shift((2.5, -1.25), order=order, cval=0.75),
            ndi.shift(x, (2.5, -1.25), order=order, cval=0.75),
        ),
        (
            lazy.affine_transform([1.2, 0.8], 0.5, order=order),
            ndi.affine_transform(x, [1.2, 0.8], 0.5, order=order),
        ),
    ]
    for got, ref in cases:
        assert got.shape == ref.shape
        assert_parity(got.compute(), ref, x=x, cval=0.75, order=order)


def test_transform_equals_affine_transform_with_its_matrix():
    x = random_image((9, 10, 11), seed=2, kind="unit")
    T = tf.Rotate(30, axes=(0, 2), center=(4, 5, 5)) @ tf.Scale((1.1, 0.9, 1.0))
    got = tf.lazy(x, chunks=4).transform(T, order=3).compute()
    ref = ndi.affine_transform(x, T.matrix(), order=3)
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_order0_and_order1_are_bit_exact():
    x = random_image((31, 29), seed=3)
    T = tf.Rotate(33, center=(15, 14)) @ tf.Scale((1.07, 0.93))
    for order in (0, 1):
        got = tf.lazy(x, chunks=(8, 6)).transform(T, order=order).compute()
        ref = ndi.affine_transform(x, T.matrix(), order=order)
        assert np.array_equal(got, ref)


def gaussian(shape, sigmas):
    grid = np.indices(shape, dtype=np.float64)
    center = (np.array(shape) - 1) / 2
    r2 = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, center, sigmas, strict=True))
    return np.exp(-r2 / 2)


def test_rotate_then_zoom_matches_sequential_scipy_within_interpolation_error():
    # A smooth Gaussian whose directional second derivatives are bounded by 1/s^2 (s the
    # smallest sigma). Order-1 interpolation on a unit grid errs by at most
    # B = h^2/8 * sum over axes of max|f_aa| = 2/(8 s^2). The fused result resamples once
    # (error <= B), the sequential one twice, and linear interpolation does not amplify
    # errors in the max norm, so the two differ by at most 3B. A wrong composition order
    # or direction gives errors of order 1.
    sigmas = (5.0, 9.0)
    x = gaussian((64, 64), sigmas)
    bound = 3 * 2 / (8 * min(sigmas) ** 2)
    zoom = (1.3, 0.8)
    fused = tf.lazy(x, chunks=16).rotate(25, order=1).zoom(zoom, order=1).compute()
    seq = ndi.zoom(ndi.rotate(x, 25, order=1), zoom, order=1)
    assert fused.shape == seq.shape
    err = np.abs(fused - seq).max()
    assert err <= bound, (err, bound)
    # composing the same two steps the other way round is far off
    rot, zm = (step.transform for step in tf.lazy(x).rotate(25, order=1).zoom(zoom, order=1).steps)
    wrong = tf.lazy(x).transform(zm @ rot, output_shape=seq.shape, order=1).compute()
    assert np.abs(wrong - seq).max() > 0.3


def test_chaining_composes_left_to_right():
    x = random_image((12, 12), seed=4, kind="unit")
    A, B = tf.Translate((2.0, 0.0)), tf.Rotate(90, center=(5.5, 5.5))
    got = tf.lazy(x).transform(A, order=1).transform(B, order=1).compute()
    np.testing.assert_allclose(got, ndi.affine_transform(x, (A @ B).matrix(), order=1))
    assert not np.allclose(got, ndi.affine_transform(x, (B @ A).matrix(), order=1))


def test_different_options_make_separate_passes_like_sequential_calls():
    x = random_image((15, 15), seed=5, kind="unit")
    img = tf.lazy(x, chunks=5).shift((1.5, 0), order=1).shift((0, 2.5), order=3, mode="wrap")
    assert len(img.plan().passes) == 2
    ref = ndi.shift(ndi.shift(x, (1.5, 0), order=1), (0, 2.5), order=3, mode="wrap")
    np.testing.assert_allclose(img.compute(), ref, atol=1e-10)


def test_symbolic_chain_bound_equals_numeric_chain():
    theta, s = tf.symbols("theta s")
    x = random_image((14, 16), seed=6, kind="unit")
    symbolic = (
        tf.lazy(x, chunks=5)
        .transform(tf.Rotate(theta, center=(7, 8)))
        .transform(tf.Scale((s, 1.0)))
    )
    with pytest.raises(ValueError, match="theta"):
        symbolic.compute()
    bound = symbolic.bind(theta=30, s=1.2).compute()
    numeric = (
        tf.lazy(x, chunks=5).transform(tf.Rotate(30, center=(7, 8))).transform(tf.Scale((1.2, 1.0)))
    )
    np.testing.assert_array_equal(bound, numeric.compute())


def test_input_is_not_modified_and_dask_input_accepted():
    x = random_image((10, 10), seed=7, kind="unit")
    before = x.copy()
    out = tf.lazy(da.from_array(x, chunks=3)).rotate(10, order=3, mode="mirror").compute()
    assert np.array_equal(x, before)
    np.testing.assert_allclose(out, ndi.rotate(before, 10, mode="mirror"), atol=1e-10)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_output_dtype_follows_scipy(dtype):
    x = (random_image((12, 13), seed=8, kind="unit") * 200).astype(dtype)
    got = tf.lazy(x, chunks=4).rotate(15, order=3).compute()
    ref = ndi.rotate(x, 15, order=3)
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(
        got.astype(float), ref.astype(float), atol=1 if np.dtype(dtype).kind in "iu" else 1e-4
    )
    forced = tf.lazy(x, chunks=4).rotate(15, order=3, output=np.float64).compute()
    assert forced.dtype == np.float64


class TestBadInput:
    x = np.zeros((6, 7))

    def test_order_out_of_range(self):
        with pytest.raises(ValueError, match="order=7"):
            tf.lazy(self.x).rotate(10, order=7)

    def test_unknown_mode(self):
        with pytest.raises(ValueError, match="mode='bogus'"):
            tf.lazy(self.x).shift(1, mode="bogus")

    def test_non_finite_matrix_and_offset(self):
        with pytest.raises(ValueError, match="matrix"):
            tf.lazy(self.x).affine_transform([[np.nan, 0], [0, 1]])
        with pytest.raises(ValueError, match="offset"):
            tf.lazy(self.x).affine_transform(np.eye(2), offset=(np.inf, 0))

    def test_wrong_matrix_shape(self):
        with pytest.raises(ValueError, match="matrix"):
            tf.lazy(self.x).affine_transform(np.eye(4))

    def test_ndim_mismatch(self):
        with pytest.raises(ValueError, match="ndim"):
            tf.lazy(self.x).transform(tf.Translate((1, 2, 3)))

    def test_negative_output_shape(self):
        with pytest.raises(ValueError, match="output_shape"):
            tf.lazy(self.x).transform(tf.Identity(), output_shape=(-1, 5))
        # an axis of 0 is scipy's empty result, not an error
        assert tf.lazy(self.x).transform(tf.Identity(), output_shape=(0, 5)).compute().shape == (
            0,
            5,
        )

    def test_singular_matrix_inverse(self):
        with pytest.raises(ValueError, match="singular"):
            tf.Affine([[1, 2], [2, 4]]).inverse()

    def test_bad_cval_and_prefilter(self):
        with pytest.raises(ValueError, match="cval"):
            tf.lazy(self.x).shift(1, cval="0")
        tf.lazy(self.x).shift(1, cval=np.nan)  # NaN fills, as in scipy
        with pytest.raises(ValueError, match="prefilter"):
            tf.lazy(self.x).shift(1, prefilter="yes")

    def test_bad_output_chunks(self):
        with pytest.raises(ValueError, match="output_chunks"):
            tf.lazy(self.x).shift(1, output_chunks=(0, 3))


@pytest.mark.parametrize("grid", [(40,), (3, 4, 5)])
def test_coordinate_map_output_rank_may_differ_from_input(grid):
    x = random_image((11, 13), seed=9, kind="unit")
    coords = np.random.default_rng(10).uniform(-2, 14, (2, *grid))
    got = tf.lazy(x, chunks=4).transform(tf.CoordinateMap(coords), order=3, mode="reflect")
    assert got.shape == grid
    np.testing.assert_allclose(
        got.compute(), ndi.map_coordinates(x, coords, order=3, mode="reflect"), atol=1e-10
    )


@pytest.mark.parametrize("grid", [(7, 9), (3, 4, 5)])
def test_a_chain_ending_in_a_coordinate_map_has_its_output_grid(grid):
    """``field @ CoordinateMap(c)``: the image's shape is the coordinate map's grid, as
    for the map alone, and is the shape compute() returns."""
    x = random_image((11, 13), seed=9, kind="unit")
    coords = np.random.default_rng(10).uniform(0, 10, (2, *grid))
    field = tf.DisplacementField(np.full((2, 4, 4), 0.5), spacing=4, order=1)
    alone = tf.lazy(x, chunks=4).transform(tf.CoordinateMap(coords), order=1)
    chained = tf.lazy(x, chunks=4).transform(field @ tf.CoordinateMap(coords), order=1)
    assert chained.shape == alone.shape == grid
    assert chained.compute().shape == chained.to_dask().shape == grid
    np.testing.assert_allclose(
        chained.compute(), ndi.map_coordinates(x, coords + 0.5, order=1), atol=1e-12
    )
