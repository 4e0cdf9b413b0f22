"""Resampling options (order, mode, cval, prefilter) and their validation."""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ..transforms.params import MODES

__all__ = [
    "LIMITS",
    "MODES",
    "ResampleOptions",
    "check_chunks",
    "check_output_shape",
    "check_size",
    "set_limits",
]


_NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class ResampleOptions:
    """How one resampling pass interpolates: spline ``order`` (0-5), boundary ``mode``,
    fill value ``cval`` and whether the input is converted to spline coefficients first
    (``prefilter``, as in scipy.ndimage).

    Examples
    --------
    >>> ResampleOptions(order=1, mode="grid-mirror").mode
    'reflect'
    >>> ResampleOptions(order=7)
    Traceback (most recent call last):
    ...
    ValueError: order=7 must be an integer from 0 to 5
    """

    order: int = 3
    mode: str = "constant"
    cval: float = 0.0
    prefilter: bool = True

    def __post_init__(self):
        order = self.order
        if isinstance(order, bool | np.bool_) or not isinstance(order, numbers.Integral):
            raise ValueError(f"order={order!r} must be an integer from 0 to 5")
        if not 0 <= int(order) <= 5:
            raise ValueError(f"order={order!r} must be an integer from 0 to 5")
        object.__setattr__(self, "order", int(order))
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {sorted(MODES)}")
        object.__setattr__(self, "mode", MODES[self.mode])
        cval = self.cval
        if isinstance(cval, bool | np.bool_) or not isinstance(cval, numbers.Real):
            raise ValueError(f"cval={cval!r} must be a real number")
        cval = float(cval)
        if math.isinf(cval):
            raise ValueError(f"cval={cval!r} must be finite or NaN")
        # NaN fills like any value (scipy, dask_image and xcube's callers use it); one NaN
        # object so that equal options compare and hash equal
        object.__setattr__(self, "cval", _NAN if math.isnan(cval) else cval)
        if not isinstance(self.prefilter, bool | np.bool_):
            raise ValueError(f"prefilter={self.prefilter!r} must be True or False")
        object.__setattr__(self, "prefilter", bool(self.prefilter))

    @property
    def needs_coefficients(self) -> bool:
        """True when the input must be converted to spline coefficients."""
        return self.prefilter and self.order > 1

    @property
    def pad(self) -> int:
        """Samples scipy adds per side before prefiltering (12 for nearest/grid-constant)."""
        if self.needs_coefficients and self.mode in ("nearest", "grid-constant"):
            return 12
        return 0


#: Limits checked when a pipeline is built (before any graph or array is made). Change them
#: with :func:`transfuse.set_limits`.
LIMITS = {
    "max_chunks": 1_000_000,  # output chunks (tasks) of one resampling pass
    "max_output_bytes": 2**50,  # bytes of one pass's output (1 PiB: streamed, not held)
}


def set_limits(max_chunks: int | None = None, max_output_bytes: int | None = None) -> dict:
    """Change the build-time limits on one resampling pass (:data:`LIMITS`); returns the
    previous values, so ``set_limits(**old)`` restores them.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> old = transfuse.set_limits(max_chunks=10)
    >>> try:
    ...     transfuse.lazy(np.zeros((100, 100)), chunks=10).shift(1).plan()
    ... except ValueError as exc:
    ...     print(str(exc)[:59])
    output_chunks=(10, 10) for shape (100, 100) makes 100 chunk
    >>> _ = transfuse.set_limits(**old)
    """
    old = dict(LIMITS)
    for name, value in (("max_chunks", max_chunks), ("max_output_bytes", max_output_bytes)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
        LIMITS[name] = int(value)
    return old


def check_output_shape(shape, ndim: int | None = None, name: str = "output_shape") -> tuple:
    """Validate an output shape: non-negative integers (an axis of 0 gives an empty result,
    as in scipy), ``ndim`` entries when given."""
    if np.ndim(shape) == 0:
        raise ValueError(f"{name}={shape!r} must be a sequence of non-negative integers")
    out = []
    for v in shape:
        if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral | bool | np.bool_):
            if math.isfinite(v) and float(v).is_integer():  # 50.0, as real callers pass
                v = int(v)
        if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{name}={tuple(shape)!r} must hold non-negative integers")
        out.append(int(v))
    if ndim is not None and len(out) != ndim:
        raise ValueError(f"{name}={tuple(out)!r} must have {ndim} entries")
    if not out:
        raise ValueError(f"{name} must not be empty")
    return tuple(out)


