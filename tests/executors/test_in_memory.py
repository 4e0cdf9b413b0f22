"""LazyImage.compute() into one array (executors/in_memory.py): the same values as the
dask array's compute(), bit for bit, on every backend, chunking, pass count and dtype
path; only in-process schedulers take it; nothing the caller holds is written."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import transfuse as tf
from transfuse.executors import get_executor
from transfuse.executors import graph as graph_module
from transfuse.executors.in_memory import in_process, into_collection

RNG = np.random.default_rng(5)
VOLUME = RNG.random((21, 26, 30)).astype(np.float32)


def _cases():
    c = (10, 13, 15)
    return {
        "rotate o1": tf.lazy(VOLUME, chunks=(8, 9, 11)).rotate(17, axes=(0, 2), order=1),
        "rotate o0, nearest": tf.lazy(VOLUME, chunks=8).rotate(33, order=0, mode="nearest"),
        "zoom o3, mirror": tf.lazy(VOLUME, chunks=(7, 26, 30)).zoom(1.3, order=3, mode="mirror"),
        "two passes (orders differ)": tf.lazy(VOLUME, chunks=10)
        .rotate(10, order=3)
        .shift((1.5, -2.25, 0.5), order=1),
        "field chain": tf.lazy(VOLUME, chunks=(9, 13, 15)).transform(
            tf.Rotate(8, axes=(1, 2), center=c)
            @ tf.DisplacementField(RNG.normal(0, 0.8, (3, 4, 5, 5)), spacing=7, order=3),
            order=1,
        ),
        "float32 to int16": tf.lazy(VOLUME * 1000, chunks=9).affine_transform(
            np.diag([0.9, 1.1, 1.0]), 1.5, order=1, output=np.int16
        ),
        "int16 in, order 3": tf.lazy((VOLUME * 1000).astype(np.int16), chunks=9).rotate(25),
        "4-D (the reference path per chunk)": tf.lazy(
            VOLUME[:6, :7, :8, None] * VOLUME[0, 0, :5], chunks=4
        ).zoom(1.2, order=1),
    }


@pytest.mark.parametrize("executor", ["cpu", "scipy"])
@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_compute_equals_the_dask_arrays_compute(case, executor, scheduler):
    img = _cases()[case]
    expected = img.to_dask(executor).compute(scheduler=scheduler)
    got = img.compute(executor=executor, scheduler=scheduler)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_compute_takes_the_one_array_path(monkeypatch):
    """compute() on the threaded scheduler builds the graph with ``dest`` and never
    concatenates chunks (dask.array's concatenate is not called)."""
    seen = []
    real = graph_module.resample_pass

    def spy(p, array, executor, share_map=False, dest=None):
        seen.append(dest is not None)
        return real(p, array, executor, share_map, dest)

    monkeypatch.setattr(graph_module, "resample_pass", spy)

    def no_concatenate(*args, **kwargs):
        raise AssertionError("the chunks were concatenated")

    img = tf.lazy(VOLUME, chunks=8).rotate(20, order=1)
    expected = img.to_dask().compute(scheduler="sync")
    seen.clear()
    monkeypatch.setattr(da.core, "concatenate3", no_concatenate)
    np.testing.assert_array_equal(img.compute(), expected)
    assert seen == [True]


def test_only_in_process_schedulers():
    x = da.zeros(4, chunks=2)
    assert in_process(None, x) and in_process("threads", x) and in_process("sync", x)
    assert not in_process("processes", x)
    img = tf.lazy(VOLUME, chunks=8).rotate(20)
    out = into_collection(img.plan(), img._array, get_executor("cpu"), scheduler="processes")
    assert out is None


def test_each_compute_returns_a_new_array_and_leaves_the_input_alone():
    x = VOLUME.copy()
    img = tf.lazy(x, chunks=8).rotate(20, order=1)
    a = img.compute()
    a[...] = -1.0
    b = img.compute()
    assert not np.shares_memory(a, b) and not np.shares_memory(b, x)
    np.testing.assert_array_equal(b, img.to_dask().compute())
    np.testing.assert_array_equal(x, VOLUME)


def test_keys_of_the_one_array_graph_are_its_own():
    """Two graphs writing into different arrays never share a resampling key (a cache of
    results by key must not hand one compute's views to another), and the dask array's
    own keys are unchanged."""
    img = tf.lazy(VOLUME, chunks=8).rotate(20, order=1)
    plan, backend = img.plan(), get_executor("cpu")
    first = graph_module.to_dask(plan, img._array, backend, dest=np.empty((21, 26, 30), "f4"))
    second = graph_module.to_dask(plan, img._array, backend, dest=np.empty((21, 26, 30), "f4"))
    assert first.name != second.name
    assert img.to_dask().name == img.to_dask().name
    assert img.to_dask().name not in (first.name, second.name)


def test_progress_bar_and_an_empty_output():
    img = tf.lazy(VOLUME, chunks=8).rotate(20, order=1)
    np.testing.assert_array_equal(img.compute(progress=True), img.to_dask().compute())
    empty = tf.lazy(VOLUME[:0], chunks=8).shift((0.5, 0, 0))
    assert empty.compute().shape == empty.to_dask().compute().shape


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    chunks=st.tuples(*(st.integers(3, n) for n in VOLUME.shape)),
    angle=st.floats(-60, 60),
    order=st.sampled_from([0, 1, 3]),
    mode=st.sampled_from(["constant", "nearest", "reflect", "grid-wrap"]),
)
def test_any_chunking_gives_the_dask_arrays_values(chunks, angle, order, mode):
    img = tf.lazy(VOLUME, chunks=chunks).rotate(angle, axes=(0, 1), order=order, mode=mode)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(img.compute(), img.to_dask().compute())


def test_a_chunk_the_kernel_hands_back_is_written_by_the_reference(monkeypatch):
    from transfuse.executors import kernel_plan

    img = tf.lazy(VOLUME, chunks=(8, 26, 30)).rotate(20, order=1)  # contiguous boxes
    expected = img.to_dask("scipy").compute()
    monkeypatch.setattr(kernel_plan, "resample", lambda *args, **kwargs: None)
    np.testing.assert_array_equal(img.compute(), expected)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_compute_all_writes_each_result_into_one_array(scheduler, monkeypatch):
    """Images resampled through one non-affine map (its coordinates a shared layer):
    compute_all gives what computing their dask arrays together gives, without
    concatenating chunks, and the shared map tasks still run once per chunk."""
    base = VOLUME[:, :20, :24]
    imgs = [tf.lazy(base, chunks=8), tf.lazy((base > 0.5).astype(np.uint8), chunks=8)]
    field = tf.DisplacementField(RNG.normal(0, 0.7, (3, 4, 4, 5)), spacing=6, order=3)
    out = tf.resample(imgs, tf.Rotate(9, axes=(1, 2), center=(10, 10, 12)) @ field, order=(3, 0))
    expected = dask.compute(*[o.to_dask() for o in out], scheduler=scheduler)
    from transfuse.executors import cpu

    calls = []
    real = cpu.CPUExecutor.coordinates

    def counted(self, stages, box):
        calls.append(box)
        return real(self, stages, box)

    monkeypatch.setattr(cpu.CPUExecutor, "coordinates", counted)
    monkeypatch.setattr(da.core, "concatenate3", lambda *a, **k: pytest.fail("concatenated"))
    got = tf.compute_all(out, scheduler=scheduler)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert len(calls) == len(set(map(str, calls))) > 0  # each map chunk computed once
