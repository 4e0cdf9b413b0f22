"""Hardening (issue 9) in the lazy layer and the planner: limits, dtypes, empty arrays and
argument checks, each a clear error at build time or scipy's answer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

import transfuse as tf


def test_too_many_output_chunks_refused_at_build_time():
    with pytest.raises(ValueError, match="over the limit of 1,000,000"):
        tf.lazy(np.ones((4, 4))).zoom(1e6).plan()
    with pytest.raises(ValueError, match="output_chunks.*over the limit"):
        tf.lazy(np.ones((4, 4))).transform(
            tf.Identity(), output_shape=(10**6, 10**6), output_chunks=1
        )


def test_limits_are_configurable_and_restorable():
    img = tf.lazy(np.zeros((40, 40)), chunks=4).shift(1, order=1)
    old = tf.set_limits(max_chunks=99)
    try:
        with pytest.raises(ValueError, match="100 chunks, over the limit of 99"):
            img.plan()
        tf.set_limits(max_chunks=100)
        assert img.plan().passes[0].ntasks == 100
        tf.set_limits(max_output_bytes=1000)
        with pytest.raises(ValueError, match="12,800 bytes"):
            img.plan()
    finally:
        tf.set_limits(**old)
    with pytest.raises(ValueError, match="max_chunks=0"):
        tf.set_limits(max_chunks=0)


def test_big_endian_input_computes_like_native():
    x = (np.arange(48.0) * 3.5).reshape(6, 8)
    big = x.astype(">f8")
    out = tf.lazy(big, chunks=3).rotate(20, order=1).compute()
    np.testing.assert_array_equal(out, ndi.rotate(x, 20, order=1))
    u16 = (np.arange(48) * 1000).reshape(6, 8).astype(">u2")
    out = tf.lazy(u16, chunks=4).shift((0.5, 0.25), order=1).compute()
    np.testing.assert_array_equal(out, ndi.shift(u16.astype(np.uint16), (0.5, 0.25), order=1))


def test_bool_input_and_output_like_scipy():
    x = np.zeros((9, 9), dtype=bool)
    x[2:6, 3:7] = True
    for order in (0, 1, 3):
        out = tf.lazy(x, chunks=4).rotate(30, order=order).compute()
        np.testing.assert_array_equal(out, ndi.rotate(x, 30, order=order))
    y = np.linspace(-3, 300, 200).reshape(10, 20)
    for order in (1, 3):
        out = tf.lazy(y, chunks=7).zoom(1.3, order=order, output=bool).compute()
        np.testing.assert_array_equal(out, ndi.zoom(y, 1.3, order=order, output=bool))


def test_float16_refused_with_advice():
    with pytest.raises(ValueError, match="float16.*astype"):
        tf.lazy(np.ones((4, 4), dtype=np.float16))


def test_empty_arrays_give_scipys_empty_results():
    e = np.zeros((0, 5))
    assert tf.lazy(e).zoom(2).compute().shape == ndi.zoom(e, 2).shape
    assert (
        tf.lazy(np.ones((4, 4))).zoom(0.1).compute().shape == ndi.zoom(np.ones((4, 4)), 0.1).shape
    )
    out = tf.lazy(e).affine_transform(np.eye(2), output_shape=(3, 3), cval=2.0).compute()
    np.testing.assert_array_equal(out, np.full((3, 3), 2.0))
    with pytest.raises(ValueError, match="empty image.*'nearest'"):
        tf.lazy(e).affine_transform(np.eye(2), output_shape=(3, 3), mode="nearest").plan()


def test_flip_axes_out_of_range_refused():
    with pytest.raises(ValueError, match="axis 5 is out of range"):
        tf.lazy(np.zeros((3, 4))).flip(axes=5)
    with pytest.raises(ValueError, match="must be integers"):
        tf.lazy(np.zeros((3, 4))).flip(axes=True)
    np.testing.assert_array_equal(
        tf.lazy(np.arange(12.0).reshape(3, 4)).flip(-1).compute(),
        np.flip(np.arange(12.0).reshape(3, 4), -1),
    )


@pytest.mark.parametrize("chunks", [0, -5, (2, 0), True, 2.5])
def test_bad_input_chunks_refused(chunks):
    with pytest.raises(ValueError, match="chunks="):
        tf.lazy(np.zeros((4, 4)), chunks=chunks)


def test_bad_output_chunks_and_axes_refused():
    with pytest.raises(ValueError, match=r"output_chunks\[0\]=True"):
        tf.lazy(np.zeros((8, 8))).shift(1, output_chunks=(True, 5))
    with pytest.raises(ValueError, match="two integer axes"):
        tf.lazy(np.zeros((8, 8, 8))).rotate(10, axes=(0, "1"))
    with pytest.raises(ValueError, match="two integer axes"):
        tf.lazy(np.zeros((8, 8, 8))).rotate(10, axes=(0, True))


@pytest.mark.parametrize("text", ["sqrt(y - 5)", "log(y)", "1/(y - 3)", "asin(y / 10)"])
def test_expressions_outside_their_domain_fail_at_to_dask(text):
    T = tf.ExprMap([text, "x"], "y x")
    img = tf.lazy(np.zeros((20, 20)), chunks=8).transform(T, order=1)
    with pytest.raises(ValueError, match="non-finite coordinates in the output box"):
        img.to_dask()


def test_expressions_inside_their_domain_build_and_compute():
    y, x = tf.symbols("y x")
    x0 = np.random.default_rng(5).random((20, 20))
    # sqrt of a sum of squares: the natural interval bound may dip below 0, the values don't
    T = tf.ExprMap([y, ((x - 4) ** 2 + 1) ** 0.5], (y, x))
    out = tf.lazy(x0, chunks=8).transform(T, order=1).compute()
    grid = np.indices(x0.shape).astype(float)
    ref = ndi.map_coordinates(x0, [grid[0], np.sqrt((grid[1] - 4) ** 2 + 1)], order=1)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize(
    "call",
    [
        lambda img: img.shift("1"),
        lambda img: img.shift(("1", 2)),
        lambda img: img.zoom("2"),
        lambda img: img.rotate("30"),
        lambda img: img.shift(True),
    ],
)
def test_text_is_never_parsed_as_numbers(call):
    with pytest.raises(ValueError, match="must be"):
        call(tf.lazy(np.zeros((4, 4))))


def test_binding_a_parameter_to_a_coordinate_refused():
    y, x, k = tf.symbols("y x k")
    T = tf.ExprMap([y + k * x, x], (y, x))
    with pytest.raises(ValueError, match="cannot become a coordinate"):
        T.bind(k=x)
    assert T.bind(k=2).expressions[0] == y + 2 * x


_DTYPES = [
    np.dtype(c).newbyteorder(e) for c in ("u1", "i2", "u2", "i4", "f4", "f8") for e in ("<", ">")
] + [np.dtype(bool)]


@given(
    st.sampled_from(_DTYPES),
    st.sampled_from([None, np.uint8, np.int16, np.float32, bool]),
    st.sampled_from([0, 1, 3]),
    st.integers(1, 7),
)
def test_any_input_and_output_dtype_computes_like_scipy(dtype, output, order, chunk):
    # the dtype class of the hardening issue: every real dtype, either byte order
    raw = np.random.default_rng(chunk).uniform(-20, 300, (9, 11))
    x = raw.astype(dtype)
    native = x.astype(dtype.newbyteorder("="))
    got = tf.lazy(x, chunks=chunk).rotate(17, order=order, output=output).compute()
    ref = ndi.rotate(native, 17, order=order, output=output)
    assert got.dtype == ref.dtype.newbyteorder("=")
    if order < 2:
        np.testing.assert_array_equal(got, ref)  # bit for bit
    elif ref.dtype.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8 * 300)
    else:  # integers and bools: only values within ~1e-12 of a rounding edge may differ
        differ = got != ref
        assert differ.mean() <= 0.02
        if ref.dtype.kind in "iu":
            assert np.abs(got.astype(np.int64) - ref.astype(np.int64)).max() <= 1
