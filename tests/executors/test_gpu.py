"""The ``"gpu"`` backend against scipy.ndimage (the reference) and the ``"scipy"`` backend.

Here the kernels run in numba-cuda's simulator on a :class:`HostDevice` (tests/conftest.py
sets ``NUMBA_ENABLE_CUDASIM=1`` before numba.cuda is imported); with
``TRANSFUSE_TEST_REAL_GPU=1`` on a machine with a CUDA device and cupy they run on the
device (``benchmarks/gpu_check.py``). The simulator costs about a millisecond per thread,
so every case is a few hundred output points.

Contract checked: orders 0 and 1 equal scipy (bit for bit in the simulator; within 1e-12
on a device, whose fused multiply-adds may move the last bit); orders 2-5 within
1e-8 x max|input| for float64; float32 inputs (float32 coefficients) within
1e-5 x max|input|. Every test that computes through the kernels also checks that no chunk
fell back to the host reference path (``GPUExecutor.fallbacks``).
"""

from __future__ import annotations

import os
import threading
import time

import dask
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

import transfuse as tf
from tests import strategies
from tests.strategies import examples
from transfuse.executors import gpu_device as gd
from transfuse.executors import spline_coefficients
from transfuse.executors.spline import float32_coefficients_allowed

REAL = os.environ.get("TRANSFUSE_TEST_REAL_GPU") == "1"

try:
    import numba.cuda  # noqa: F401

    _MISSING = None
except ImportError as exc:  # pragma: no cover - numba-cuda not installed
    _MISSING = f"numba-cuda is not installed ({exc})"

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

MODES = ["constant", "nearest", "mirror", "reflect", "wrap", "grid-wrap", "grid-constant"]
MODES += ["grid-mirror"]


def _device():
    if REAL:
        try:
            return gd.select_device("cupy")
        except gd.GPUUnavailableError as exc:  # pragma: no cover - no device
            pytest.skip(str(exc))
    if not gd.simulator_enabled():  # pragma: no cover - numba.cuda imported before conftest
        pytest.skip("NUMBA_ENABLE_CUDASIM was not set before numba.cuda was imported")
    return gd.HostDevice()


@pytest.fixture
def gpu():
    from transfuse.executors.gpu import GPUExecutor

    return GPUExecutor(_device())


def host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def run(img, executor):
    return host(img.compute(executor=executor, scheduler="sync"))


def check(got, ref, x, order, dtype=np.float64):
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = max(float(np.abs(x).max()), 1.0)
    if np.dtype(dtype) == np.float32 and order > 1:
        tol = 1e-5 * scale
    elif order <= 1:
        tol = 1e-12 * scale if REAL else 0.0
    else:
        tol = 1e-8 * scale
    err = float(np.nanmax(np.abs(got.astype(np.float64) - ref.astype(np.float64)), initial=0))
    assert err <= tol, f"max error {err:.3g} > {tol:.3g}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


def no_fallback(ex, allowed=("every point reads cval",)):
    assert set(ex.fallbacks) <= set(allowed), dict(ex.fallbacks)


# -- every order x every mode -------------------------------------------------------------


@pytest.mark.parametrize("order", range(6))
@pytest.mark.parametrize("mode", MODES)
def test_1d_affine_every_order_and_mode(gpu, order, mode):
    x = np.random.default_rng(order).standard_normal(13)
    img = tf.lazy(x, chunks=5).affine_transform(
        [[1.3]], -2.5, output_shape=(17,), order=order, mode=mode, cval=0.75
    )
    ref = ndi.affine_transform(
        x, [[1.3]], -2.5, output_shape=(17,), order=order, mode=mode, cval=0.75
    )
    check(run(img, gpu), ref, x, order)
    no_fallback(gpu)


@pytest.mark.parametrize("order", range(6))
@pytest.mark.parametrize("mode", MODES)
def test_2d_rotation_every_order_and_mode(gpu, order, mode):
    x = np.random.default_rng(10 + order).standard_normal((9, 11))
    img = tf.lazy(x, chunks=5).rotate(23, reshape=False, order=order, mode=mode, cval=-0.5)
    ref = ndi.rotate(x, 23, reshape=False, order=order, mode=mode, cval=-0.5)
    got = run(img, gpu)
    check(got, ref, x, order)
    if order <= 1 and not REAL:
        np.testing.assert_array_equal(got, run(img, "scipy"))
    no_fallback(gpu)


