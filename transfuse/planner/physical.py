"""The physical plan: what lowering produces and what executors run. Data only.

A resampling pass pulls every output point through a short sequence of *stages*, applied
in order (``stages[0]`` takes the output sample indices, ``stages[-1]`` gives input
coordinates):

* :class:`AffineStage` — ``c = linear @ p + offset``, or, in ``separable`` form, a sequence
  of per-axis additions and multiplications (scipy's ``zoom``/``shift`` arithmetic);
* :class:`FieldStage` — ``p + u(p)``, ``u`` interpolated from the field's spline
  coefficients (``coefficients`` is None inside task specs: the array travels as one graph
  key shared by the tasks);
* :class:`ExprStage` — expressions compiled to numpy source text with safe generated names
  and their float constants; an executor turns the text into a function (it never sees
  sympy);
* :class:`NewtonStage` — the numerical inverse of an expression map (forward and Jacobian
  as :class:`ExprStage`);
* :class:`CoordinateArrayStage` — absolute coordinates read from an array, one chunk per
  output chunk (only as the first stage);
* :class:`CallableStage` — a Python callable (``FunctionMap``).

Nothing here evaluates itself: executors do (see :mod:`transfuse.executors`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .footprint import ChunkFootprint, axis_pads
from .options import ResampleOptions

__all__ = [
    "AffineStage",
    "CallableStage",
    "CoordinateArrayStage",
    "ExprStage",
    "FieldStage",
    "FieldWindows",
    "Geometry",
    "GridView",
    "NewtonStage",
    "PhysicalPass",
    "Stage",
]


def _frozen(array) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


@dataclasses.dataclass(frozen=True)
class GridView:
    """A selection of a grid (lazy indexing): for each axis of the ``base_shape`` grid,
    ``(j, start, step)`` when new axis ``j`` walks it (index ``start + step * i``), or
    ``(None, k, 0)`` when it is fixed at index ``k`` (the axis is dropped)."""

    axes: tuple
    base_shape: tuple[int, ...]
    shape: tuple[int, ...]  # of the selection

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def drops_axes(self) -> bool:
        return self.ndim != len(self.axes)

    def base_boxes(self, boxes) -> np.ndarray:
        """The boxes ``[start, stop)`` of the base grid holding boxes of the view."""
        boxes = np.asarray(boxes, dtype=np.int64)
        out = np.empty((boxes.shape[0], len(self.axes), 2), dtype=np.int64)
        for a, (j, start, step) in enumerate(self.axes):
            if j is None:
                out[:, a, 0], out[:, a, 1] = start, start + 1
                continue
            first = start + step * boxes[:, j, 0]
            last = start + step * (boxes[:, j, 1] - 1)
            out[:, a, 0] = np.minimum(first, last)
            out[:, a, 1] = np.maximum(first, last) + 1
        return out

    def index(self) -> tuple:
        """The numpy index (integers and slices) of the selection."""
        out = []
        for j, start, step in self.axes:
            if j is None:
                out.append(int(start))
                continue
            n = int(self.shape[j])
            stop = start + step * n
            out.append(slice(start, None if stop < 0 else stop, step))
        return tuple(out)

    def compose(self, inner: GridView) -> GridView:
        """The view ``inner`` taken of this view's result (a view of a view)."""
        kept = [a for a, (j, _, _) in enumerate(self.axes) if j is not None]
        axes = list(self.axes)
        for a in kept:
            j, start, step = self.axes[a]
            ij, istart, istep = inner.axes[j]
            if ij is None:
                axes[a] = (None, start + step * istart, 0)
            else:
                axes[a] = (ij, start + step * istart, step * istep)
        return GridView(tuple(axes), self.base_shape, inner.shape)

    def describe(self) -> str:
        parts = []
        for j, start, step in self.axes:
            parts.append(str(start) if j is None else f"{start}::{step}")
        return "view[" + ", ".join(parts) + "]"


