"""What real dask_image callers pass (scale issue, item 4): each shaped like the real call."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse as tf
from transfuse import ndinterp

X = np.random.default_rng(3).random((20, 24))


def test_cval_nan_fills_nan_like_scipy():  # xcube passes cval=np.nan
    m = [[1.0, 0.1], [0.0, 1.0]]
    out = ndinterp.affine_transform(da.from_array(X, chunks=8), m, offset=-3, cval=np.nan)
    ref = ndi.affine_transform(X, m, offset=-3, order=1, cval=np.nan)
    np.testing.assert_array_equal(out.compute(), ref)  # NaN where scipy has NaN, else equal
    img = tf.lazy(X, chunks=8).shift(2.5, order=1, cval=np.nan).rotate(5, order=1, cval=np.nan)
    assert len(img.plan().passes) == 1  # equal options (NaN included) still fuse


def test_whole_number_float_output_shape():  # sopa passed [3, 50.0, 60.0]
    vol = np.random.default_rng(4).random((3, 20, 24))
    out = ndinterp.affine_transform(vol, np.eye(3), output_shape=[3, 50.0, 60.0], order=1)
    assert out.shape == (3, 50, 60)
    np.testing.assert_array_equal(
        out.compute(), ndi.affine_transform(vol, np.eye(3), output_shape=(3, 50, 60), order=1)
    )
    with pytest.raises(ValueError, match="output_shape"):
        ndinterp.affine_transform(vol, np.eye(3), output_shape=[3, 50.5, 60])


def test_zero_d_spline_filter_returns_zero_d():
    out = ndinterp.spline_filter(np.array(3.0)).compute()
    assert out.shape == () and out == ndi.spline_filter(np.array(3.0))


def test_depth_forms_as_dask_image():
    x = da.from_array(X, chunks=8)
    ndinterp.spline_filter(x, depth=(20, 20))
    ndinterp.spline_filter(x, depth={0: 20, 1: 25})
    with pytest.raises(ValueError, match="one entry per axis"):
        ndinterp.spline_filter(x, depth=(20, 20, 20))
    with pytest.raises(ValueError, match="scalar"):
        ndinterp.spline_filter1d(x, depth=(0, 20))  # dask_image: depth must be a scalar
    ref = ndi.spline_filter1d(X, 3, axis=0)
    got = ndinterp.spline_filter1d(x, axis=0, depth=25).compute()
    assert np.abs(got - ref).max() < 1e-10 * np.abs(ref).max()


def test_recipes_still_refuse_nan_cval():
    with pytest.raises(ValueError, match="JSON has no NaN"):
        tf.Pipeline(tf.Translate((1.0, 0.0)), cval=float("nan"))


@pytest.mark.parametrize("mode", ["nearest", "grid-constant"])
@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("executor", ["scipy", "cpu"])
def test_coordinates_beyond_two_to_the_53(mode, order, executor):
    # the far-point shift used to round such coordinates to 0: 2**60 read the first sample
    x = np.arange(10.0)
    c = np.array([[2.0**60, -(2.0**60), 2.0**53 + 2, 5.5, 12.25]])
    got = ndinterp.map_coordinates(x, c, order=order, mode=mode, cval=-1, executor=executor)
    np.testing.assert_array_equal(
        got.compute(), ndi.map_coordinates(x, c, order=order, mode=mode, cval=-1)
    )