def check_size(shape, chunks, dtype, name: str = "output") -> None:
    """Refuse a pass whose output has more chunks or bytes than :data:`LIMITS` allow."""
    nchunks = math.prod(len(c) for c in chunks)
    if nchunks > LIMITS["max_chunks"]:
        raise ValueError(
            f"{name}: shape {tuple(shape)} in chunks of {tuple(max(c) for c in chunks)} makes "
            f"{nchunks:,} chunks, over the limit of {LIMITS['max_chunks']:,} "
            "(larger output_chunks, or transfuse.set_limits(max_chunks=...))"
        )
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > LIMITS["max_output_bytes"]:
        raise ValueError(
            f"{name}: shape {tuple(shape)} of {np.dtype(dtype)} is {nbytes:,} bytes, over the "
            f"limit of {LIMITS['max_output_bytes']:,} "
            "(transfuse.set_limits(max_output_bytes=...))"
        )


def check_chunks(chunks, shape: tuple, name: str = "output_chunks") -> tuple[tuple[int, ...], ...]:
    """Normalise a chunk specification for ``shape`` into dask's tuple-of-tuples form.

    Accepts an int (same size on every axis), a tuple of ints (size per axis) or explicit
    block sizes per axis. Raises ValueError naming ``name`` otherwise.
    """
    ndim = len(shape)
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        chunks = (chunks,) * ndim
    if isinstance(chunks, tuple | list) and len(chunks) == ndim:
        count = 1  # count chunks before building the lists of sizes
        for c, n in zip(chunks, shape, strict=True):
            if isinstance(c, numbers.Integral) and not isinstance(c, bool) and c >= 1:
                count *= max(1, -(-int(n) // int(c)))
        if count > LIMITS["max_chunks"]:
            raise ValueError(
                f"{name}={tuple(chunks)!r} for shape {tuple(shape)} makes {count:,} chunks, "
                f"over the limit of {LIMITS['max_chunks']:,} "
                "(larger chunks, or transfuse.set_limits(max_chunks=...))"
            )
    elif not isinstance(chunks, tuple | list):
        raise ValueError(f"{name}={chunks!r} must be an int or a sequence per axis")
    chunks = tuple(chunks)
    if len(chunks) != ndim:
        raise ValueError(f"{name}={chunks!r} must have {ndim} entries")
    out = []
    for axis, (c, n) in enumerate(zip(chunks, shape, strict=True)):
        if isinstance(c, numbers.Integral) and not isinstance(c, bool):
            if c < 1:
                raise ValueError(f"{name}[{axis}]={c!r} must be a positive integer")
            if n == 0:
                out.append((0,))
                continue
            c = min(int(c), n)
            sizes = [c] * (n // c) + ([n % c] if n % c else [])
            out.append(tuple(sizes))
        else:
            if (
                isinstance(c, bool | np.bool_)
                or not isinstance(c, tuple | list)
                or any(
                    isinstance(s, bool | np.bool_) or not isinstance(s, numbers.Integral) for s in c
                )
            ):
                raise ValueError(f"{name}[{axis}]={c!r} must be a positive integer or block sizes")
            sizes = tuple(int(s) for s in c)
            if sum(sizes) != n or any(s < 1 for s in sizes) and n:
                raise ValueError(f"{name}[{axis}]={c!r} does not split an axis of {n} samples")
            out.append(sizes)
    return tuple(out)
