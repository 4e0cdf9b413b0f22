"""Non-linear transform nodes: maps with no matrix, evaluated per output chunk."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from .base import Transform

__all__ = ["NonlinearTransform", "CoordinateMap", "array_token"]


def array_token(array) -> str:
    """A content token of a numpy array, or the graph name of a dask array."""
    name = getattr(array, "name", None)
    if name is not None and hasattr(array, "dask"):
        return f"dask:{name}"
    arr = np.ascontiguousarray(array)
    digest = hashlib.sha256(arr.view(np.uint8).reshape(-1).tobytes()).hexdigest()
    return f"ndarray:{arr.dtype.str}:{arr.shape}:{digest}"


def freeze_array(array, name: str, *, min_ndim: int = 1):
    """A read-only float64 copy of a numpy array, or a dask array unchanged (as float64).

    Raises ValueError naming ``name`` for non-real dtypes, too few dimensions, or (numpy)
    NaN/inf entries.
    """
    if hasattr(array, "dask") and hasattr(array, "chunks"):
        if np.dtype(array.dtype).kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
        if array.ndim < min_ndim:
            raise ValueError(f"{name} must have at least {min_ndim} dimensions, got {array.ndim}")
        return array.astype(np.float64) if array.dtype != np.float64 else array
    try:
        arr = np.array(array, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers") from exc
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    arr.setflags(write=False)
    return arr


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class NonlinearTransform(Transform):
    """Base of transforms without a matrix. Equality and hashing go through :attr:`key`
    (array parameters are compared by content token)."""

    is_affine = False

    def __eq__(self, other):
        return type(self) is type(other) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CoordinateMap(NonlinearTransform):
    """Absolute input coordinates for every output point, as
    :func:`scipy.ndimage.map_coordinates` takes them: ``coords[:, i, j, ...]`` is where output
    point ``(i, j, ...)`` reads the input.

    Parameters
    ----------
    coords : array_like or dask.array.Array, shape (ndim_in, *output_shape)

    Examples
    --------
    >>> import numpy as np
    >>> m = CoordinateMap(np.zeros((2, 3, 4)))
    >>> m.ndim, m.output_shape
    (2, (3, 4))
    """

    coords: object = None

    def __post_init__(self):
        object.__setattr__(self, "coords", freeze_array(self.coords, "coords", min_ndim=2))

    @property
    def ndim(self):
        return int(self.coords.shape[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.coords.shape[1:])

    def params(self):
        return {"coords": array_token(self.coords)}

    def __repr__(self):
        return f"CoordinateMap(coords shape={tuple(self.coords.shape)})"
