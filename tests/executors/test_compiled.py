"""The compiled order-1 kernels against scipy.ndimage, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse as tf
from transfuse.executors import compiled

pytestmark = pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")


@pytest.mark.parametrize("mode", ["constant", "nearest", "mirror"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
@pytest.mark.parametrize("ndim", [2, 3])
def test_compiled_path_is_bit_exact(mode, dtype, ndim, monkeypatch):
    rng = np.random.default_rng(ndim)
    shape = (23, 19, 17)[:ndim]
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    center = tuple((n - 1) / 2 for n in shape)
    T = tf.Rotate(23, axes=(0, ndim - 1), center=center) @ tf.Scale((1.1,) * ndim)
    img = tf.lazy(x, chunks=6).transform(T, order=1, mode=mode, cval=3.5, output_chunks=7)
    ref = ndi.affine_transform(x, T.matrix(), order=1, mode=mode, cval=3.5)
    with_numba = img.compute()
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    without = img.compute()
    assert np.array_equal(with_numba, ref)
    assert np.array_equal(without, ref)


def test_compiled_kernel_is_used_for_interior_and_constant_chunks(monkeypatch):
    calls = []
    real = compiled.affine_linear

    def spy(*args, **kwargs):
        calls.append(kwargs.get("outside") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(compiled, "affine_linear", spy)
    x = np.random.default_rng(0).random((40, 40))
    tf.lazy(x, chunks=10).transform(tf.Rotate(10, center=(19.5, 19.5)), order=1).compute()
    assert False in calls and True in calls  # direct chunks and chunks reaching outside
