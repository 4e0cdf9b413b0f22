"""Seeded test data and the scipy reference tolerance, shared by the test modules.

Import as ``from tests.helpers import ...`` (``tests`` is a package; see ``tests/conftest.py``).
Every random array comes from a generator seeded with an explicit integer or with
:func:`stable_seed`, never from ``hash()`` (which changes per process with
``PYTHONHASHSEED``) nor from numpy's global state.
"""

from __future__ import annotations

import zlib

import numpy as np

#: the kinds of data :func:`random_image` draws
DATA_KINDS = ("normal", "unit", "uniform", "integers", "constant")


def stable_seed(*parts) -> int:
    """A 32-bit seed from ``repr(parts)``: the same in every process and on every machine.

    >>> stable_seed("reflect", 3, True) == stable_seed("reflect", 3, True)
    True
    >>> stable_seed("reflect", 3, True) != stable_seed("reflect", 3, False)
    True
    """
    return zlib.crc32(repr(parts).encode())


def random_image(shape, seed: int = 0, kind: str = "normal", dtype=np.float64) -> np.ndarray:
    """A reproducible random array of ``shape``.

    ``kind``: ``normal`` (standard normal), ``unit`` (uniform in [0, 1)), ``uniform`` (uniform
    in [-1e3, 1e3)), ``integers`` (integer-valued floats in [-4, 4]: order-0/1 ties are
    common) or ``constant`` (one random value everywhere). Integer dtypes draw over the whole
    range of the dtype (``constant``: one such value).
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if kind == "constant":
            return np.full(shape, rng.integers(info.min, info.max, endpoint=True), dtype=dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if kind == "normal":
        x = rng.standard_normal(shape)
    elif kind == "unit":
        x = rng.random(shape)
    elif kind == "uniform":
        x = rng.uniform(-1e3, 1e3, shape)
    elif kind == "integers":
        x = rng.integers(-4, 5, shape).astype(np.float64)
    elif kind == "constant":
        x = np.full(shape, rng.standard_normal())
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {DATA_KINDS}")
    return x.astype(dtype)


def compute(img):
    """Compute a lazy image (or a dask array) on the synchronous scheduler."""
    return img.compute(scheduler="synchronous")


def assert_parity(got, ref, *, x, cval=0.0, order, ref_float=None):
    """Assert ``got`` equals scipy.ndimage's ``ref`` within the suite's tolerance.

    * orders 0 and 1: bit for bit (every dtype; shape and dtype equal too);
    * orders 2-5, float64 output: ``1e-8 * max(|input|, |cval|)``;
    * float32 output: the same plus one float32 spacing of the reference value (a ~1e-15
      difference in float64 may round to the neighbouring float32);
    * integer output: equal, except that a value scipy computed within the tolerance of a
      rounding tie (``k + 0.5``) may land on either side. ``ref_float`` is then scipy's
      result computed in float64 (needed to locate the ties).
    """
    got = np.asarray(got)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    if order <= 1:
        np.testing.assert_array_equal(got, ref, strict=True)
        return
    scale = max(float(np.max(np.abs(x.astype(np.float64)), initial=0.0)), abs(float(cval)))
    tol = 1e-8 * scale
    kind = ref.dtype.kind
    if kind == "f":
        atol = tol
        if ref.dtype == np.float32:
            atol = tol + np.spacing(np.abs(ref))
        err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        bad = ~(err <= atol)
        assert not bad.any(), (
            f"max error {err.max():.3g} > tolerance {np.max(atol):.3g} "
            f"({int(bad.sum())} of {bad.size} points)"
        )
        return
    assert ref_float is not None, "integer outputs of orders >= 2 need ref_float"
    differ = got != ref
    if differ.any():
        frac = ref_float - np.floor(ref_float)
        near_tie = np.abs(frac - 0.5) <= tol
        off_by_one = np.abs(got.astype(np.int64) - ref.astype(np.int64)) <= 1
        bad = differ & ~(near_tie & off_by_one)
        assert not bad.any(), (
            f"{int(bad.sum())} integer outputs differ away from rounding ties: "
            f"got {got[bad][:5]}, scipy {ref[bad][:5]}, float {ref_float[bad][:5]}"
        )
