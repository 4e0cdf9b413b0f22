"""The compiled chunked B-spline prefilter of the ``"cpu"`` backend against scipy.ndimage's
whole-array ``spline_filter`` (with scipy's 12-sample pre-padding where the mode has it).

Contract: within 1e-10 x max|input| for float64 input and 1e-6 x max|input| for float32,
every order 2-5, every mode, any chunking.
"""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given
from hypothesis import strategies as st

import transfuse.ndinterp as tnd
from tests.strategies import chunkings, examples, partition, shapes
from transfuse.executors import kernels_prefilter as kp
from transfuse.executors.blocks import AxisLayout, assemble
from transfuse.executors.cpu import CPUExecutor
from transfuse.executors.graph import spline_coefficients
from transfuse.executors.spline import (
    FILTER_GAIN,
    HALO_ERROR,
    POLE,
    _gather,
    field_coefficients,
    halo_depth,
    halo_error_bound,
)
from transfuse.planner.boundary import CVAL
from transfuse.planner.options import ResampleOptions

pytestmark = pytest.mark.skipif(not kp.AVAILABLE, reason="numba is not installed")

MODES = ["constant", "nearest", "mirror", "reflect", "grid-mirror", "wrap", "grid-wrap"]
MODES += ["grid-constant"]
ORDERS = [2, 3, 4, 5]


def reference(x, order, mode, cval):
    """scipy's own coefficients: the pre-padding map_coordinates adds, then spline_filter."""
    pad = ResampleOptions(order=order, mode=mode, cval=cval).pad
    return field_coefficients(x[None], order, mode, cval, pad)[0]


def compiled(x, chunks, order, mode, cval):
    options = ResampleOptions(order=order, mode=mode, cval=cval)
    arr = da.from_array(x, chunks=chunks)
    return spline_coefficients(arr, options, executor=CPUExecutor()).compute(scheduler="sync")


def tolerance(x):
    scale = float(np.abs(x).max()) or 1.0
    return (1e-6 if x.dtype == np.float32 else 1e-10) * scale


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_every_order_and_mode_matches_whole_array(order, mode):
    # axes long enough to be filtered chunk by chunk with halos (160 > 4 x 36), and one
    # filtered whole (a single chunk)
    x = np.random.default_rng(order).standard_normal((170, 150, 9))
    got = compiled(x, (45, 70, 9), order, mode, 1.5)
    want = reference(x, order, mode, 1.5)
    assert got.dtype == np.float64
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= tolerance(x)


def _error_operator(order, depth, kept, start):
    """The kept rows of ``chunked - whole`` as a matrix over a line of 400 + ``kept``
    samples (the whole line's own ends 200 samples away: |z|**200, nothing)."""
    margin = 200
    eye = np.eye(2 * margin + kept)
    whole = ndi.spline_filter1d(eye, order, axis=0, mode="mirror")[margin : margin + kept]
    window = np.ascontiguousarray(eye[margin - depth : margin + kept + depth])
    if start == "halo":  # the compiled filter's zero causal state
        chunked = kp.filter_axis(window, 0, order, kp.HALO, slice(depth, depth + kept))
    else:  # scipy's mirror start on the window (the scipy and gpu backends)
        chunked = ndi.spline_filter1d(window, order, axis=0, mode="mirror")[depth:-depth]
    return chunked - whole, whole


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("start", ["halo", "mirror"])
def test_halo_error_constants_bound_the_measured_error(order, start):
    # the worst error over inputs bounded by 1 is the largest row sum of |chunked - whole|;
    # it is HALO_ERROR * |z|**depth for every depth and kept length (kept 1: both halos
    # reach the same sample)
    z = POLE[order]
    for depth in (4, 7, 10):
        for kept in (1, 2, 9, 40):
            err, whole = _error_operator(order, depth, kept, start)
            worst = np.abs(err).sum(axis=1).max() / z**depth
            assert worst <= HALO_ERROR[order]
            assert np.abs(whole).sum(axis=1).max() <= FILTER_GAIN[order] + 1e-9
    err, _ = _error_operator(order, 7, 1, "mirror")  # the constants are not loose
    assert np.abs(err).sum(axis=1).max() / z**7 >= 0.99 * HALO_ERROR[order]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_halo_depth_is_the_least_depth_the_bound_allows(order, ndim):
    depth = halo_depth(order, 1e-10, ndim)
    assert halo_error_bound(order, depth, ndim) <= 1e-10 < halo_error_bound(order, depth - 1, ndim)


def test_halo_depth_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tolerance=2"):
        halo_depth(3, 2)
    with pytest.raises(ValueError, match="ndim=0"):
        halo_depth(3, ndim=0)