@dataclasses.dataclass(frozen=True, eq=False)
class AffineStage:
    """``c = linear @ p + offset`` (``form="matrix"``: scipy's order of operations, offset
    first, then each input axis left to right), or per axis the operations ``ops``
    (``form="separable"``: ``("add", v)`` / ``("mul", v)`` in order, scipy's
    zoom/shift arithmetic)."""

    linear: np.ndarray
    offset: np.ndarray
    form: str = "matrix"
    ops: tuple = ()
    view: GridView | None = None  # the first stage may read a selection of its grid

    @classmethod
    def from_matrix(cls, matrix) -> AffineStage:
        """From a homogeneous ``(n_in + 1, n_out + 1)`` matrix."""
        m = np.asarray(matrix, dtype=np.float64)
        n_in, n_out = m.shape[0] - 1, m.shape[1] - 1
        return cls(_frozen(m[:n_in, :n_out]), _frozen(m[:n_in, n_out]))

    @classmethod
    def separable(cls, ops, ndim: int) -> AffineStage:
        """Per-axis ``("add", vector)`` / ``("mul", vector)`` operations, applied in order."""
        lin, off = np.ones(ndim), np.zeros(ndim)
        frozen_ops = []
        for kind, vec in ops:
            v = _frozen(np.broadcast_to(np.asarray(vec, dtype=np.float64), (ndim,)))
            if kind == "add":
                off = off + v
            else:
                lin, off = lin * v, off * v
            frozen_ops.append((kind, v))
        return cls(_frozen(np.diag(lin)), _frozen(off), "separable", tuple(frozen_ops))

    @property
    def ndim_in(self) -> int:
        return self.linear.shape[0]

    @property
    def ndim_out(self) -> int:
        """Axes of the points the stage takes (of its view, when it has one)."""
        return self.view.ndim if self.view is not None else self.linear.shape[1]

    @property
    def matrix(self) -> np.ndarray:
        """The homogeneous matrix."""
        n_in, n_out = self.linear.shape
        m = np.zeros((n_in + 1, n_out + 1))
        m[:n_in, :n_out] = self.linear
        m[:n_in, n_out] = self.offset
        m[n_in, n_out] = 1.0
        return m

    @property
    def is_identity(self) -> bool:
        n_in, n_out = self.linear.shape
        plain = self.view is None
        return plain and n_in == n_out and np.array_equal(self.matrix, np.eye(n_in + 1))

    def restricted(self, axes) -> AffineStage:
        """The stage on ``axes`` only (for a stage that is the identity on the others: the
        float operations on ``axes`` are unchanged, the others only add exact zeros)."""
        axes = list(axes)
        ops = tuple((k, _frozen(v[axes])) for k, v in self.ops)
        return AffineStage(
            _frozen(self.linear[np.ix_(axes, axes)]), _frozen(self.offset[axes]), self.form, ops
        )

    @property
    def token(self) -> tuple:
        ops = tuple((k, v.tobytes()) for k, v in self.ops)
        view = None if self.view is None else (self.view.axes, self.view.shape)
        return ("affine", self.form, self.linear.tobytes(), self.offset.tobytes(), ops, view)

    def describe(self) -> str:
        text = self._describe()
        return text if self.view is None else f"{text} @ {self.view.describe()}"

    def _describe(self) -> str:
        if self.form == "separable":
            parts = []
            for kind, v in self.ops:
                sign = "+" if kind == "add" else "*"
                parts.append(sign + "(" + ", ".join(f"{x:.4g}" for x in v) + ")")
            return "separable[" + " then ".join(parts) + "]"
        rows = [
            "[" + ", ".join(f"{v:.4g}" for v in (*row, off)) + "]"
            for row, off in zip(self.linear, self.offset, strict=True)
        ]
        return "affine[" + ", ".join(rows) + "]"


