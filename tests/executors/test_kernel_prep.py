"""The compiled per-chunk tap tables (kernel_prep) against the numpy rules they replace."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfuse.executors import kernel_prep, kernel_rules, kernels_interp
from transfuse.executors.blocks import AxisLayout
from transfuse.planner.boundary import CVAL, tap_source_index
from transfuse.planner.footprint import AxisWindow, ChunkFootprint
from transfuse.planner.options import MODES, ResampleOptions

pytestmark = pytest.mark.skipif(not kernels_interp.AVAILABLE, reason="numba is not installed")

CANONICAL = sorted(set(MODES.values()))


def test_cval_markers_agree():
    assert kernel_rules.TAP_SOURCE_CVAL == CVAL


@pytest.mark.parametrize("mode", CANONICAL)
@pytest.mark.parametrize("pad", [0, 2, 12])
def test_scalar_tap_rule_is_the_vectorised_one(mode, pad):
    idx = np.arange(-70, 71, dtype=np.int64)
    code = kernel_rules.MODE_CODES[mode]
    for n in range(1, 10):
        want = tap_source_index(idx, n, mode, pad)
        got = [kernel_rules.tap_source(int(i), n, code, pad) for i in idx]
        assert got == want.tolist(), (mode, n, pad)


def reference(job, footprint, layouts, strides, interp, order):
    """The numpy path the compiled one replaced: tap sources, held samples, region, the
    tables and their linear runs (kernels_interp.pack_tables)."""
    opts = job.options
    missing = kernel_prep.MISSING
    tables, starts, region = [], [], []
    lead = 3 - len(footprint.axes)
    for h, w in enumerate(footprint.axes):
        batch = h in job.batch_axes
        pad = 0 if batch else opts.pad
        idx = np.arange(w.lo - 1, w.hi + 2, dtype=np.int64)
        src = idx if batch else tap_source_index(idx, job.input_shape[h], opts.mode, pad)
        lay = layouts[h]
        held = np.zeros(len(src), dtype=bool)
        for a, k in zip(lay.starts, lay.sizes, strict=True):
            held |= (src != CVAL) & (src >= a) & (src < a + k)
        if not held.any():
            return None
        lo = int(src[held].min())
        region.append((lo, int(src[held].max())))
        marked = np.where(held, src, np.where(src == CVAL, CVAL, missing))
        table = np.where(marked >= lo, (marked - lo) * strides[h], kernels_interp.TAP_MISSING)
        tables.append(np.where(marked == CVAL, kernels_interp.TAP_CVAL, table))
        starts.append(w.lo - 1 + pad)
    tables = [np.zeros(1, dtype=np.int64)] * lead + tables
    starts = [0] * lead + starts
    full = [0] * lead + list(strides)
    return region, kernels_interp.pack_tables(tables, starts, full, interp, order)


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(CANONICAL))
    order = draw(st.integers(0, 5))
    prefilter = draw(st.booleans())
    opts = ResampleOptions(order=order, mode=mode, prefilter=prefilter)
    batch = tuple(h for h in range(ndim) if draw(st.booleans()) and ndim > 1)
    shape, axes, layouts, strides = [], [], [], []
    for _h in range(ndim):
        n = draw(st.integers(1, 30))
        chunk = draw(st.integers(1, 12))
        lo = draw(st.integers(-20, n + 10))
        hi = lo + draw(st.integers(0, 25))
        starts = list(range(-opts.pad, n + opts.pad, chunk))
        first = draw(st.integers(0, len(starts) - 1))
        count = draw(st.integers(1, len(starts) - first))
        chosen = starts[first : first + count]
        sizes = [min(chunk, n + opts.pad - s) for s in chosen]
        shape.append(n)
        axes.append(AxisWindow(lo, hi, tuple(range(count)), float(lo), float(hi)))
        layouts.append(AxisLayout(chosen, sizes))
        strides.append(draw(st.integers(1, 500)))
    job = SimpleNamespace(options=opts, batch_axes=batch, input_shape=tuple(shape))
    box = tuple((0, 1) for _ in range(ndim))
    interp = np.zeros(3, dtype=np.int64)
    for h in range(ndim):
        interp[3 - ndim + h] = 0 if h in batch else 1
    return job, ChunkFootprint(box, tuple(axes), False), layouts, strides, interp, order


@settings(max_examples=400, deadline=None, derandomize=True)
@given(cases())
def test_compiled_tables_are_the_numpy_ones(case):
    job, footprint, layouts, strides, interp, order = case
    want = reference(job, footprint, layouts, strides, interp, order)
    prepared = kernel_prep.sources(job, footprint, layouts)
    if want is None:
        assert prepared is None
        return
    assert prepared is not None
    region, (tab, tlen, starts, fast) = want
    assert [tuple(r) for r in prepared[2].tolist()] == region
    got = kernel_prep.tables(prepared, strides, interp, order)
    np.testing.assert_array_equal(got[0], tab)
    np.testing.assert_array_equal(got[1], tlen)
    np.testing.assert_array_equal(got[2], starts)
    np.testing.assert_array_equal(got[3], fast)
