"""Shape of the dask graph the CPU executor emits (issue 2, "minimal graph")."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse as tf


def _layers(arr):
    return dict(arr.__dask_graph__().layers)


def _names(arr, prefix):
    return [k for k in _layers(arr) if k.startswith(prefix)]


def chunk_of(index, chunks):
    bounds = np.cumsum(chunks)
    return int(np.searchsorted(bounds, index, side="right"))


def _coordinates(matrix, box):
    """scipy's formula, point by point: c[h] = offset[h] + sum_l o[l] * M[h, l]."""
    n = len(box)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in box], indexing="ij")
    pts = np.stack([g.ravel() for g in grids]).astype(float)
    coords = np.empty((n, pts.shape[1]))
    for h in range(n):
        acc = np.full(pts.shape[1], matrix[h, n])
        for l in range(n):
            acc = acc + pts[l] * matrix[h, l]
        coords[h] = acc
    return coords


def _taps(c_lo, c_hi, order, size, mode):
    half = order // 2
    shift = 0.0 if order % 2 else 0.5
    taps = np.arange(
        int(np.floor(c_lo + shift)) - half, int(np.floor(c_hi + shift)) - half + order + 1
    )
    if mode == "constant":  # taps outside read the whole-sample mirror
        period = max(2 * size - 2, 1)
        taps = np.mod(taps, period)
        return np.where(taps >= size, period - taps, taps)
    return np.clip(taps, 0, size - 1)


def dense_box_dependencies(matrix, box, in_shape, in_chunks, order, mode):
    """The footprint as the issue defines it, by enumeration: the bounding box of every
    point's input coordinate (clipped to the input for constant), widened by the spline
    support, mapped to chunks."""
    coords = _coordinates(matrix, box)
    per_axis = []
    for h, size in enumerate(in_shape):
        lo, hi = coords[h].min(), coords[h].max()
        if mode == "constant":
            if hi < 0 or lo > size - 1:
                return set()
            lo, hi = max(lo, 0.0), min(hi, size - 1.0)
        else:  # nearest: far-out coordinates only ever read the edge
            lo, hi = (
                min(max(lo, -order - 3), size + order + 2),
                max(min(hi, size + order + 2), -order - 3),
            )
        per_axis.append({chunk_of(t, in_chunks[h]) for t in _taps(lo, hi, order, size, mode)})
    return set(itertools.product(*per_axis))


def pointwise_dependencies(matrix, box, in_shape, in_chunks, order, mode):
    """What the points need, one by one (points outside in constant mode need nothing)."""
    coords = _coordinates(matrix, box)
    inside = np.ones(coords.shape[1], bool)
    if mode == "constant":
        for h, size in enumerate(in_shape):
            inside &= (coords[h] >= 0) & (coords[h] <= size - 1)
    deps = set()
    for p in np.nonzero(inside)[0]:
        per_axis = [
            {
                chunk_of(t, in_chunks[h])
                for t in _taps(coords[h, p], coords[h, p], order, size, mode)
            }
            for h, size in enumerate(in_shape)
        ]
        deps.update(itertools.product(*per_axis))
    return deps


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("mode", ["constant", "nearest"])
def test_one_resampling_layer_one_task_per_chunk_exact_dependencies(order, mode):
    from dask.core import get_dependencies

    x = np.random.default_rng(0).random((40, 36))
    T = tf.Rotate(23, center=(20, 18)) @ tf.Scale((1.2, 0.8))
    image = tf.lazy(da.from_array(x, chunks=(8, 9))).transform(
        T, order=order, mode=mode, output_chunks=(10, 7), prefilter=False
    )
    arr = image.to_dask()
    resample = _names(arr, "resample-")
    assert len(resample) == 1 and not _names(arr, "spline-coefficients-")
    assert len(_layers(arr)) == 2  # the input and one resampling layer
    graph = dict(arr.__dask_graph__())
    tasks = [k for k in graph if k[0] == resample[0]]
    assert len(tasks) == np.prod(arr.numblocks)
    source = image._array.name
    in_chunks = ((8,) * 5, (9,) * 4)
    out_bounds = [np.concatenate([[0], np.cumsum(c)]) for c in arr.chunks]
    for key in tasks:
        box = [(b[i], b[i + 1]) for b, i in zip(out_bounds, key[1:], strict=True)]
        deps = {k[1:] for k in get_dependencies(graph, key) if k[0] == source}
        expected = dense_box_dependencies(T.matrix(), box, x.shape, in_chunks, order, mode)
        assert deps == expected, (key[1:], deps ^ expected)
        assert deps >= pointwise_dependencies(T.matrix(), box, x.shape, in_chunks, order, mode)
    ref = ndi.affine_transform(x, T.matrix(), order=order, mode=mode, prefilter=False)
    np.testing.assert_allclose(arr.compute(), ref, rtol=0, atol=0 if order <= 1 else 1e-12)


