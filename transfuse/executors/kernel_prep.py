"""The per-chunk tap tables of the compiled kernel, compiled too.

Before the kernel of :mod:`.kernels_interp` runs on an output chunk, each input axis
needs: the sample every tap index of the chunk's window reads (the mode's rule), whether
one of the chunks the task holds has it, the range of those samples (the region to read),
then each tap's offset in the window's buffer and the longest run of taps that are
consecutive samples (the kernel's fast path). In numpy that was some thirty small array
operations per axis, all of it holding the GIL: cProfile of ``bench_kernels.py``'s order-1
job in chunks of 32³ put it at 115 ms of the 206 ms spent outside the kernel (247 ms);
here it is two compiled calls per chunk that release the GIL (23 ms). The run-finding
loop is :func:`.kernels_interp.linear_runs` written for numba; that numpy form stays for
the other callers of :func:`.kernels_interp.pack_tables` and is the tests' reference.

:func:`sources` and :func:`tables` compute what the numpy path computes (the tests compare
them on every mode, pad and layout); the mode rule is
:func:`.kernel_rules.tap_source`, the scalar form of
:func:`transfuse.planner.boundary.tap_source_index`.
"""

from __future__ import annotations

import numpy as np

from . import kernel_rules as rules
from . import kernels_interp as K
from . import numba_loader

__all__ = ["MISSING", "sources", "tables"]

#: A tap whose sample no chunk of the task holds.
MISSING = -(2**62)

_CVAL = rules.TAP_SOURCE_CVAL

# plain Python until the first call compiles it
_tap_source = rules.tap_source


def _sources(los, his, ns, batch, mode, pad, lstarts, lsizes, lcount, src, region):
    """Per axis ``h``: ``src[h, t]`` the sample tap index ``los[h] - 1 + t`` reads (one
    spare tap each side), :data:`MISSING` where no chunk ``lstarts[h, c]`` (``lsizes``
    long, ``lcount[h]`` of them) holds it, or the cval marker; ``region[h]`` the range of
    the held ones. Returns the first axis holding none of its taps, or -1."""
    for h in range(los.shape[0]):
        p = 0 if batch[h] else pad
        first = los[h] - 1
        lo, hi = MISSING, MISSING
        for t in range(his[h] - los[h] + 3):
            i = first + t
            s = i if batch[h] else _tap_source(i, ns[h], mode, p)
            if s == _CVAL:
                src[h, t] = s
                continue
            held = False
            for c in range(lcount[h]):
                if lstarts[h, c] <= s < lstarts[h, c] + lsizes[h, c]:
                    held = True
                    break
            if not held:
                src[h, t] = MISSING
                continue
            src[h, t] = s
            if lo == MISSING or s < lo:
                lo = s
            if hi == MISSING or s > hi:
                hi = s
        if lo == MISSING:
            return h
        region[h, 0] = lo
        region[h, 1] = hi
    return -1


def _tables(src, counts, region, strides, lead, taps, starts, tab, tlen, fast):
    """The kernel's tables from :func:`_sources`' ``src`` for a window whose axis ``h``
    starts at sample ``region[h, 0]`` with ``strides[h]`` elements per sample: ``tab[lead
    + h, t]`` the tap's offset (or the kernel's cval / missing marker), ``tlen`` the
    entries, and ``fast`` the longest run of linear steps per axis (what
    :func:`.kernels_interp.linear_runs` finds; ``taps[a]`` taps per point, ``starts[a]``
    the first tap index). The ``lead`` axes before the input's have one tap at 0."""
    tab[:, :] = K.TAP_MISSING
    for a in range(lead):
        tab[a, 0] = 0
        tlen[a] = 1
    for h in range(src.shape[0]):
        a = lead + h
        lo, st = region[h, 0], strides[a]
        tlen[a] = counts[h]
        for t in range(counts[h]):
            s = src[h, t]
            if s == _CVAL:
                tab[a, t] = K.TAP_CVAL
            elif s >= lo:
                tab[a, t] = (s - lo) * st
    for a in range(3):
        fast[a, 0], fast[a, 1], fast[a, 2], fast[a, 3] = 1, 0, 0, 0
        st = strides[a]
        n = tlen[a]
        # runs of entries each one stride on from the one before (a lone sample: one entry)
        best_a, best_b, run_a = -1, -1, -1
        for t in range(n - 1):
            step = tab[a, t] >= 0 and tab[a, t + 1] >= 0 and tab[a, t + 1] == tab[a, t] + st
            if step:
                if run_a < 0:
                    run_a = t
                if best_a < 0 or t + 1 - run_a > best_b - best_a:
                    best_a, best_b = run_a, t + 1
            else:
                run_a = -1
        if best_a < 0:  # no step: the first sample alone
            for t in range(n):
                if tab[a, t] >= 0:
                    best_a = best_b = t
                    break
            if best_a < 0:
                continue
        if best_b - best_a + 1 < taps[a]:
            continue
        fast[a, 0] = starts[a] + best_a
        fast[a, 1] = starts[a] + best_b - taps[a] + 1
        fast[a, 2] = tab[a, best_a] - (starts[a] + best_a) * st
        fast[a, 3] = st