@pytest.mark.parametrize("order", ORDERS)
def test_checkerboard_needs_the_whole_halo(order):
    # (-1)**(i + j), the Nyquist pattern every filtered axis grows most, comes within 4x
    # of the worst case: the default halo keeps it within 1e-10, 4 samples fewer do not
    depth = halo_depth(order, ndim=2)
    n = 4 * depth + 20  # cut with halos, not filtered whole
    x = np.where(np.indices((n, n)).sum(axis=0) % 2 == 0, 1.0, -1.0)
    want = ndi.spline_filter(x, order, mode="mirror")
    options = ResampleOptions(order=order, mode="mirror")
    errors = []
    for d, chunks in ((depth, depth // 3), (depth, 2 * depth), (depth - 4, depth)):
        coef = spline_coefficients(
            da.from_array(x, chunks=chunks), options, depth=d, pad=0, executor=CPUExecutor()
        )
        errors.append(np.abs(coef.compute(scheduler="sync") - want).max())
    assert max(errors[:2]) <= 1e-10 < errors[2]


@pytest.mark.parametrize("order", ORDERS)
def test_float32_coefficients_where_the_spec_asks(order):
    # the dtype the gpu backend declares for float32 inputs: the compiled filter honours it
    x = np.random.default_rng(5).random((130, 40), dtype=np.float32) * 10
    options = ResampleOptions(order=order, mode="reflect")
    arr = da.from_array(x, chunks=(30, 40))
    coef = spline_coefficients(arr, options, executor=CPUExecutor(), dtype=np.float32)
    got = coef.compute(scheduler="sync")
    assert coef.dtype == got.dtype == np.float32
    assert np.abs(got - reference(x, order, "reflect", 0.0)).max() <= tolerance(x)


@pytest.mark.parametrize("order", ORDERS)
def test_float32_input(order):
    x = np.random.default_rng(1).random((200, 60), dtype=np.float32) * 100
    got = compiled(x, (64, 25), order, "nearest", 0.0)
    want = reference(x, order, "nearest", 0.0)
    assert np.abs(got - want).max() <= tolerance(x)


@given(
    data=st.data(),
    order=st.sampled_from(ORDERS),
    mode=st.sampled_from(MODES),
    ndim=st.integers(1, 3),
    dtype=st.sampled_from([np.float64, np.float32]),
)
@examples(0.25, derandomize=True)
def test_any_chunking_matches_whole_array(data, order, mode, ndim, dtype):
    # one long axis (filtered with halos when cut, chunks smaller than the halo included),
    # the others short (filtered whole)
    long_side = data.draw(st.integers(1, 400 if ndim == 1 else 160))
    shape = (long_side, *data.draw(shapes(ndim - 1, max_side=6))) if ndim > 1 else (long_side,)
    chunks = data.draw(chunkings(shape))
    assume(np.prod([len(c) for c in chunks]) <= 64)  # tasks, not minutes
    seed = data.draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    got = compiled(x, chunks, order, mode, -2.25)
    assert np.abs(got - reference(x, order, mode, -2.25)).max() <= tolerance(x)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("mode", "rule"), [("mirror", kp.MIRROR), ("reflect", kp.REFLECT), ("grid-wrap", kp.WRAP)]
)
def test_whole_axis_starts_are_scipys(order, mode, rule):
    x = np.random.default_rng(2).standard_normal((33, 40, 35))
    for axis in range(3):
        got = kp.filter_axis(x, axis, order, rule, slice(None))
        want = ndi.spline_filter1d(x, order, axis=axis, mode=mode)
        assert np.abs(got - want).max() <= 1e-12


def test_crop_keeps_the_asked_samples():
    x = np.random.default_rng(3).standard_normal((4, 50, 3))
    full = kp.filter_axis(x, 1, 3, kp.MIRROR, slice(None))
    assert np.array_equal(kp.filter_axis(x, 1, 3, kp.MIRROR, slice(7, 20)), full[:, 7:20])


def test_input_is_not_modified():
    x = np.random.default_rng(4).standard_normal((60, 50))
    before = x.copy()
    kp.filter_axis(x, 0, 3, kp.MIRROR, slice(None))
    compiled(x, (20, 50), 3, "mirror", 0.0)
    assert np.array_equal(x, before)


def test_poles_reject_orders_without_a_filter():
    with pytest.raises(ValueError, match="order=1"):
        kp.poles(1)


def _index_arrays(draw, sizes):
    n = sum(sizes)
    kind = st.sampled_from(["run", "reversed", "repeat", "cval", "random"])
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        k = draw(kind)
        a = draw(st.integers(0, n - 1))
        m = draw(st.integers(1, 8))
        if k == "run":
            parts.append(np.arange(a, min(n, a + m)))
        elif k == "reversed":
            parts.append(np.arange(a, max(-1, a - m), -1))
        elif k == "repeat":
            parts.append(np.full(m, a))
        elif k == "cval":
            parts.append(np.full(m, CVAL))
        else:
            parts.append(np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))))
    return np.concatenate(parts).astype(np.int64)