def test_prefilter_adds_exactly_one_layer():
    x = np.random.default_rng(1).random((30, 30))
    arr = tf.lazy(x, chunks=10).rotate(30, order=3).to_dask()
    assert len(_names(arr, "spline-coefficients-")) == 1
    assert len(_names(arr, "resample-")) == 1
    assert len(_layers(arr)) == 3


def test_no_dependency_on_the_whole_input():
    x = np.zeros((256, 256))
    arr = tf.lazy(x, chunks=32).transform(tf.Rotate(5, center=(128, 128)), order=1).to_dask()
    graph = arr.__dask_graph__()
    src = arr.__dask_graph__().layers
    in_layer = [k for k in src if not k.startswith("resample-")][0]
    n_in = len(src[in_layer])
    from dask.core import get_dependencies

    flat = dict(graph)
    for key in [k for k in flat if k[0].startswith("resample-")]:
        assert len(get_dependencies(flat, key)) <= 6 < n_in


def test_keys_differ_for_every_parameter_and_stack_is_right():
    # D4: dask_image ignored order/mode/cval in its keys, so stacking returned one result
    x = np.random.default_rng(2).random((16, 16))
    lazy = tf.lazy(x, chunks=8)
    m = [[0.9, 0.2], [-0.1, 1.05]]
    variants = [
        dict(order=0),
        dict(order=1),
        dict(order=3),
        dict(order=1, cval=5.0),
        dict(order=1, mode="nearest"),
        dict(order=3, prefilter=False),
    ]
    arrays = [lazy.affine_transform(m, 1.5, **kw).to_dask() for kw in variants]
    assert len({a.name for a in arrays}) == len(arrays)
    stacked = da.stack(arrays).compute()
    for got, kw in zip(stacked, variants, strict=True):
        np.testing.assert_allclose(got, ndi.affine_transform(x, m, 1.5, **kw), atol=1e-10)


def test_same_pipeline_same_keys():
    x = np.random.default_rng(3).random((12, 12))
    a = tf.lazy(x, chunks=4).rotate(10).to_dask()
    b = tf.lazy(x, chunks=4).rotate(10).to_dask()
    assert a.name == b.name


def test_default_output_chunks_follow_input_chunk_size():
    # D11: not one giant chunk
    x = np.zeros((100, 120))
    out = tf.lazy(x, chunks=(25, 40)).rotate(30).to_dask()
    assert max(out.chunks[0]) == 25 and max(out.chunks[1]) == 40


def test_explain_shows_one_pass_for_a_chain():
    x = np.zeros((20, 20, 20))
    img = tf.lazy(x, chunks=10).rotate(20, axes=(0, 1)).zoom(1.1).rotate(-10, axes=(1, 2))
    text = img.explain()
    assert "3 steps" in text and "1 resampling pass(es)" in text
    assert "fused matrix" in text
    assert len(img.plan().passes) == 1


def test_large_plans_build():
    # 10,000 output chunks: the graph must be built (speed is measured in benchmarks/)
    x = da.zeros((1000, 1000), chunks=10)
    arr = tf.lazy(x).transform(tf.Rotate(1, center=(500, 500)), order=1).to_dask()
    assert arr.numblocks == (100, 100)
    assert len([k for k in dict(arr.__dask_graph__()) if k[0].startswith("resample-")]) == 10_000


@pytest.mark.parametrize("executor", ["scipy", "cpu"])
def test_grid_constant_field_chunks_whose_taps_all_read_cval(executor):
    """A field shifted far outside: some chunks read only cval, but grid-constant weighs it
    by each point's taps, so those tasks still evaluate the field (its coefficients must
    reach them)."""
    from transfuse import DisplacementField, Translate

    rng = np.random.default_rng(0)
    x = rng.random((30, 31))
    field = rng.normal(size=(2, 5, 5))
    T = Translate((20.0, 0.0)) @ DisplacementField(field, spacing=8.0)
    got = tf.lazy(x, chunks=8).transform(T, order=1, mode="grid-constant", cval=0.5)
    idx = np.indices(x.shape).reshape(2, -1).T.astype(float)
    expected = ndi.map_coordinates(x, T(idx).T, order=1, mode="grid-constant", cval=0.5)
    np.testing.assert_allclose(
        got.compute(executor=executor), expected.reshape(x.shape), rtol=0, atol=1e-12
    )


