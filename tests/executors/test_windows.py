"""The window a compiled resampling task reads: a view of the array when the input chunks
are views of one numpy array (``blocks.region_view``), else the chunks copied into one
region (``blocks.assemble_region``) — the same samples, so the same result bit for bit."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

import transfuse as tf
from transfuse.executors import blocks
from transfuse.executors import kernel_plan as compiled


def _cut(values, chunks, picks):
    """The pieces of ``values`` for chunk indices ``picks`` per axis (row-major), their
    layouts, and the grid counts."""
    bounds = [np.cumsum((0, *c)) for c in chunks]
    layouts = [
        blocks.AxisLayout([b[i] for i in p], [b[i + 1] - b[i] for i in p])
        for b, p in zip(bounds, picks, strict=True)
    ]
    grid = np.stack(np.meshgrid(*picks, indexing="ij"), -1).reshape(-1, len(picks))
    pieces = [
        values[tuple(slice(bounds[a][i], bounds[a][i + 1]) for a, i in enumerate(idx))]
        for idx in grid
    ]
    return pieces, layouts, [len(p) for p in picks]


@st.composite
def cuts(draw):
    ndim = draw(st.integers(1, 3))
    chunks = [draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)) for _ in range(ndim)]
    picks, ranges = [], []
    for c in chunks:
        first = draw(st.integers(0, len(c) - 1))
        last = draw(st.integers(first, len(c) - 1))
        picks.append(list(range(first, last + 1)))
        lo0, hi0 = sum(c[:first]), sum(c[: last + 1]) - 1
        lo = draw(st.integers(lo0, hi0))
        ranges.append((lo, draw(st.integers(lo, hi0))))
    order = draw(st.sampled_from(["C", "F"]))
    flip = draw(st.booleans())
    return chunks, picks, ranges, order, flip


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cuts())
def test_region_view_is_the_assembled_region_without_a_copy(case):
    chunks, picks, ranges, order, flip = case
    shape = tuple(sum(c) for c in chunks)
    values = np.asarray(np.random.default_rng(0).random(shape), order=order)
    if flip:  # a view with a negative stride: still one array
        values = values[::-1]
    pieces, layouts, counts = _cut(values, chunks, picks)
    assembled = blocks.assemble_region(pieces, counts, layouts, ranges)
    view = blocks.region_view(pieces, counts, layouts, ranges)
    if len(pieces) == 1:
        assert view is None  # one piece: the caller slices it
        return
    assert view is not None and np.shares_memory(view, values)
    np.testing.assert_array_equal(view, assembled)
    copies = [p.copy() for p in pieces]
    assert blocks.region_view(copies, counts, layouts, ranges) is None
    swapped = [pieces[-1], *pieces[1:-1], pieces[0]]  # pieces not where their layout says
    if not all(p.shape == pieces[0].shape for p in pieces):
        return  # then the sizes alone tell them apart
    assert blocks.region_view(swapped, counts, layouts, ranges) is None


def test_region_view_across_a_gap_addresses_only_the_chunks_taken():
    """wrap modes take the last and the first chunk of an axis: the view spans the gap,
    and every sample it holds from a chunk taken is that chunk's."""
    values = np.arange(40.0 * 6).reshape(40, 6)
    pieces, layouts, counts = _cut(values, [[10] * 4, [6]], [[0, 3], [0]])
    view = blocks.region_view(pieces, counts, layouts, [(5, 34), (0, 5)])
    assembled = blocks.assemble_region(pieces, counts, layouts, [(5, 34), (0, 5)])
    np.testing.assert_array_equal(view[:5], assembled[:5])  # rows 5-9, from chunk 0
    np.testing.assert_array_equal(view[-5:], assembled[-5:])  # rows 30-34, from chunk 3


needs_numba = pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")
MODES = ["constant", "nearest", "mirror", "reflect", "grid-mirror", "wrap", "grid-wrap"]
MODES += ["grid-constant"]
VOLUME = np.random.default_rng(7).random((30, 34, 26))


@needs_numba
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_viewed_and_assembled_windows_give_the_same_bits(monkeypatch, mode, order, dtype):
    x = VOLUME.astype(dtype)
    assembled_calls = []
    original = compiled.assemble_region

    def counting(pieces, *args, **kwargs):
        if len(pieces) > 1:  # one piece is sliced, not copied
            assembled_calls.append(1)
        return original(pieces, *args, **kwargs)

    monkeypatch.setattr(compiled, "assemble_region", counting)
    kernel_calls = []
    run = compiled.resample

    def spy(*args, **kwargs):
        out = run(*args, **kwargs)
        kernel_calls.append(out is not None)
        return out

    monkeypatch.setattr(compiled, "resample", spy)

    def rotated(arr):
        img = tf.lazy(arr).rotate(17, axes=(1, 2), order=order, mode=mode, reshape=False)
        with dask.config.set({"transfuse.executor": "cpu", "transfuse.cold_start_voxels": 0}):
            return img.compute(scheduler="synchronous")

    views = rotated(da.from_array(x, chunks=(10, 9, 8)))
    if order <= 1:  # numpy chunks into the kernel: every window a view
        assert any(kernel_calls) and not assembled_calls
    copies = rotated(da.from_array(x, chunks=(10, 9, 8)).map_blocks(np.copy))
    if order <= 1:
        assert assembled_calls  # the same job with copied chunks assembles its windows
    np.testing.assert_array_equal(views, copies)
    expected = ndi.rotate(x, 17, axes=(1, 2), order=order, mode=mode, reshape=False)
    if order <= 1:  # float32 too: the kernel rounds each point as scipy's cast does
        np.testing.assert_array_equal(views, expected)
    else:
        tol = 1e-6 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(views, expected, rtol=0, atol=tol * np.abs(x).max())