@examples(0.1)
@given(data=st.data())
def test_random_affine_maps_chunkings_and_options(data):
    # hypothesis draws (derandomized in CI): shapes with short axes, dask chunkings of 1+
    # samples, general / permutation / diagonal matrices, far offsets, every option
    from transfuse.executors.gpu import GPUExecutor

    ex = GPUExecutor(_device())
    shape = data.draw(strategies.shapes(2, max_side=7))
    chunks = data.draw(strategies.chunkings(shape))
    lin = data.draw(strategies.linear_parts(2))
    offset = np.array([data.draw(strategies.OFFSET) for _ in range(2)])
    opts = data.draw(strategies.options())
    x = np.random.default_rng(data.draw(strategies.SEEDS)).standard_normal(shape)
    img = tf.lazy(dask.array.from_array(x, chunks=chunks)).affine_transform(lin, offset, **opts)
    ref = ndi.affine_transform(x, lin, offset, **opts)
    got = run(img, ex)
    # without the prefilter the simulator repeats scipy's operations exactly at any order
    order = opts["order"] if opts["prefilter"] or REAL else min(opts["order"], 1)
    check(got, ref, x, order)


# -- kernel forms: 3-D matrix, separable, views, slice by slice ------------------------------


@pytest.mark.parametrize("order", [1, 3])
def test_3d_affine(gpu, order):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7, 8))
    m = np.eye(3) + 0.1 * rng.standard_normal((3, 3))
    off = [0.4, -0.7, 1.1]
    img = tf.lazy(x, chunks=4).affine_transform(m, off, order=order, mode="reflect")
    ref = ndi.affine_transform(x, m, off, order=order, mode="reflect")
    check(run(img, gpu), ref, x, order)
    no_fallback(gpu)


def test_separable_zoom_shift_and_views(gpu):
    x = np.random.default_rng(4).standard_normal((10, 12))
    zoomed = tf.lazy(x, chunks=6).zoom(1.4, order=3, mode="mirror")
    check(run(zoomed, gpu), ndi.zoom(x, 1.4, order=3, mode="mirror"), x, 3)
    shifted = tf.lazy(x, chunks=6).shift((1.25, -2.5), order=1, mode="nearest")
    check(run(shifted, gpu), ndi.shift(x, (1.25, -2.5), order=1, mode="nearest"), x, 1)
    view = tf.lazy(x, chunks=6).rotate(17, reshape=False, order=1)[2:9:3, ::2]
    full = ndi.rotate(x, 17, reshape=False, order=1)
    check(run(view, gpu), full[2:9:3, ::2], x, 1)
    no_fallback(gpu)


def test_volume_rotation_works_plane_by_plane(gpu):
    x = np.random.default_rng(5).standard_normal((3, 8, 9))
    img = tf.lazy(x, chunks=(2, 5, 5)).rotate(31, axes=(1, 2), reshape=False, order=3)
    assert img.plan().passes[0].batch_axes  # the slice-by-slice form is what is tested
    ref = ndi.rotate(x, 31, axes=(1, 2), reshape=False, order=3)
    check(run(img, gpu), ref, x, 3)
    no_fallback(gpu)


# -- coordinates computed on the device: fields, expressions, coordinate arrays ----------


def test_displacement_field_after_an_affine(gpu):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((10, 11))
    u = 0.8 * rng.standard_normal((2, 4, 4))
    field = tf.DisplacementField(u, spacing=3.0, order=3, mode="nearest")
    chain = tf.Rotate(12, center=(4.5, 5)) @ field @ tf.Translate((0.5, -0.25))
    img = tf.lazy(x, chunks=5).transform(chain, order=3, mode="mirror")
    assert len(img.plan().passes[0].stages) > 1
    got, ref = run(img, gpu), run(img, "scipy")
    check(got, ref, x, 3)
    no_fallback(gpu)


