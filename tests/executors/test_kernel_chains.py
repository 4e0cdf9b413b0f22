"""Chains of stages (affine @ displacement field @ expression ...) on the ``"cpu"``
backend: coordinates per chunk with each field sampled by the compiled kernel
(:mod:`transfuse.executors.kernel_ndi`), then the compiled interpolation kernel — against
the ``"scipy"`` reference backend and scipy.ndimage itself.

Contract: where the field's samples are read with 1 or 2 taps per axis (field order 0 or
1), or the field is 1-D/2-D, the coordinates are the reference's bit for bit, so image
orders 0 and 1 are bit-exact; a 3-D field of order 3 is summed factored by the kernel
(~1e-16 relative off scipy's tap-by-tap sum), so there the bound is 1e-10 x max|input|.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

import transfuse as tf
from transfuse.executors import kernel_ndi
from transfuse.executors import kernel_plan as compiled

pytestmark = pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")

MODES = ["constant", "nearest", "mirror", "reflect", "grid-mirror", "wrap", "grid-wrap"]
MODES += ["grid-constant"]


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts of chunks the kernel computed (True) or handed back (False)."""
    calls = {True: 0, False: 0}
    real = compiled.resample

    def spy(job, footprint, *args, **kwargs):
        out = real(job, footprint, *args, **kwargs)
        if footprint.axes is not None:
            calls[out is not None] += 1
        return out

    monkeypatch.setattr(compiled, "resample", spy)
    return calls


def on(executor, lazy):
    with dask.config.set({"transfuse.executor": executor}):
        return lazy.compute(scheduler="synchronous")


def within_contract(got, ref, x, exact):
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if exact:
        np.testing.assert_array_equal(got, ref)
        return
    err = float(np.max(np.abs(got.astype(np.float64) - ref), initial=0.0))
    assert err <= 1e-10 * max(float(np.max(np.abs(x))), 1.0), err


# -- the compiled field sampler against scipy.ndimage ---------------------------------------


@pytest.mark.parametrize("order", range(6))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_sampler_equals_scipy(order, mode, ndim):
    rng = np.random.default_rng(10 * ndim + order)
    coef = rng.standard_normal((7, 5, 6)[:ndim])
    coords = rng.uniform(-9, 15, (ndim, 4, 6))
    coords[:, 0, :3] = 0.0
    coords[:, 1, :2] = np.array(coef.shape)[:, None] - [1.0, 0.5]  # the edge, a half step
    kw = dict(order=order, mode=mode, cval=0.7, prefilter=False)
    ref = ndi.map_coordinates(coef, coords, **kw)
    got = kernel_ndi.map_coordinates(coef, coords, **kw)
    m = np.eye(ndim) + rng.uniform(-0.4, 0.4, (ndim, ndim))
    off = rng.uniform(-4, 4, ndim)
    ref2 = ndi.affine_transform(coef, m, off, output_shape=(5,) * ndim, **kw)
    got2 = kernel_ndi.affine_transform(coef, m, off, output_shape=(5,) * ndim, **kw)
    # the kernel's factored sum for 4 taps on each of 3 axes (order 3, 3-D) is ~1e-16 off
    exact = not (order == 3 and ndim == 3)
    within_contract(got, ref, coef, exact)
    within_contract(got2, ref2, coef, exact)


def test_sampler_fills_output_in_place_and_keeps_inputs():
    rng = np.random.default_rng(1)
    coef = rng.standard_normal((6, 7)).astype(np.float32)
    coords = rng.uniform(-2, 8, (2, 3, 4))
    before = (coef.copy(), coords.copy())
    out = np.empty((3, 4))
    res = kernel_ndi.map_coordinates(coef, coords, output=out, order=1, mode="nearest")
    assert res is out
    kw = dict(order=1, mode="nearest", prefilter=False)
    np.testing.assert_array_equal(out, ndi.map_coordinates(coef, coords, output=np.float64, **kw))
    for output in (None, np.float32, np.int16):  # scipy's result dtypes (ints rounded)
        got = kernel_ndi.map_coordinates(coef * 10, coords, output=output, **kw)
        ref = ndi.map_coordinates(coef * 10, coords, output=output, **kw)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(coef, before[0])
    np.testing.assert_array_equal(coords, before[1])


def test_sampler_hands_what_the_kernel_does_not_do_to_scipy():
    rng = np.random.default_rng(2)
    four = rng.standard_normal((3, 3, 3, 3))
    c4 = rng.uniform(0, 2, (4, 5))
    np.testing.assert_array_equal(
        kernel_ndi.map_coordinates(four, c4, order=1),
        ndi.map_coordinates(four, c4, order=1, prefilter=False),
    )
    far = np.array([[2.0**63, 1.0]])  # beyond scipy's integer casts: the kernel stops
    x = rng.standard_normal(5)
    np.testing.assert_array_equal(
        kernel_ndi.map_coordinates(x, far, order=1, mode="mirror"),
        ndi.map_coordinates(x, far, order=1, mode="mirror", prefilter=False),
    )


# -- chains on the cpu backend against the reference backend --------------------------------

RNG = np.random.default_rng(5)
IMAGE = RNG.random((40, 44))
GRID = np.indices((20, 22)).astype(float)
U = np.stack([1.5 * np.sin(GRID[1] / 3), np.cos(GRID[0] / 2)])


def _chain(values, field_order, mode, **kw):
    cval = 0.5 if "constant" in mode else 0.0
    field = tf.DisplacementField(values, spacing=2.2, order=field_order, mode=mode, cval=cval, **kw)
    return tf.Rotate(5, center=(20, 22)) @ field @ tf.Scale(1.02)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("field_order", [0, 1, 3])