@given(data=st.data(), ndim=st.integers(1, 3))
@examples(0.5, derandomize=True)
def test_gather_equals_reading_the_assembled_block(data, ndim):
    sizes = [data.draw(partition(data.draw(st.integers(1, 12)))) for _ in range(ndim)]
    layouts = [AxisLayout(np.cumsum([0, *s[:-1]]), s) for s in sizes]
    counts = [len(s) for s in sizes]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    block = rng.random([sum(s) for s in sizes]).astype(np.float32)
    pieces = []
    for idx in itertools.product(*(range(c) for c in counts)):
        sl = tuple(
            slice(int(lay.offsets[i]), int(lay.offsets[i] + lay.sizes[i]))
            for lay, i in zip(layouts, idx, strict=True)
        )
        pieces.append(block[sl])
    assert np.array_equal(assemble(pieces, counts), block)
    indices = [_index_arrays(data.draw, s) for s in sizes]
    got = kp.gather_window(pieces, layouts, indices, 1.5, block.dtype)
    assert got.dtype == np.float32 and got.flags.c_contiguous  # float32 kept: half the bytes
    assert np.array_equal(got, _gather(block, layouts, indices, 1.5))


def test_two_points_in_a_huge_lazy_array_filter_only_their_neighbourhood():
    x = da.random.RandomState(0).random_sample((1000,) * 3, chunks=200).astype(np.float32)
    pts = np.array([[10.3, 500.7], [20.1, 333.3], [993.5, 700.2]])
    out = tnd.map_coordinates(x, pts, order=3, prefilter=True, executor="cpu")
    graph = dict(out.__dask_graph__())
    local = [v for k, v in graph.items() if isinstance(k, tuple) and "local" in str(k[0])]
    assert len(local) == 2
    for task in local:
        spec = task.args[1]  # Task(key, _run_prefilter, executor, spec, infos, *pieces)
        assert all(e - s <= 4 for s, e in spec.span)  # the 4 taps of order 3, per axis
        assert len(task.dependencies) == 1  # one input chunk read
    got = out.compute()
    for i in range(2):  # scipy on a neighbourhood: the far field weighs < 0.27**40
        c = pts[:, i]
        lo = np.maximum(np.floor(c).astype(int) - 40, 0)
        hi = np.minimum(lo + 82, 1000)
        w = x[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].compute()
        want = ndi.map_coordinates(w, (c - lo)[:, None], order=3)
        assert abs(float(got[i]) - float(want[0])) <= 1e-6


def test_two_compiled_specialisations():
    """float64 windows (every rank, float64 and integer inputs) and float32 windows."""
    kp.filter_axis(np.zeros((3, 5)), 1, 2, kp.HALO, slice(1, 4))
    kp.filter_axis(np.zeros((4, 5, 6)), 2, 5, kp.REFLECT, slice(None))
    compiled(np.zeros((50, 6), dtype=np.int16), (20, 3), 3, "mirror", 0.0)
    compiled(np.zeros((50, 6), dtype=np.float32), (20, 3), 4, "grid-wrap", 0.0)
    compiled(np.zeros((9, 50, 6), dtype=np.float32), (3, 20, 3), 2, "nearest", 0.0)
    assert len(kp._KERNEL.signatures) == 2


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", ["constant", "mirror", "grid-wrap"])
def test_a_float32_window_filters_to_the_bits_of_its_float64_copy(order, mode):
    """The float32 window is read as float64 exactly: the same coefficients, bit for bit."""
    x = np.random.default_rng(order).standard_normal((70, 9, 40)).astype(np.float32)
    got = compiled(x, (30, 9, 16), order, mode, 0.5)
    want = compiled(x.astype(np.float64), (30, 9, 16), order, mode, 0.5)
    assert got.dtype == want.dtype == np.float64
    assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_coefficient_chunks_are_their_own_arrays(dtype):
    """Every coefficient chunk a task returns is its own memory, unchanged by the tasks
    after it in the same thread (no buffer a thread reuses may leave its task)."""
    import dask

    x = (np.random.default_rng(7).standard_normal((60, 50, 40)) * 10).astype(dtype)
    options = ResampleOptions(order=3, mode="mirror")
    coef = spline_coefficients(
        da.from_array(x, chunks=(20, 25, 40)), options, executor=CPUExecutor()
    )
    chunks = dask.compute(*coef.to_delayed().ravel(), scheduler="synchronous")
    assert len(chunks) == 6
    for i, a in enumerate(chunks):
        assert not any(np.shares_memory(a, b) for b in chunks[i + 1 :])
    whole = np.block([[[c] for c in chunks[r * 2 : r * 2 + 2]] for r in range(3)])
    assert np.array_equal(whole, coef.compute(scheduler="synchronous"))
    assert np.abs(whole - reference(x, 3, "mirror", 0.0)).max() <= tolerance(x)
