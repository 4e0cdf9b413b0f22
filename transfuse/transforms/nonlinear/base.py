"""The base of the non-linear transforms and the helpers they share (array parameters,
per-axis values, formatting)."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
import weakref

import numpy as np

from ..base import Transform
from ..params import as_scalar, as_vector
from ..sympy_types import is_sympy

# Arrays this module froze (read-only float64 copies), and read-only arrays that their
# owner (the recipe reader) declared it never writes: both may be used without another copy.
# Keyed by id() for identity only (entries leave with the array, so an id is never stale).
_FROZEN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_SHARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_FROZEN_OF: dict[int, np.ndarray] = {}  # id(shared source) -> its frozen float64 copy
_TOKENS: dict[int, str] = {}  # id(frozen array) -> its content token


def _known(registry, array) -> bool:
    return registry.get(id(array)) is array


def share_read_only(array: np.ndarray) -> np.ndarray:
    """Mark ``array`` read-only and declare that its owner never writes to it again, so
    that :func:`freeze_array` converts it once however many transforms use it.

    For arrays transfuse itself creates (the recipe reader's ``.npy`` cache); a user's
    arrays are always copied.
    """
    array.setflags(write=False)
    if not _known(_SHARED, array):
        _SHARED[id(array)] = array
        weakref.finalize(array, _FROZEN_OF.pop, id(array), None)
    return array


def array_token(array) -> str:
    """A content token of a numpy array, or the graph name of a dask array."""
    name = getattr(array, "name", None)
    if name is not None and hasattr(array, "dask"):
        return f"dask:{name}"
    if _known(_FROZEN, array) and id(array) in _TOKENS:
        return _TOKENS[id(array)]
    arr = np.ascontiguousarray(array)
    digest = hashlib.sha256(arr.view(np.uint8).reshape(-1).tobytes()).hexdigest()
    token = f"ndarray:{arr.dtype.str}:{arr.shape}:{digest}"
    if _known(_FROZEN, array):
        _TOKENS[id(array)] = token
    return token


_EVALUATOR = []


def register_evaluator(evaluator) -> None:
    """Set the object that maps points through non-linear transforms: it has
    ``points(transform, coords)`` and ``jacobian(expr_map, coords)``. transfuse registers
    one built on the planner and the reference executor when it is imported."""
    _EVALUATOR[:] = [evaluator]


def evaluator():
    """The registered point evaluator (see :func:`register_evaluator`)."""
    if not _EVALUATOR:
        raise RuntimeError("no point evaluator registered: import transfuse first")
    return _EVALUATOR[0]


def is_dask(array) -> bool:
    return hasattr(array, "dask") and hasattr(array, "chunks")


def freeze_array(array, name: str, *, min_ndim: int = 1):
    """A read-only float64 copy of a numpy array, or a dask array unchanged (as float64).

    Raises ValueError naming ``name`` for non-real dtypes (complex numbers, strings — which
    are never parsed as numbers), too few dimensions, or (numpy) NaN/inf entries.
    """
    if is_dask(array):
        if np.dtype(array.dtype).kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
        if array.ndim < min_ndim:
            raise ValueError(f"{name} must have at least {min_ndim} dimensions, got {array.ndim}")
        return array.astype(np.float64) if array.dtype != np.float64 else array
    if _known(_FROZEN, array) or (_known(_SHARED, array) and id(array) in _FROZEN_OF):
        arr = array if _known(_FROZEN, array) else _FROZEN_OF[id(array)]
        if arr.ndim < min_ndim:
            raise ValueError(
                f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}"
            )
        return arr
    try:
        raw = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers") from exc
    if raw.dtype.kind not in "biufO":
        raise ValueError(f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            arr = np.array(raw, dtype=np.float64, copy=True)
    except (TypeError, ValueError, np.exceptions.ComplexWarning) as exc:
        raise ValueError(f"{name} must be an array of real numbers") from exc
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    arr.setflags(write=False)
    _FROZEN[id(arr)] = arr
    weakref.finalize(arr, _TOKENS.pop, id(arr), None)
    if _known(_SHARED, array):
        _FROZEN_OF[id(array)] = arr
    return arr


def _points_last(points, ndim: int, owner: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] != ndim:
        raise ValueError(f"{owner}: points must have shape (..., {ndim}), got {points.shape}")
    return points


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class NonlinearTransform(Transform):
    """Base of transforms without a matrix. Equality and hashing go through :attr:`key`
    (array parameters are compared by content token).

    Subclasses evaluate themselves on coordinate arrays laid out like
    :func:`scipy.ndimage.map_coordinates` takes them, ``(ndim, ...)``, in :meth:`apply`;
    ``T(points)`` with points of shape ``(..., ndim)`` is the same map.
    """

    is_affine = False

    def __eq__(self, other):
        return type(self) is type(other) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    @property
    def free_symbols(self):
        return frozenset()

    def _substitute(self, subs):
        return self

    def apply(self, coords: np.ndarray) -> np.ndarray:
        """Map coordinates of shape ``(ndim, ...)`` (output space) to input space.

        The transform is planned as physical stages and evaluated by the reference
        executor (transforms never evaluate themselves). A subclass may override this
        with its own numpy evaluation: it then joins chains as a callable stage.
        """
        return evaluator().points(self, np.asarray(coords, dtype=np.float64))

    def __call__(self, points):
        """Map points of shape ``(..., ndim)`` (output space) to input space."""
        ndim = self.resolve_ndim(None)
        pts = _points_last(points, ndim, type(self).__name__)
        return np.moveaxis(self.apply(np.moveaxis(pts, -1, 0)), 0, -1)

    def __getstate__(self):
        # compiled functions and samplers are rebuilt on demand (they may not pickle)
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_c_")}


def per_axis(value, name: str, ndim: int, positive: bool = False) -> tuple:
    if is_sympy(value) or np.ndim(value) == 0:
        vec = (as_scalar(value, name),) * ndim
    else:
        vec = as_vector(value, name, length=ndim)
    for v in vec:
        if is_sympy(v):
            raise ValueError(f"{name}={value!r} must be numbers (not symbolic)")
        if positive and not v > 0:
            raise ValueError(f"{name}={value!r} must be positive")
    return tuple(float(v) for v in vec)


def format_values(values) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:g}"
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