@pytest.mark.parametrize("order", [0, 1, 3])
def test_affine_field_chain_every_mode(order, field_order, mode, kernel_calls):
    lazy = tf.lazy(IMAGE, chunks=13).transform(
        _chain(U, field_order, mode), order=order, mode=mode, cval=0.25
    )
    ref = on("scipy", lazy)
    got = on("cpu", lazy)
    within_contract(got, ref, IMAGE, exact=order <= 1)
    assert kernel_calls[True] > 0 and kernel_calls[False] == 0


@pytest.mark.parametrize("field_order", [1, 3])
@pytest.mark.parametrize("mode", ["nearest", "reflect", "grid-constant"])
def test_chunked_dask_field(field_order, mode, kernel_calls):
    """Each task reads a window of the field's coefficients (its ``start`` shifts them)."""
    dask_field = da.from_array(U, chunks=(2, 7, 9))
    lazy = tf.lazy(IMAGE, chunks=11).transform(_chain(dask_field, field_order, mode), order=1)
    ref = on("scipy", lazy)
    got = on("cpu", lazy)
    within_contract(got, ref, IMAGE, exact=True)
    assert kernel_calls[True] > 0 and kernel_calls[False] == 0
    whole = on("scipy", tf.lazy(IMAGE, chunks=11).transform(_chain(U, field_order, mode), order=1))
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-10)


def test_max_displacement_is_checked_by_the_cpu_backend():
    field = da.from_array(3 * U, chunks=(2, 7, 9))
    chain = _chain(field, 1, "nearest", max_displacement=1.0)
    with pytest.raises(ValueError, match="max_displacement"):
        on("cpu", tf.lazy(IMAGE, chunks=11).transform(chain, order=1))


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("mode", ["constant", "mirror", "grid-wrap"])
def test_3d_affine_field_expression_chain(order, mode, kernel_calls):
    rng = np.random.default_rng(order)
    x = rng.standard_normal((14, 15, 13)).astype(np.float32)
    g = np.indices((6, 6, 6)).astype(float)
    u = np.stack([np.sin(g[1] / 2), np.cos(g[2] / 3), 0.5 * np.sin(g[0] / 2)])
    z, y, w = tf.symbols("z y x")
    barrel = tf.ExprMap([z, 7 + (y - 7) * (1 + 0.004 * (w - 6) ** 2), w + 0.1 * z], (z, y, w))
    for field_order in (1, 3):
        field = tf.DisplacementField(u, spacing=3.0, order=field_order, mode="nearest")
        T = tf.Rotate(8, axes=(1, 2), center=(7, 7, 6)) @ field @ barrel
        lazy = tf.lazy(x, chunks=(5, 6, 7)).transform(T, order=order, mode=mode)
        ref = on("scipy", lazy)
        got = on("cpu", lazy)
        if field_order == 3 and order == 0:
            # coordinates ~1e-16 apart may round to different samples at a tie (never here,
            # but not promised): most points agree exactly
            assert np.mean(got == ref) > 0.999
        else:
            within_contract(got, ref, x, exact=order <= 1 and field_order == 1)
    assert kernel_calls[True] > 0 and kernel_calls[False] == 0


def test_non_finite_chain_coordinates_raise_on_the_cpu_backend():
    bad = tf.ExprMap(["y", "sqrt(x - 10)"], "y x")
    lazy = tf.lazy(IMAGE, chunks=20).transform(tf.Scale(1.01) @ bad, order=1)
    with pytest.raises(ValueError, match="non-finite"):
        on("cpu", lazy)


@settings(deadline=None, derandomize=True, max_examples=25)
@given(data=st.data(), order=st.sampled_from([0, 1, 3]), mode=st.sampled_from(MODES))
def test_hypothesis_chunkings_of_a_field_chain(data, order, mode):
    chunks = tuple(data.draw(st.integers(3, n)) for n in IMAGE.shape)
    out_chunks = tuple(data.draw(st.integers(3, 30)) for _ in IMAGE.shape)
    field_order = data.draw(st.sampled_from([0, 1, 3]))
    lazy = tf.lazy(IMAGE, chunks=chunks).transform(
        _chain(U, field_order, mode), order=order, mode=mode, output_chunks=out_chunks
    )
    within_contract(on("cpu", lazy), on("scipy", lazy), IMAGE, exact=order <= 1)


def test_explain_names_the_chain_kernel():
    lazy = tf.lazy(IMAGE, chunks=20).transform(_chain(U, 1, "nearest"), order=1)
    with dask.config.set({"transfuse.executor": "cpu"}):
        text = lazy.explain()
    assert "compiled kernel: chain of 3 stages" in text


def test_chains_compile_nothing_new():
    """The field sampler calls the interpolation kernel with the argument types of a plain
    resampling (float32 or float64 samples into their own dtype): no new specialisation,
    no new compile time."""
    from transfuse.executors import kernels_interp

    g = np.indices((5, 5, 5)).astype(float)
    u = np.stack([np.sin(g[1] / 2), np.cos(g[2] / 3), 0.5 * np.sin(g[0] / 2)])
    x = np.random.default_rng(3).random((12, 12, 12))
    for img in (x, x.astype(np.float32)):
        on("cpu", tf.lazy(img, chunks=6).rotate(4, axes=(1, 2), order=1))
    plain = set(kernels_interp._KERNEL.signatures)
    for dtype in (np.float32, np.float64):
        field = tf.DisplacementField(u.astype(dtype), spacing=3.0, order=3, mode="nearest")
        T = tf.Rotate(4, axes=(1, 2), center=(6, 6, 6)) @ field @ tf.Scale(1.01)
        for img in (x, x.astype(np.float32)):
            on("cpu", tf.lazy(img, chunks=6).transform(T, order=1))
    assert set(kernels_interp._KERNEL.signatures) == plain
