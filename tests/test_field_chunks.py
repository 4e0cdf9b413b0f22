"""Displacement fields past memory (scale issue, items 1-2): a dask field, or a numpy one
too large to travel as one graph key, is read chunk by chunk — its spline coefficients are
filtered per chunk with a halo, each resampling task reads only the field chunks its points
reach, no task of the graph pickles to more than the stated bound — and with
``max_displacement`` planning reads nothing at all."""

from __future__ import annotations

import itertools
import pickle
import threading

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

import transfuse as tf
from transfuse.planner.lower import FIELD_CHUNK_BYTES, FIELD_INLINE_BYTES

RNG = np.random.default_rng(5)
IMAGE = RNG.random((96, 100))
GRID = np.indices((40, 45)).astype(float)
U = np.stack([1.5 * np.sin(GRID[1] / 3), np.cos(GRID[0] / 2)])
MODES = ["constant", "nearest", "mirror", "reflect", "wrap", "grid-wrap", "grid-constant"]

#: What any task of a graph may pickle to: a small field's coefficients as one key, or a
#: chunk of a large numpy field's samples, plus the task's own few kB.
TASK_BOUND = max(FIELD_INLINE_BYTES, FIELD_CHUNK_BYTES) + 16_000
#: What a resampling task may pickle to (it names the chunks it reads, never holds them).
RESAMPLE_TASK_BOUND = 32_000


def _field(values, order, mode, **kw):
    cval = 0.5 if "constant" in mode else 0.0
    return tf.DisplacementField(values, spacing=2.5, order=order, mode=mode, cval=cval, **kw)


def _chain(field):
    return tf.Rotate(5, center=(48, 50)) @ field @ tf.Scale(1.02)


def _result(field, order=1, **kw):
    return tf.lazy(IMAGE, chunks=24).transform(_chain(field), order=order, **kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1, 3])
def test_a_dask_field_gives_the_numpy_fields_result(order, mode):
    expected = _result(_field(U, order, mode)).compute()
    dask_field = _field(da.from_array(U, chunks=(2, 7, 9)), order, mode)
    got = _result(dask_field).compute()
    # order <= 1: the same samples, read from a window (its start shifts the affine
    # offset: rounding); order 3: coefficients filtered per chunk with a halo (1e-10)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 if order <= 1 else 1e-10)
    assert got.shape == expected.shape and np.isfinite(got).all()


def test_a_chunked_field_equals_brute_force_scipy():
    """p -> R(s q + u(s q)) evaluated with scipy alone, then one map_coordinates."""
    field = _field(da.from_array(U, chunks=(2, 11, 8)), 3, "nearest")
    got = _result(field, order=1).compute()
    q = np.indices(IMAGE.shape).astype(float) * 1.02
    grid = q / 2.5
    u = np.stack([ndimage.map_coordinates(c, grid, order=3, mode="nearest") for c in U])
    p = q + u
    rot = tf.Rotate(5, center=(48, 50)).matrix(2)
    coords = np.einsum("ij,j...->i...", rot[:2, :2], p) + rot[:2, 2].reshape(2, 1, 1)
    expected = ndimage.map_coordinates(IMAGE, coords, order=1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


class CountingArray:
    """An array-like that counts the samples read from it (and may refuse all reads)."""

    def __init__(self, values, refuse=False):
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim
        self.reads = []
        self.refuse = refuse
        self.lock = threading.Lock()

    def __getitem__(self, key):
        out = self.values[key]
        if out.size == 0:  # dask's meta probe reads no sample
            return out
        if self.refuse:
            raise AssertionError("the field was read")
        with self.lock:
            self.reads.append(key)
        return out


_NAMES = itertools.count()


def _counting_field(refuse=False, chunks=(2, 8, 9), **kw):
    source = CountingArray(U, refuse)
    # a fresh name each time: dask names stand for contents (plans cache fields by them)
    name = f"counting-field-{next(_NAMES)}"
    arr = da.from_array(source, chunks=chunks, name=name, asarray=True)
    return source, tf.DisplacementField(arr, spacing=2.5, order=1, **kw)


def test_with_max_displacement_planning_and_building_read_nothing():
    source, field = _counting_field(refuse=True, max_displacement=2.0)
    img = tf.lazy(IMAGE, chunks=24).transform(_chain(field), order=1)
    img.explain()
    arr = img.to_dask()  # plans and builds the graph: a read would raise
    assert arr.shape == IMAGE.shape
    source.refuse = False
    expected = _result(tf.DisplacementField(U, spacing=2.5, order=1)).compute()
    np.testing.assert_allclose(arr.compute(), expected, rtol=0, atol=1e-12)


def test_computing_a_corner_reads_only_the_field_chunks_it_needs():
    source, field = _counting_field(max_displacement=2.0)
    img = tf.lazy(IMAGE, chunks=24).transform(_chain(field), order=1)
    corner = img[:20, :20].compute(scheduler="synchronous")
    nchunks = 5 * 5  # field grid 40 x 45 in chunks of 8 x 9
    read = {(k[1].start, k[2].start) for k in source.reads}
    assert 0 < len(read) <= 6 < nchunks
    expected = _result(tf.DisplacementField(U, spacing=2.5, order=1)).compute()[:20, :20]
    np.testing.assert_allclose(corner, expected, rtol=0, atol=1e-12)


def test_without_max_displacement_planning_reduces_each_chunk_once():
    source, field = _counting_field()
    tf.lazy(IMAGE, chunks=24).transform(_chain(field), order=1).to_dask()
    reads = [(k[1].start, k[2].start) for k in source.reads]
    assert len(reads) == len(set(reads)) == 25  # each chunk once, never the whole field
    sizes = {(k[1].stop - k[1].start) * (k[2].stop - k[2].start) for k in source.reads}
    assert max(sizes) <= 8 * 9


def test_a_broken_max_displacement_is_an_error_not_a_wrong_answer():
    field = tf.DisplacementField(da.from_array(U, chunks=(2, 8, 9)), order=1, max_displacement=1)
    arr = tf.lazy(IMAGE, chunks=24).transform(field, order=1).to_dask()
    with pytest.raises(ValueError, match="max_displacement"):
        arr.compute(scheduler="synchronous")


def test_nan_in_a_dask_field_is_reported():
    bad = U.copy()
    bad[0, 3, 4] = np.nan
    field = tf.DisplacementField(da.from_array(bad, chunks=(2, 8, 9)), order=1)
    with pytest.raises(ValueError, match="NaN"):
        tf.lazy(IMAGE, chunks=24).transform(field, order=1).to_dask()
    limited = tf.DisplacementField(
        da.from_array(bad, chunks=(2, 8, 9)), order=1, max_displacement=3
    )
    arr = tf.lazy(IMAGE, chunks=24).transform(limited, order=1).to_dask()
    with pytest.raises(ValueError, match="NaN"):
        arr.compute(scheduler="synchronous")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_displacement": -1}, "max_displacement=-1 must be positive"),
        ({"max_displacement": np.inf}, "must be finite"),
        ({"max_displacement": (1, 2, 3)}, "max_displacement"),
        ({"max_displacement": 1, "mode": "constant", "cval": 4.0}, "must cover cval=4.0"),
    ],
)
def test_bad_max_displacement_is_refused_at_build_time(kw, match):
    with pytest.raises(ValueError, match=match):
        tf.DisplacementField(U, **kw)