def test_a_chunked_dask_field_read_per_window(gpu):
    # a dask field's coefficients arrive as a window of its chunks (FieldStage.start), and
    # its max_displacement promise is checked on the device's samples too
    import dask.array as da

    rng = np.random.default_rng(16)
    x = rng.standard_normal((12, 13))
    u = 0.6 * rng.standard_normal((2, 12, 13))
    field = tf.DisplacementField(da.from_array(u, chunks=(2, 4, 4)), max_displacement=3.0)
    img = tf.lazy(x, chunks=4).transform(field, order=1, mode="nearest")
    assert img.plan().passes[0].stages[-1].chunked
    check(run(img, gpu), run(img, "scipy"), x, 1)
    no_fallback(gpu)
    broken = tf.DisplacementField(da.from_array(u * 20, chunks=(2, 4, 4)), max_displacement=1.0)
    with pytest.raises(ValueError, match="max_displacement"):
        run(tf.lazy(x, chunks=4).transform(broken, order=1, mode="nearest"), gpu)


@pytest.mark.parametrize("order", [1, 5])
def test_expression_map(gpu, order):
    x = np.random.default_rng(7).standard_normal((9, 10))
    y, xx = tf.symbols("y x")
    r2 = (y - 4) ** 2 + (xx - 5) ** 2
    barrel = tf.ExprMap([4 + (y - 4) * (1 + 0.01 * r2), 5 + (xx - 5) * (1 + 0.01 * r2)], (y, xx))
    img = tf.lazy(x, chunks=5).transform(barrel, order=order, mode="reflect")
    check(run(img, gpu), run(img, "scipy"), x, order)
    no_fallback(gpu)


@pytest.mark.parametrize("mode", ["constant", "wrap", "grid-constant"])
def test_coordinate_array(gpu, mode):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 9))
    coords = rng.uniform(-3, 11, (2, 7, 6))
    img = tf.lazy(x, chunks=4).transform(tf.CoordinateMap(coords), order=3, mode=mode, cval=2.0)
    ref = ndi.map_coordinates(x, coords, order=3, mode=mode, cval=2.0)
    check(run(img, gpu), ref, x, 3)
    no_fallback(gpu)


def test_python_callable_runs_on_the_host_and_interpolates_on_the_device(gpu):
    x = np.random.default_rng(9).standard_normal((8, 8))

    def swirl(p):
        return np.stack([p[0] + 0.3 * np.sin(p[1] / 2), p[1] + 0.2 * np.cos(p[0] / 3)])

    fmap = tf.FunctionMap(swirl, ndim=2, bounds=1.0, token="swirl-test")
    img = tf.lazy(x, chunks=4).transform(fmap, order=2, mode="nearest")
    check(run(img, gpu), run(img, "scipy"), x, 2)
    no_fallback(gpu)


# -- prefilter: halos, float32 coefficients ------------------------------------------------


