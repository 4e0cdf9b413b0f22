"""Parity sweep: chunked transfuse results against scipy.ndimage's whole-array results.

For every mode x order, runs randomized cases (float64 data) over several variants each:
prefilter on/off; chunks of 1-3 samples, medium chunks, one chunk; short axes (1-6
samples), arrays smaller than the prefilter halo, long axes (chunked prefilter with halos);
ndim 1-3; every matrix form scipy accepts; offsets near and far (up to 1e6 samples) outside;
cval != 0; output shapes different from the input's. Prints a markdown table of the largest
error relative to ``max(|input|, |cval|)`` per mode x order, ``0`` meaning bit-exact in
every case, and the number of cases.

Usage: python benchmarks/parity_table.py [--cases 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.ndimage as ndi

import transfuse

MODES = list(transfuse.MODES)  # every scipy.ndimage mode name
FAR = [1e3, -1e3, 1e4 + 0.25, -3e5 - 0.5, 1e6 + 0.3, -1e6 - 0.7]
SHAPE_KINDS = ["short", "small", "long"]


def _chunks(rng, n):
    """Chunk sizes for an axis of ``n``: tiny (1-3), medium, whole, or irregular."""
    kind = rng.integers(4)
    if kind == 0:
        size = int(rng.integers(1, 4))
    elif kind == 1:
        size = int(rng.integers(1, n + 1))
    elif kind == 2:
        return (n,)
    else:
        cuts = sorted(set(rng.integers(1, n, size=min(n - 1, 4)).tolist())) if n > 1 else []
        return tuple(np.diff([0, *cuts, n]).tolist())
    size = min(size, n)
    return tuple([size] * (n // size) + ([n % size] if n % size else []))


def _shape(rng, ndim, kind):
    if kind == "short":
        return tuple(int(v) for v in rng.integers(1, 7, size=ndim))
    if kind == "small":
        top = {1: 20, 2: 12, 3: 7}[ndim]
        return tuple(int(v) for v in rng.integers(1, top + 1, size=ndim))
    # long: one axis long enough to be prefiltered chunk by chunk with halos
    shape = [int(v) for v in rng.integers(1, 5, size=ndim)]
    shape[int(rng.integers(ndim))] = int(rng.integers(60, 300))
    return tuple(shape)


def _offset(rng, ndim):
    out = rng.uniform(-15, 15, ndim)
    far = rng.random(ndim) < 0.2
    out[far] = rng.choice(FAR, size=int(far.sum()))
    return out


def _matrix(rng, ndim):
    """(matrix, offset) in one of scipy's forms: (n,), (n, n), (n, n+1), (n+1, n+1)."""
    form = rng.integers(4)
    offset = _offset(rng, ndim)
    if form == 0:
        diag = rng.choice([-1, 1], ndim) * rng.uniform(0.1, 2.5, ndim)
        return diag, offset
    kind = rng.integers(3)
    if kind == 0:
        lin = rng.uniform(-2, 2, (ndim, ndim))
    elif kind == 1:
        lin = np.eye(ndim) + rng.uniform(-0.3, 0.3, (ndim, ndim))
    else:
        lin = np.zeros((ndim, ndim))
        lin[np.arange(ndim), rng.permutation(ndim)] = rng.choice([-1, 1], ndim) * rng.choice(
            [0.5, 1.0, 2.0, 1.3], ndim
        )
    if form == 1:
        return lin, offset
    m = np.concatenate([lin, offset[:, None]], axis=1)
    if form == 2:
        return m, 0.0
    return np.concatenate([m, [[0.0] * ndim + [1.0]]]), 0.0


def one_case(rng, mode, order):
    """Run one random case; returns (relative error, description)."""
    shape_kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    ndim = int(rng.integers(1, 3 if shape_kind == "long" else 4))
    shape = _shape(rng, ndim, shape_kind)
    x = rng.standard_normal(shape)
    if rng.random() < 0.2:
        x = rng.integers(-4, 5, shape).astype(np.float64)  # ties for order 0/1
    matrix, offset = _matrix(rng, ndim)
    if rng.random() < 0.5:
        out_shape = shape
    else:
        factors = rng.uniform(0.3, 1.8, ndim)
        out_shape = tuple(max(1, int(n * f)) for n, f in zip(shape, factors, strict=True))
    cval = float(rng.choice([0.0, 1.5, -2.25, rng.uniform(-10, 10)]))
    prefilter = bool(rng.integers(2))
    kw = dict(output_shape=out_shape, order=order, mode=mode, cval=cval, prefilter=prefilter)
    ref = ndi.affine_transform(x, matrix, offset, **kw)
    chunks = tuple(_chunks(rng, n) for n in shape)
    out_chunks = tuple(max(c) for c in (_chunks(rng, n) for n in out_shape))
    img = transfuse.lazy(x, chunks).affine_transform(matrix, offset, output_chunks=out_chunks, **kw)
    got = img.compute(scheduler="synchronous")
    scale = max(float(np.abs(x).max()), abs(cval))
    err = float(np.abs(got - ref).max())
    rel = err / scale if scale > 0 else err
    sizes = [sorted(set(c)) for c in chunks]
    desc = f"shape={shape} chunk sizes={sizes} prefilter={prefilter} offset={offset}"
    return rel, desc


def _fmt(v):
    return "0" if v == 0 else f"{v:.1e}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40, help="cases per mode x order")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    table, worst = {}, (0.0, "")
    for mode in MODES:
        for order in range(6):
            errs = []
            for _ in range(args.cases):
                rel, desc = one_case(rng, mode, order)
                errs.append(rel)
                if rel > worst[0]:
                    worst = (rel, f"{mode} order {order}: {desc}")
            table[mode, order] = (max(errs), sum(e == 0 for e in errs))
    elapsed = time.perf_counter() - t0
    print("mode × order: max error vs scipy (relative to max|input|, float64; 0 = bit-exact)\n")
    print("| mode | " + " | ".join(f"order {k}" for k in range(6)) + " | cases |")
    print("|---|" + "---|" * 7)
    for mode in MODES:
        cells = " | ".join(_fmt(table[mode, k][0]) for k in range(6))
        print(f"| {mode} | {cells} | {6 * args.cases} |")
    total = len(MODES) * 6 * args.cases
    exact = sum(v[1] for v in table.values())
    print(
        f"\n{total} cases ({args.cases} per cell; prefilter on/off, chunks of 1-3 samples to "
        f"whole, ndim 1-3, axes 1-300, offsets up to 1e6 outside), {exact} bit-exact; "
        f"{elapsed:.0f} s. scipy {__import__('scipy').__version__}."
    )
    if worst[0] > 0:
        print(f"Largest: {worst[0]:.2e} ({worst[1]})")


if __name__ == "__main__":
    main()