@dataclasses.dataclass(frozen=True, eq=False)
class FieldStage:
    """``p + u(p)``: ``u`` interpolated (``order``, ``mode``, ``cval``, scipy's
    ``map_coordinates`` rules) from ``coefficients`` of shape ``(ncomp, *padded_grid)`` at
    the grid coordinates ``(p - origin) / spacing`` (plus ``npad``, the pre-padding).

    ``coefficients`` is a numpy array (a small field: one graph key shared by the tasks),
    or a chunked collection (a dask field or a large one: each task reads the chunks its
    points reach; ``windows`` of the pass say which). Inside a task it holds only those
    chunks, assembled, and ``start`` is the index of their first sample in the whole
    (padded) coefficient array. ``max_displacement`` is the user's bound on ``|u|`` per
    component (checked by every task), or None."""

    coefficients: object
    order: int
    mode: str
    cval: float
    npad: int
    grid_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    key: str  # the field's content token (identifies ``coefficients``)
    max_abs: float = 0.0
    start: tuple[int, ...] | None = None
    max_displacement: tuple[float, ...] | None = None

    @property
    def chunked(self) -> bool:
        """Whether the coefficients are a chunked collection read per task."""
        return hasattr(self.coefficients, "chunks") and hasattr(self.coefficients, "dask")

    @property
    def ndim_in(self) -> int:
        return len(self.grid_shape)

    @property
    def token(self) -> tuple:
        return ("field", self.key, self.order, self.mode, self.cval, self.spacing, self.origin)

    def describe(self) -> str:
        grid = "x".join(str(n) for n in self.grid_shape)
        sp = ", ".join(f"{v:g}" for v in self.spacing)
        org = ", ".join(f"{v:g}" for v in self.origin)
        return (
            f"field(grid {grid}, spacing ({sp}), origin ({org}), order={self.order}, "
            f"mode={self.mode}, |u| <= {max(self.max_abs, abs(self.cval)):.3g})"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class FieldWindows:
    """Per output chunk (rows), the box of a chunked field's padded coefficient array its
    points read: ``start``/``stop`` (inclusive) per grid axis, ``empty`` where they read
    only ``cval``."""

    start: np.ndarray  # (nchunks, ndim) int64
    stop: np.ndarray
    empty: np.ndarray  # (nchunks,) bool


@dataclasses.dataclass(frozen=True, eq=False)
class ExprStage:
    """Expressions as numpy source: ``source`` defines ``function_name(x0, ..., c0, ...)``
    returning one array per input axis; ``x*`` are the point coordinates, ``c*`` take
    ``constants`` (float constants kept to the last bit). Only ``numpy`` and
    ``scipy.special`` names appear besides the arguments."""

    source: str
    function_name: str
    ndim_out: int
    ndim_in: int
    constants: tuple[float, ...]
    text: str  # the expressions as the user wrote them, for explain()
    bounded: bool = True

    @property
    def token(self) -> tuple:
        return ("expr", self.source, self.constants)

    def describe(self) -> str:
        tail = "" if self.bounded else " [footprint: whole input]"
        return f"expr({self.text}){tail}"


@dataclasses.dataclass(frozen=True, eq=False)
class NewtonStage:
    """The inverse of ``forward`` by damped Newton iteration from ``p``, with ``jacobian``
    (row-major ``d forward[i] / d p[j]``), to ``tol`` in at most ``max_iter`` steps."""

    forward: ExprStage
    jacobian: ExprStage
    tol: float
    max_iter: int
    bounded = False

    @property
    def ndim_in(self) -> int:
        return self.forward.ndim_in

    @property
    def token(self) -> tuple:
        return ("newton", self.forward.token, self.jacobian.token, self.tol, self.max_iter)

    def describe(self) -> str:
        return f"inverse of {self.forward.describe()} (Newton, tol={self.tol:g})"


@dataclasses.dataclass(frozen=True, eq=False)
class CoordinateArrayStage:
    """Absolute coordinates from ``array`` (numpy or dask, ``(ndim_in, *output_shape)``,
    float64); the output is chunked by ``output_chunks``. Always the first stage."""

    array: object
    output_chunks: tuple[tuple[int, ...], ...]
    key: str

    @property
    def ndim_in(self) -> int:
        return int(self.array.shape[0])

    @property
    def token(self) -> tuple:
        return ("coordinates", self.key, self.output_chunks)

    def describe(self) -> str:
        return f"coordinates{tuple(self.array.shape)}"


@dataclasses.dataclass(frozen=True, eq=False)
class CallableStage:
    """A Python callable ``func(points (ndim, N)) -> (ndim, N)`` (``vectorized``), or
    ``func(point tuple) -> point tuple``; ``key`` is its deterministic token."""

    func: object
    ndim: int
    vectorized: bool
    key: str
    text: str
    bounded: bool = False

    @property
    def ndim_in(self) -> int:
        return self.ndim

    @property
    def token(self) -> tuple:
        return ("callable", self.key)

    def describe(self) -> str:
        return self.text if self.bounded else f"{self.text} [footprint: whole input]"


Stage = AffineStage | FieldStage | ExprStage | NewtonStage | CoordinateArrayStage | CallableStage


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Shape, chunks and dtype of an image."""

    shape: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclasses.dataclass(frozen=True, eq=False)
class PhysicalPass:
    """One resampling pass, in numbers: everything the graph builder and an executor need.

    ``batch_axes`` are axes the pass works slice by slice along (the map is the identity
    there; no prefilter, pre-padding or interpolation along them), as scipy's ``rotate``
    does with the axes outside its plane; ``plane_stages`` are the stages restricted to the
    other axes.
    """

    input: Geometry
    output: Geometry
    stages: tuple
    options: ResampleOptions
    coefficient_chunks: tuple[tuple[int, ...], ...]
    footprints: dict[tuple[int, ...], ChunkFootprint]
    batch_axes: tuple[int, ...] = ()
    plane_stages: tuple = ()
    domain_risk: tuple = ()  # output blocks where an expression may leave its domain
    #: per chunked field stage ``(stage index, FieldWindows)``: the coefficient box each
    #: output chunk reads (rows in the order of ``footprints``)
    field_windows: tuple = ()

    @property
    def pads(self) -> tuple[int, ...]:
        """scipy's pre-padding per axis (none along batch axes)."""
        return axis_pads(self.options.pad, self.input.ndim, self.batch_axes)

    @property
    def needs_prefilter(self) -> bool:
        return self.options.needs_coefficients

    @property
    def ntasks(self) -> int:
        return len(self.footprints)

    @property
    def affine(self) -> AffineStage | None:
        """The pass's single affine stage, when the whole map is one."""
        if len(self.stages) == 1 and isinstance(self.stages[0], AffineStage):
            return self.stages[0]
        return None

    @property
    def token(self) -> tuple:
        """Everything that changes the result, for dask keys."""
        return (
            tuple(s.token for s in self.stages),
            self.options,
            self.input.shape,
            self.output.shape,
            self.output.chunks,
            str(self.output.dtype),
            self.batch_axes,
        )

    def describe_map(self) -> str:
        """The map from the outermost stage (applied last) to the first."""
        parts = [s.describe() for s in reversed(self.stages)]
        if isinstance(self.stages[0], AffineStage) and self.stages[0].is_identity:
            parts[-1] = "grid"
        return " @ ".join(parts)