def test_max_displacement_is_in_the_key():
    a = tf.DisplacementField(U, max_displacement=2)
    b = tf.DisplacementField(U, max_displacement=3)
    assert a.key != b.key != tf.DisplacementField(U).key


def test_no_task_of_a_large_field_chain_pickles_beyond_the_bound():
    """A 3 x 32^3 field (0.8 MiB: one key) and a 3 x 80^3 one (12 MiB: chunked)."""
    volume = da.random.default_rng(1).random((160, 160, 160), chunks=40)
    for side in (32, 80):
        grid = np.indices((side,) * 3, dtype=float) / side
        u = np.stack([np.sin(3 * grid[1]), np.cos(2 * grid[2]), grid[0] - 0.5])
        field = tf.DisplacementField(u, spacing=160 / side, order=3, mode="mirror")
        img = tf.lazy(volume).transform(tf.Rotate(10, axes=(1, 2)) @ field, order=1)
        graph = dict(img.to_dask().__dask_graph__())
        sizes = {k: len(pickle.dumps(v)) for k, v in graph.items()}
        assert max(sizes.values()) <= TASK_BOUND
        resample = [n for k, n in sizes.items() if str(k[0]).startswith("resample")]
        assert resample and max(resample) <= RESAMPLE_TASK_BOUND
        inline = 8 * u.size <= FIELD_INLINE_BYTES
        assert inline == (side == 32)  # the small one is one key, the large one chunked
        if side == 80:
            ref = tf.lazy(volume).transform(
                tf.Rotate(10, axes=(1, 2)) @ field, order=1, output_chunks=80
            )
            part = (slice(40, 80), slice(0, 40), slice(80, 120))
            window = ndimage.map_coordinates(
                volume.compute(), _brute_force_coords(u, 160 / side, part), order=1
            )
            np.testing.assert_allclose(ref[part].compute(), window, rtol=0, atol=1e-10)


def _brute_force_coords(u, spacing, part):
    """``R(q + u(q))`` for the points ``q`` of ``part``, with scipy alone."""
    q = np.stack(np.meshgrid(*(np.arange(s.start, s.stop) for s in part), indexing="ij"))
    q = q.astype(float)
    disp = np.stack([ndimage.map_coordinates(c, q / spacing, order=3, mode="mirror") for c in u])
    rot = tf.Rotate(10, axes=(1, 2)).matrix(3)
    p = q + disp
    return np.einsum("ij,j...->i...", rot[:3, :3], p) + rot[:3, 3].reshape(3, 1, 1, 1)