def _register_sources():
    global _tap_source
    _tap_source = K._jit(rules.tap_source, inline="always")
    return K._jit(_sources, nogil=True, boundscheck=False, **K.no_refcounts())


def _register_tables():
    return K._jit(_tables, nogil=True, boundscheck=False, **K.no_refcounts())


_SOURCES = numba_loader.DeferredKernel(_register_sources)
_TABLES = numba_loader.DeferredKernel(_register_tables)


def sources(job, footprint, layouts):
    """Per input axis of ``job``'s chunk ``footprint``, read from chunks at ``layouts``:
    ``(src, counts, region, firsts)`` — the sample each tap index reads (one spare tap
    each side; :data:`MISSING` where no chunk held has it), how many tap indices, the
    range of held samples and the first tap index (pre-padded frame) — or None where an
    axis holds none of its taps.

    Examples
    --------
    One axis of 8 samples, mode ``reflect``, a window of samples 6..8 read from the chunk
    holding samples 4..7: tap 9 is the spare; 8 reflects to 7 and 9 to 6.

    >>> from types import SimpleNamespace
    >>> from transfuse.executors.blocks import AxisLayout
    >>> from transfuse.planner.footprint import AxisWindow, ChunkFootprint
    >>> from transfuse.planner.options import ResampleOptions
    >>> job = SimpleNamespace(options=ResampleOptions(order=1, mode="reflect"),
    ...                       batch_axes=(), input_shape=(8,))
    >>> fp = ChunkFootprint(((0, 2),), (AxisWindow(6, 8, (1,), 6.5, 7.5),), False)
    >>> src, counts, region, firsts = sources(job, fp, [AxisLayout([4], [4])])
    >>> src[0, : counts[0]].tolist(), region.tolist(), firsts.tolist()
    ([5, 6, 7, 7, 6], [[5, 7]], [5])
    """
    opts = job.options
    axes = footprint.axes
    n = len(axes)
    los = np.array([w.lo for w in axes], dtype=np.int64)
    his = np.array([w.hi for w in axes], dtype=np.int64)
    batch = np.array([h in job.batch_axes for h in range(n)], dtype=np.bool_)
    width = int((his - los).max()) + 3
    most = max(len(lay.starts) for lay in layouts)
    lstarts = np.zeros((n, most), dtype=np.int64)
    lsizes = np.zeros((n, most), dtype=np.int64)
    lcount = np.empty(n, dtype=np.int64)
    for h, lay in enumerate(layouts):
        k = len(lay.starts)
        lstarts[h, :k] = lay.starts
        lsizes[h, :k] = lay.sizes
        lcount[h] = k
    src = np.empty((n, width), dtype=np.int64)
    region = np.empty((n, 2), dtype=np.int64)
    shape = np.asarray(job.input_shape, dtype=np.int64)
    mode = K.MODE_CODES[opts.mode]
    if _SOURCES(los, his, shape, batch, mode, opts.pad, lstarts, lsizes, lcount, src, region) >= 0:
        return None
    firsts = los - 1 + np.where(batch, 0, opts.pad)
    return src, his - los + 3, region, firsts


def tables(prepared, strides, interp, order):
    """The kernel's ``(tab, tlen, starts, fast)`` (3 axes, the input's last) from
    :func:`sources`' ``prepared`` for a window with ``strides`` (elements per sample of the
    input's axes) and ``interp`` (3 entries: 0 for an axis read with one tap)."""
    src, counts, region, firsts = prepared
    n = src.shape[0]
    lead = 3 - n
    width = max(int(counts.max()), 1)
    st = np.zeros(3, dtype=np.int64)
    st[lead:] = strides
    starts = np.zeros(3, dtype=np.int64)
    starts[lead:] = firsts
    taps = np.where(np.asarray(interp) == 0, 1, int(order) + 1).astype(np.int64)
    tab = np.empty((3, width), dtype=np.int64)
    tlen = np.empty(3, dtype=np.int64)
    fast = np.empty((3, 4), dtype=np.int64)
    _TABLES(src, counts, region, st, lead, taps, starts, tab, tlen, fast)
    return tab, tlen, starts, fast
