"""The lazy image API against scipy.ndimage (issue 2)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

import transfuse as tf


def _rng(seed=0):
    return np.random.default_rng(seed)


def random_affine_step(draw, ndim):
    """One random, well-conditioned affine transform as a transfuse node."""
    kind = draw(st.sampled_from(["rotate", "scale", "shear", "translate", "affine"]))
    center = tuple(draw(st.floats(2, 8)) for _ in range(ndim))
    if kind == "rotate" and ndim >= 2:
        axes = tuple(draw(st.permutations(range(ndim)))[:2])
        return tf.Rotate(draw(st.floats(-180, 180)), axes=axes, center=center)
    if kind == "scale":
        return tf.Scale(tuple(draw(st.floats(0.6, 1.6)) for _ in range(ndim)))
    if kind == "shear" and ndim >= 2:
        return tf.Shear(draw(st.floats(-0.4, 0.4)), axes=(0, ndim - 1), ndim=ndim)
    if kind == "affine":
        m = np.eye(ndim) + np.array(
            [[draw(st.floats(-0.2, 0.2)) for _ in range(ndim)] for _ in range(ndim)]
        )
        return tf.Affine(m, offset=tuple(draw(st.floats(-3, 3)) for _ in range(ndim)), ndim=ndim)
    return tf.Translate(tuple(draw(st.floats(-4, 4)) for _ in range(ndim)))


@st.composite
def chains(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 13)) for _ in range(ndim))
    steps = [random_affine_step(draw, ndim) for _ in range(draw(st.integers(3, 4)))]
    in_chunks = tuple(draw(st.integers(1, max(1, n))) for n in shape)
    out_chunks = tuple(draw(st.integers(1, max(1, n))) for n in shape)
    order = draw(st.integers(0, 5))
    mode = draw(st.sampled_from(["constant", "nearest", "grid-constant"]))
    return shape, steps, in_chunks, out_chunks, order, mode


@settings(max_examples=60, deadline=None)
@given(chains())
def test_fused_chain_equals_one_scipy_call(case):
    shape, steps, in_chunks, out_chunks, order, mode = case
    x = _rng().standard_normal(shape)
    img = tf.lazy(x, chunks=in_chunks)
    for s in steps:
        img = img.transform(s, order=order, mode=mode, cval=0.25, output_chunks=out_chunks)
    composed = steps[0]
    for s in steps[1:]:
        composed = composed @ s
    ref = ndi.affine_transform(x, composed.matrix(len(shape)), order=order, mode=mode, cval=0.25)
    got = img.compute()
    assert len(img.plan().passes) == 1
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8 * np.abs(x).max())


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 5])
def test_image_methods_equal_scipy_functions(order):
    x = _rng(1).random((17, 22))
    lazy = tf.lazy(x, chunks=(5, 7))
    tol = 1e-8 * np.abs(x).max()
    cases = [
        (lazy.rotate(27, order=order), ndi.rotate(x, 27, order=order)),
        (
            lazy.rotate(-40, axes=(0, 1), reshape=False, order=order, mode="nearest"),
            ndi.rotate(x, -40, axes=(0, 1), reshape=False, order=order, mode="nearest"),
        ),
        (lazy.zoom((1.5, 0.7), order=order), ndi.zoom(x, (1.5, 0.7), order=order)),
        (
            lazy.shift((2.5, -1.25), order=order, cval=3.0),
            ndi.shift(x, (2.5, -1.25), order=order, cval=3.0),
        ),
        (
            lazy.affine_transform(
                [[0.9, 0.3], [-0.2, 1.1]],
                (1.0, -2.0),
                output_shape=(20, 15),
                order=order,
                mode="grid-constant",
            ),
            ndi.affine_transform(
                x,
                [[0.9, 0.3], [-0.2, 1.1]],
                (1.0, -2.0),
                output_shape=(20, 15),
                order=order,
                mode="grid-constant",
            ),
        ),
        (
            lazy.affine_transform([1.2, 0.8], 0.5, order=order),
            ndi.affine_transform(x, [1.2, 0.8], 0.5, order=order),
        ),
    ]
    for got, ref in cases:
        assert got.shape == ref.shape
        np.testing.assert_allclose(got.compute(), ref, rtol=0, atol=tol)


def test_transform_equals_affine_transform_with_its_matrix():
    x = _rng(2).random((9, 10, 11))
    T = tf.Rotate(30, axes=(0, 2), center=(4, 5, 5)) @ tf.Scale((1.1, 0.9, 1.0))
    got = tf.lazy(x, chunks=4).transform(T, order=3).compute()
    ref = ndi.affine_transform(x, T.matrix(), order=3)
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_order0_and_order1_are_bit_exact():
    x = _rng(3).standard_normal((31, 29))
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
    x = _rng(4).random((12, 12))
    A, B = tf.Translate((2.0, 0.0)), tf.Rotate(90, center=(5.5, 5.5))
    got = tf.lazy(x).transform(A, order=1).transform(B, order=1).compute()
    np.testing.assert_allclose(got, ndi.affine_transform(x, (A @ B).matrix(), order=1))
    assert not np.allclose(got, ndi.affine_transform(x, (B @ A).matrix(), order=1))


def test_different_options_make_separate_passes_like_sequential_calls():
    x = _rng(5).random((15, 15))
    img = tf.lazy(x, chunks=5).shift((1.5, 0), order=1).shift((0, 2.5), order=3, mode="wrap")
    assert len(img.plan().passes) == 2
    ref = ndi.shift(ndi.shift(x, (1.5, 0), order=1), (0, 2.5), order=3, mode="wrap")
    np.testing.assert_allclose(img.compute(), ref, atol=1e-10)


def test_symbolic_chain_bound_equals_numeric_chain():
    theta, s = tf.symbols("theta s")
    x = _rng(6).random((14, 16))
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
    x = _rng(7).random((10, 10))
    before = x.copy()
    out = tf.lazy(da.from_array(x, chunks=3)).rotate(10, order=3, mode="mirror").compute()
    assert np.array_equal(x, before)
    np.testing.assert_allclose(out, ndi.rotate(before, 10, mode="mirror"), atol=1e-10)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_output_dtype_follows_scipy(dtype):
    x = (_rng(8).random((12, 13)) * 200).astype(dtype)
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
    x = _rng(9).random((11, 13))
    coords = _rng(10).uniform(-2, 14, (2, *grid))
    got = tf.lazy(x, chunks=4).transform(tf.CoordinateMap(coords), order=3, mode="reflect")
    assert got.shape == grid
    np.testing.assert_allclose(
        got.compute(), ndi.map_coordinates(x, coords, order=3, mode="reflect"), atol=1e-10
    )