@pytest.mark.parametrize("mode", ["mirror", "reflect", "nearest", "grid-wrap", "grid-constant"])
def test_chunked_prefilter_with_halos(gpu, mode):
    # 120 samples in chunks of 30: the long axis is filtered chunk by chunk with halos
    x = np.random.default_rng(11).standard_normal((3, 120))
    arr = dask.array.from_array(x, chunks=(3, 30))
    opts = tf.planner.options.ResampleOptions(order=3, mode=mode)
    coef = host(spline_coefficients(arr, opts, pad=0, executor=gpu).compute(scheduler="sync"))
    ref = ndi.spline_filter(x, 3, mode=mode)
    np.testing.assert_allclose(coef, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    img = tf.lazy(arr).shift((0.0, 2.3), order=3, mode=mode)
    check(run(img, gpu), ndi.shift(x, (0.0, 2.3), order=3, mode=mode), x, 3)
    no_fallback(gpu)


@pytest.mark.parametrize("order", [2, 3, 5])
def test_float32_contract(gpu, order):
    x = np.random.default_rng(12).standard_normal((12, 13)).astype(np.float32)
    img = tf.lazy(x, chunks=6).rotate(19, reshape=False, order=order, mode="mirror")
    graph = dict(img.to_dask(executor=gpu).dask)
    specs = [t.args[1] for k, t in graph.items() if str(k[0]).startswith("spline-coefficients")]
    # float32 coefficients where the contract holds with them in the worst case
    expected = "float32" if float32_coefficients_allowed(order, 2) else "float64"
    assert specs and {s.dtype for s in specs} == {expected}
    got = run(img, gpu)
    assert got.dtype == np.float32
    ref = ndi.rotate(x, 19, reshape=False, order=order, mode="mirror")
    check(got, ref, x, order, np.float32)
    no_fallback(gpu)


def test_integer_input_and_output(gpu):
    x = np.random.default_rng(13).integers(0, 255, (9, 10)).astype(np.uint8)
    img = tf.lazy(x, chunks=5).rotate(14, reshape=False, order=3)
    got = run(img, gpu)
    ref = ndi.rotate(x, 14, reshape=False, order=3)
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1  # a 1e-10 change may flip .5
    no_fallback(gpu)


# -- graph, keys, inputs -------------------------------------------------------------------


def test_keys_and_meta(gpu):
    x = np.random.default_rng(14).standard_normal((8, 8))
    img = tf.lazy(x, chunks=4).rotate(10, order=1)
    a, b = img.to_dask(executor=gpu), img.to_dask(executor="scipy")
    assert a.name != b.name
    assert a.name == img.to_dask(executor=gpu).name
    assert type(a._meta) is type(gpu.device.meta(np.float64, 2))
    assert "numba.cuda kernel" in gpu.describe(img.plan().passes[0])


def test_the_input_is_not_modified(gpu):
    x = np.random.default_rng(15).standard_normal((10, 10))
    before = x.copy()
    run(tf.lazy(x, chunks=5).rotate(33, order=4, mode="nearest"), gpu)
    np.testing.assert_array_equal(x, before)


def test_chunks_reading_only_cval_are_filled(gpu):
    x = np.ones((6, 6))
    img = tf.lazy(x, chunks=3).shift((40, 0), order=3, mode="constant", cval=3.0)
    np.testing.assert_array_equal(run(img, gpu), np.full((6, 6), 3.0))


# -- bounded device memory ------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2])
def test_chunks_in_flight_are_bounded(limit, monkeypatch):
    from transfuse.executors.gpu import GPUExecutor

    ex = GPUExecutor(_device())
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()
    real = ex._resample

    def counted(*args):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)  # long enough for the other workers to try to enter
        try:
            return real(*args)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(ex, "_resample", counted)
    x = np.random.default_rng(16).standard_normal((8, 8))
    img = tf.lazy(x, chunks=2).rotate(5, reshape=False, order=0)
    with dask.config.set({gd.CONFIG_IN_FLIGHT: limit}):
        got = host(img.compute(executor=ex, scheduler="threads", num_workers=4))
    np.testing.assert_array_equal(got, ndi.rotate(x, 5, reshape=False, order=0))
    assert 1 <= state["peak"] <= limit
    if limit == 2:  # the counter does see concurrency when the bound allows it
        assert state["peak"] == 2


def test_free_memory_refusal_names_the_chunk_and_the_key():
    from transfuse.executors.gpu import GPUExecutor

    if REAL:
        pytest.skip("uses the host stand-in with a fake free memory")
    ex = GPUExecutor(gd.HostDevice(free_bytes=1000))
    img = tf.lazy(np.ones((20, 20)), chunks=10).rotate(5, order=1)
    with pytest.raises(gd.DeviceMemoryError, match="transfuse.gpu.chunks_in_flight") as info:
        run(img, ex)
    message = str(info.value)
    assert "the output chunk ((" in message and "1000 bytes are free" in message, message
    img3 = tf.lazy(np.ones((20, 20)), chunks=10).rotate(5, order=3)
    with pytest.raises(MemoryError, match="coefficient chunk"):
        run(img3, ex)