#: A resampling task of an affine pass pickled alone (measured: about 1.4 kB, most of it
#: the pass's ResampleJob) ...
TASK_ALONE_BYTES = 2048
#: ... and per task inside one pickle of the whole layer, as a client ships a graph: the
#: job, executor and function are one object each, shared by every task (measured: about
#: 300-330 B; a job embedded per task would cost over 600 B more).
TASK_SHARED_BYTES = 512


@pytest.mark.parametrize("order", [1, 3])
def test_task_payload_stays_small_and_needs_no_conversion(order):
    import pickle

    from dask._task_spec import GraphNode, convert_legacy_graph

    data = np.random.default_rng(5).random((64, 64, 64))
    x = da.from_array(data, chunks=16)
    T = tf.Rotate(20, axes=(1, 2), center=(32, 32, 32))
    arr = tf.lazy(x).transform(T, order=order, output_chunks=8).to_dask()
    graph = dict(arr.__dask_graph__())
    ours = {k: v for k, v in graph.items() if str(k[0]).startswith(("resample-", "spline-"))}
    resample = {k: v for k, v in ours.items() if k[0] == arr.name}
    assert len(resample) == 512
    # task-spec nodes: the scheduler reads dependencies, converts nothing
    assert all(isinstance(v, GraphNode) for v in ours.values())
    converted = convert_legacy_graph(ours)
    assert all(converted[k] is v for k, v in ours.items())
    assert max(len(pickle.dumps(v)) for v in resample.values()) <= TASK_ALONE_BYTES
    assert len(pickle.dumps(resample)) / len(resample) <= TASK_SHARED_BYTES
    jobs = {id(v.args[1]) for v in resample.values()}
    assert len(jobs) == 1  # one ResampleJob object for the whole pass
    ref = ndi.affine_transform(data, T.matrix(), order=order)
    np.testing.assert_allclose(arr[24:40, :16, 8:24].compute(), ref[24:40, :16, 8:24], atol=1e-12)


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("mode", ["constant", "nearest", "grid-wrap"])
def test_tasks_carry_their_footprint_as_one_flat_tuple(order, mode):
    """Every resampling task's footprint argument is one tuple of plain numbers (no
    dataclass, no nested container for the scheduler to unpickle), and it unpacks to
    exactly the planner's footprint of that output chunk, all-cval chunks and a plane of a
    volume (fewer output axes than input axes) included."""
    from transfuse.executors.graph import unpack_footprint

    volume = tf.lazy(np.random.default_rng(4).random((12, 20, 20)), chunks=8)
    plane = volume.rotate(20, axes=(1, 2), order=order, mode=mode)[5]
    (q,) = plane.plan().passes
    assert any(len(fp.box) < len(fp.axes) for fp in q.footprints.values() if fp.axes)
    arr = plane.to_dask()
    for k, task in dict(arr.__dask_graph__()).items():
        if k[0] == arr.name:
            assert unpack_footprint(task.args[2]) == q.footprints[k[1:]]
    reference = volume.rotate(20, axes=(1, 2), order=order, mode=mode).compute()[5]
    np.testing.assert_allclose(arr.compute(), reference, rtol=0, atol=1e-12)

    x = da.from_array(np.random.default_rng(2).random((40, 44)), chunks=(11, 13))
    T = tf.Translate((30, -20)) @ tf.Rotate(35, center=(20, 22))
    img = tf.lazy(x).transform(T, order=order, mode=mode, output_chunks=9)
    (p,) = img.plan().passes
    arr = img.to_dask()
    graph = dict(arr.__dask_graph__())
    tasks = {k[1:]: v for k, v in graph.items() if k[0] == arr.name}
    assert set(tasks) == set(p.footprints)
    if mode == "constant":  # the shift leaves some chunks reading nothing
        assert any(fp.axes is None for fp in p.footprints.values())
    for idx, task in tasks.items():
        packed = task.args[2]
        assert type(packed) is tuple
        assert all(type(v) in (int, float, bool) for v in packed)
        assert unpack_footprint(packed) == p.footprints[idx]