def test_bad_configuration_is_refused():
    with dask.config.set({gd.CONFIG_IN_FLIGHT: 0}):
        with pytest.raises(ValueError, match="chunks_in_flight=0"):
            gd.chunks_in_flight()
    with pytest.raises(ValueError, match="'tpu'"):
        gd.select_device("tpu")


def test_without_a_device_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(gd, "_cupy_device_count", lambda: 0)
    with pytest.raises(gd.GPUUnavailableError, match=r"transfuse\[gpu\]"):
        gd.select_device("cupy")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    with pytest.raises(gd.GPUUnavailableError, match="NUMBA_ENABLE_CUDASIM=1"):
        gd.select_device("auto")


# -- ndinterp with the gpu backend ------------------------------------------------------------


def test_ndinterp_functions_run_on_the_gpu_backend(gpu):
    import transfuse.ndinterp as tnd

    x = np.random.default_rng(17).standard_normal((10, 9))
    y = tnd.affine_transform(
        dask.array.from_array(x, chunks=5), [[0.9, 0.2], [-0.1, 1.05]], 0.5, order=3, executor=gpu
    )
    ref = ndi.affine_transform(x, [[0.9, 0.2], [-0.1, 1.05]], 0.5, order=3)
    check(host(y.compute(scheduler="sync")), ref, x, 3)
    c = np.random.default_rng(18).uniform(0, 9, (2, 40))
    ym = tnd.map_coordinates(dask.array.from_array(x, chunks=5), c, order=1, executor=gpu)
    check(host(ym.compute(scheduler="sync")), ndi.map_coordinates(x, c, order=1), x, 1)
    no_fallback(gpu)


def test_real_cupy_inputs_route_to_the_gpu_backend():
    if not REAL:
        pytest.skip("needs a CUDA device and cupy (TRANSFUSE_TEST_REAL_GPU=1)")
    cp = pytest.importorskip("cupy")
    import transfuse.ndinterp as tnd

    x = np.random.default_rng(19).standard_normal((40, 40))
    xg = dask.array.from_array(cp.asarray(x), chunks=20)
    y = tnd.rotate(xg, 30, order=3)
    assert isinstance(y._meta, cp.ndarray)
    out = y.compute()
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(out), ndi.rotate(x, 30, order=3), atol=1e-8)


# -- the kernels compile for a real device (needs libNVVM: `pip install "numba-cuda[cu13]"`) --

_PTX_SCRIPT = r"""
import sys, types as pytypes
import numba.cuda
from numba import types
try:
    import cuda.pathfinder as pf
    pf.load_nvidia_dynamic_lib("nvvm"); pf.load_nvidia_dynamic_lib("nvrtc")
except Exception as exc:
    print("no libNVVM/NVRTC:", exc); sys.exit(77)
# compile without a device: the device functions ask the current device for its capability
sys.modules["numba.cuda.dispatcher"].get_current_device = lambda: pytypes.SimpleNamespace(
    compute_capability=(9, 0))
import transfuse.executors.gpu_kernels as K
K.load()
f64, f32, i64 = types.float64, types.float32, types.int64
A = lambda t, n: types.Array(t, n, "C")
for buf in (f64, f32):
    sig = (A(buf, 1), A(i64, 2), A(i64, 1), A(i64, 1), A(i64, 1), A(i64, 1), A(i64, 1), f64,
           A(f64, 2), A(f64, 1), A(i64, 1), A(f64, 2), A(i64, 2), A(f64, 4), A(i64, 1),
           A(buf, 3), A(i64, 1))
    ptx, _ = numba.cuda.compile_ptx(K._interpolate, sig, cc=(9, 0))
    assert "mul.rn.f64" in ptx
    ptx, _ = numba.cuda.compile_ptx(K._prefilter, (A(buf, 1), i64, i64, i64, A(f64, 1), i64,
                                                  f64, i64), cc=(9, 0))
print("compiled")
"""


def test_kernels_compile_to_ptx_for_a_device():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", _PTX_SCRIPT], env=env, cwd=root, capture_output=True, text=True
    )
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip() + ' (pip install "numba-cuda[cu13]" to check)')
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stdout + proc.stderr[-3000:]
