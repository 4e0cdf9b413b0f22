"""OME-NGFF ``coordinateTransformations``: read them as transfuse transforms, write them back.

NGFF transformations point **forward**: from the ``input`` coordinate system (for an image, its
array indices) to the ``output`` one (e.g. physical space). transfuse transforms **pull**: from
output coordinates to input coordinates. :func:`from_ngff` therefore returns the *inverse* of the
NGFF forward map, which is exactly what resamples the input array onto the index grid of the
output coordinate system (sample ``k`` of the result lies at output coordinate ``k``):
an NGFF ``scale`` ``s`` reads as ``Scale(1/s)``, a ``translation`` ``t`` as ``Translate(-t)``.
:func:`to_ngff` does the converse. Coordinates keep the axis order of the coordinate systems
(NGFF parameters are indexed like array axes, so no axis reversal happens here).

Supported: the 0.4/0.5 lists (``identity``, ``scale``, ``translation`` applied in order) and the
0.6 types ``identity``, ``scale``, ``translation``, ``mapAxis``, ``affine``, ``rotation``,
``sequence``, ``inverseOf``, ``bijection``, ``byDimension`` (of matrix transforms), and
``coordinates`` / ``displacements`` fields in the pull direction (inside ``inverseOf`` or as a
bijection's ``inverse``) as ``CoordinateMap`` / ``DisplacementField`` nodes when transfuse has
them. See ``docs/formats.md``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import transforms as _transforms
from ..transforms import (
    Affine,
    Compose,
    Grid,
    Identity,
    Permute,
    Scale,
    Transform,
    Translate,
)
from .errors import FormatError
from .recipe_limits import MAX_DEPTH, MAX_NDIM
from .safe_files import quote

__all__ = ["FormatError", "from_ngff", "grid_from_ngff", "grid_to_ngff", "ngff_maps", "to_ngff"]

_VERSIONS_04 = ("0.4", "0.5")
_FIELD_NODES = {"displacements": "DisplacementField", "coordinates": "CoordinateMap"}


# -- reading -----------------------------------------------------------------------------------
class _Context:
    """What a conversion needs besides the transformation itself."""

    def __init__(self, coordinate_systems, arrays, vector_axis):
        self.systems = _systems(coordinate_systems)
        self.arrays = arrays
        self.vector_axis = vector_axis

    def axes(self, ref, where, role):
        """Axis names of the coordinate system ``ref`` names, or None when unknown."""
        name = ref.get("name") if isinstance(ref, dict) else ref
        if isinstance(name, str) and name in self.systems:
            return self.systems[name]
        return None

    def array(self, node, where):
        return _plain_array(self.raw(node, where), where, node["path"])

    def raw(self, node, where):
        """What ``arrays`` gives for the node's ``path``: an array, or ``(array, metadata)``."""
        path = node["path"]
        if self.arrays is None:
            raise FormatError(
                f"{where}: parameters are stored in the array at path {quote(path)}; pass arrays= "
                "(a mapping or a callable from path to array) to read them"
            )
        try:
            value = self.arrays(path) if callable(self.arrays) else self.arrays[path]
        except (KeyError, LookupError) as exc:
            raise FormatError(f"{where}: no array at path {quote(path)}") from exc
        return value


def _plain_array(value, where, path):
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        value = value[0]
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: the array at {quote(path)} is not an array") from exc


def _systems(coordinate_systems) -> dict:
    if coordinate_systems is None:
        return {}
    if isinstance(coordinate_systems, dict):
        items = coordinate_systems.items()
    elif not isinstance(coordinate_systems, list | tuple):
        raise FormatError(
            f"coordinate_systems={quote(coordinate_systems)} must be a list of objects with "
            "'name' and 'axes'"
        )
    else:
        items = []
        for i, cs in enumerate(coordinate_systems):
            if not isinstance(cs, dict) or "name" not in cs or "axes" not in cs:
                raise FormatError(f"coordinate_systems[{i}] needs 'name' and 'axes'")
            items.append((cs["name"], cs["axes"]))
    out = {}
    for name, axes in items:
        if not isinstance(name, str) or not isinstance(axes, list | tuple) or len(axes) > MAX_NDIM:
            raise FormatError(
                f"coordinate system {quote(name)}: needs a string name and a list of at most "
                f"{MAX_NDIM} axes"
            )
        names = tuple(a.get("name") if isinstance(a, dict) else a for a in axes)
        if not all(isinstance(a, str) for a in names):
            raise FormatError(f"coordinate system {quote(name)}: axes must have string names")
        out[name] = names
    return out


def _is_number(v) -> bool:
    """A JSON number (or a numpy one): never a bool, never a string (not even "1")."""
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _numbers(value, where, field, ndim=1, limit=MAX_NDIM + 1):
    """``value`` as a float array of ``ndim`` dimensions, each of at most ``limit`` entries:
    JSON numbers only (no strings such as ``"1"``, no booleans), finite, not ragged."""
    shape = "a list of numbers" if ndim == 1 else "a list of rows of numbers of equal length"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise FormatError(f"{where}: {field} must hold numbers, got dtype {value.dtype}")
    else:
        rows = value if ndim == 2 else [value]
        if not isinstance(value, list | tuple) or not all(
            isinstance(r, list | tuple) and all(_is_number(v) for v in r) for r in rows
        ):
            raise FormatError(f"{where}: {field}={quote(value)} must be {shape}")
        if ndim == 2 and len({len(r) for r in rows}) > 1:
            raise FormatError(f"{where}: {field} must be {shape}; its rows differ in length")
    try:
        with np.errstate(over="ignore"):
            arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise FormatError(f"{where}: {field}={quote(value)} is not an array of numbers") from None
    if arr.ndim != ndim or arr.size == 0:
        raise FormatError(f"{where}: {field} must be {shape}, got shape {arr.shape}")
    if max(arr.shape) > limit:
        raise FormatError(
            f"{where}: {field} has shape {arr.shape}; at most {limit} entries per axis "
            f"(transforms of up to {MAX_NDIM} dimensions)"
        )
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"{where}: {field}={quote(value)} holds a non-finite number")
    return arr


def _param(node, key, where, ctx, ndim=1):
    """An inline parameter, or the array at ``path`` (which wins, as the spec says)."""
    if "path" in node and (ctx.arrays is not None or key not in node):
        if not isinstance(node["path"], str):
            raise FormatError(f"{where}: path must be a string, got {quote(node['path'])}")
        return _numbers(ctx.array(node, where), where, f"array at {quote(node['path'])}", ndim)
    if key not in node:
        raise FormatError(f"{where}: a {node['type']} needs the field {key!r} (or 'path')")
    return _numbers(node[key], where, key, ndim)


def _check_dims(node, n, where, ctx):
    for role in ("input", "output"):
        axes = ctx.axes(node.get(role), where, role) if role in node else None
        if axes is not None and len(axes) != n:
            raise FormatError(
                f"{where}: {node['type']} is {n}-D but its {role} coordinate system "
                f"{quote(node[role])} has {len(axes)} axes"
            )


def _map_axis(node, where, ctx) -> np.ndarray:
    """``mapAxis`` as integers: output axis ``i`` takes input axis ``m[i]``."""
    value = node.get("mapAxis")
    if isinstance(value, dict):  # older draft: {output axis name: input axis name}
        ins = ctx.axes(node.get("input"), where, "input")
        outs = ctx.axes(node.get("output"), where, "output")
        if ins is None or outs is None:
            raise FormatError(
                f"{where}: mapAxis by axis names needs the input and output coordinate systems "
                "(pass coordinate_systems=)"
            )
        try:
            return np.array([ins.index(value[name]) for name in outs])
        except (KeyError, ValueError) as exc:
            raise FormatError(f"{where}: mapAxis={quote(value)} does not match the axes") from exc
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        raise FormatError(f"{where}: mapAxis={quote(value)} must be a list of integers")
    if not value:
        raise FormatError(f"{where}: mapAxis must not be empty")
    if any(not 0 <= v < MAX_NDIM for v in value) or len(value) > MAX_NDIM:
        raise FormatError(
            f"{where}: mapAxis={quote(value)} must hold at most {MAX_NDIM} axis indices "
            f"from 0 to {MAX_NDIM - 1}"
        )
    return np.array(value, dtype=int)


def _rect(node, where, ctx, n_in=None) -> np.ndarray:
    """The forward map of a matrix-type transformation as an ``(M, N+1)`` array."""
    kind = node["type"]
    if kind == "identity":
        if n_in is None:
            raise FormatError(f"{where}: the dimension of this identity is unknown")
        return np.eye(n_in, n_in + 1)
    if kind == "scale":
        s = _param(node, "scale", where, ctx)
        return np.hstack([np.diag(s), np.zeros((len(s), 1))])
    if kind == "translation":
        t = _param(node, "translation", where, ctx)
        return np.hstack([np.eye(len(t)), t[:, None]])
    if kind == "mapAxis":
        m = _map_axis(node, where, ctx)
        n = n_in if n_in is not None else len(m)
        if np.any(m < 0) or np.any(m >= n):
            raise FormatError(f"{where}: mapAxis={m.tolist()} refers to an axis outside 0..{n - 1}")
        out = np.zeros((len(m), n + 1))
        out[np.arange(len(m)), m] = 1.0
        return out
    if kind == "rotation":
        r = _rotation(node, where, ctx)
        return np.hstack([r, np.zeros((len(r), 1))])
    if kind == "affine":
        return _affine_rows(node, where, ctx, n_in)
    raise FormatError(f"{where}: {quote(kind)} is not a matrix transformation")


def _rotation(node, where, ctx):
    r = _param(node, "rotation", where, ctx, ndim=2)
    n = r.shape[0]
    if r.shape != (n, n):
        raise FormatError(f"{where}: rotation must be N x N, got shape {r.shape}")
    if not np.allclose(r @ r.T, np.eye(n), atol=1e-9) or np.linalg.det(r) < 0:
        raise FormatError(f"{where}: rotation={r.tolist()} is not orthonormal with determinant 1")
    return r


def _affine_rows(node, where, ctx, n_in=None):
    value = node.get("affine")
    if "path" not in node and isinstance(value, list | tuple) and all(map(_is_number, value)):
        # an early 0.5-dev draft stored the rows flat: M*(N+1) numbers
        flat = _numbers(value, where, "affine", limit=MAX_NDIM * (MAX_NDIM + 1))
        n = n_in if n_in is not None else int(round((np.sqrt(4 * len(flat) + 1) - 1) / 2))
        if n < 1 or len(flat) % (n + 1):
            raise FormatError(
                f"{where}: a flat affine of {len(flat)} numbers has no N x (N+1) form"
            )
        a = flat.reshape(-1, n + 1)
    else:
        a = _param(node, "affine", where, ctx, ndim=2)
    rows, cols = a.shape
    if rows == cols and rows > 1 and np.array_equal(a[-1], np.eye(cols)[-1]):
        a = a[:-1]  # a full homogeneous matrix: drop the [0 ... 0 1] row
    if n_in is not None and a.shape[1] != n_in + 1:
        raise FormatError(f"{where}: affine has {a.shape[1]} columns, expected {n_in + 1}")
    return a


def _square(rect, where, kind):
    m, cols = rect.shape
    if m > MAX_NDIM:
        raise FormatError(f"{where}: a {m}-D {kind}; at most {MAX_NDIM} dimensions")
    if cols != m + 1:
        raise FormatError(
            f"{where}: this {kind} maps {cols - 1}-D to {m}-D points; only invertible maps "
            "between spaces of equal dimension can become a transfuse transform"
        )
    out = np.eye(m + 1)
    out[:m] = rect
    return out


def _matrix_pair(node, where, ctx):
    """(forward, pull) transforms of a matrix-type node."""
    kind = node["type"]
    if kind == "identity":
        n = _known_ndim(node, ctx)
        return Identity(n), Identity(n)
    if kind == "scale":
        s = _param(node, "scale", where, ctx)
        if np.any(s == 0):
            raise FormatError(f"{where}: scale={s.tolist()} has a zero and cannot be inverted")
        _check_dims(node, len(s), where, ctx)
        return Scale(tuple(s)), Scale(tuple(1.0 / s))
    if kind == "translation":
        t = _param(node, "translation", where, ctx)
        _check_dims(node, len(t), where, ctx)
        return Translate(tuple(t)), Translate(tuple(-t))
    if kind == "mapAxis":
        m = _map_axis(node, where, ctx)
        if sorted(m.tolist()) != list(range(len(m))):
            raise FormatError(
                f"{where}: mapAxis={m.tolist()} is not a permutation (projections cannot be "
                "inverted)"
            )
        _check_dims(node, len(m), where, ctx)
        return Permute(tuple(int(i) for i in np.argsort(m))), Permute(tuple(int(i) for i in m))
    if kind == "rotation":
        r = _rotation(node, where, ctx)
        _check_dims(node, len(r), where, ctx)
        return _from_linear(r), _from_linear(r.T)
    # affine
    fwd = _square(_affine_rows(node, where, ctx, _known_ndim(node, ctx)), where, kind)
    _check_dims(node, len(fwd) - 1, where, ctx)
    return _from_homogeneous(fwd), _from_homogeneous(_invert(fwd, where))


def _from_linear(linear):
    """``Affine`` of an ``(n, n)`` linear map, handed over as ``(n, n+1)`` rows: the one
    matrix form that cannot be read as homogeneous by mistake."""
    return Affine(np.hstack([linear, np.zeros((len(linear), 1))]))


def _from_homogeneous(matrix):
    """``Affine`` of an ``(n+1, n+1)`` homogeneous matrix (its bottom row is dropped)."""
    return Affine(np.array(matrix[:-1]))


def _invert(matrix, where):
    n = len(matrix) - 1
    if np.linalg.cond(matrix[:n, :n]) > 1e14:
        raise FormatError(f"{where}: the matrix {matrix[:n].tolist()} is singular")
    return np.linalg.inv(matrix)


def _known_ndim(node, ctx):
    for role in ("input", "output"):
        axes = ctx.axes(node.get(role), "", role)
        if axes is not None:
            return len(axes)
    return None


def _by_dimension(node, where, ctx):
    ins = ctx.axes(node.get("input"), where, "input")
    outs = ctx.axes(node.get("output"), where, "output")
    children = []
    for i, child in enumerate(_list(node, "transformations", where)):
        cw = _at(where, f".transformations[{i}]")
        if not isinstance(child, dict):
            raise FormatError(f"{cw}: must be an object")
        inner = child.get("transformation", child)
        in_axes = _first(child, inner, ("input_axes", "inputAxes"), cw)
        out_axes = _first(child, inner, ("output_axes", "outputAxes"), cw)
        children.append((cw, inner, in_axes, out_axes))
    n_out = len(outs) if outs is not None else _span(c[3] for c in children)
    n_in = len(ins) if ins is not None else n_out
    rect = np.zeros((n_out, n_in + 1))
    covered = np.zeros(n_out, dtype=int)
    for cw, inner, in_axes, out_axes in children:
        in_idx = _axis_indices(in_axes, ins, n_in, cw, "input_axes")
        out_idx = _axis_indices(out_axes, outs, n_out, cw, "output_axes")
        part = _rect(_typed(inner, cw), cw, ctx, n_in=len(in_idx))
        if part.shape != (len(out_idx), len(in_idx) + 1):
            raise FormatError(f"{cw}: parameters do not fit input_axes and output_axes")
        rect[np.ix_(out_idx, in_idx)] = part[:, :-1]
        rect[out_idx, -1] = part[:, -1]
        covered[out_idx] += 1
    if np.any(covered != 1):
        bad = np.flatnonzero(covered != 1).tolist()
        raise FormatError(f"{where}: output axes {bad} must each be set by exactly one child")
    fwd = _square(rect, where, "byDimension")
    return _from_homogeneous(fwd), _from_homogeneous(_invert(fwd, where))


def _first(child, inner, keys, where):
    for holder in (child, inner):
        for key in keys:
            if key in holder:
                return holder[key]
    raise FormatError(f"{where}: needs {keys[0]!r}")


def _span(axis_lists):
    idx = [a for axes in axis_lists if isinstance(axes, list) for a in axes if _is_int(a)]
    span = max(idx) + 1 if idx else 0
    if not 0 <= span <= MAX_NDIM:
        raise FormatError(f"byDimension: axis indices must be 0 to {MAX_NDIM - 1}")
    return span


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _axis_indices(axes, names, n, where, field):
    if not isinstance(axes, list) or not axes:
        raise FormatError(f"{where}: {field} must be a non-empty list")
    out = []
    for a in axes:
        if isinstance(a, str):
            if names is None or a not in names:
                raise FormatError(
                    f"{where}: {field}: axis {quote(a)} is not in the coordinate system"
                )
            out.append(names.index(a))
        elif isinstance(a, int) and not isinstance(a, bool) and 0 <= a < n:
            out.append(a)
        else:
            raise FormatError(f"{where}: {field}: {quote(a)} is not an axis of a {n}-D space")
    return out


_VECTOR_TYPES = ("displacement", "coordinate")
_INTERPOLATION = {"nearest": 0, "linear": 1, "cubic": 3}


def _field_metadata(meta, where, ndim):
    """``(vector_axis or None, spacing, origin)`` from a field's own OME metadata: a
    ``multiscales`` entry (``coordinateSystems`` + ``datasets``) or an object with ``axes``
    and ``coordinateTransformations``."""
    if not isinstance(meta, dict):
        raise FormatError(f"{where}: the field's metadata must be an object")
    systems = meta.get("coordinateSystems")
    axes = meta.get("axes")
    if axes is None and isinstance(systems, list) and systems:
        first = systems[0]
        axes = first.get("axes") if isinstance(first, dict) else None
    vector_axis = None
    if axes is not None:
        if not isinstance(axes, list) or len(axes) != ndim:
            raise FormatError(
                f"{where}: the field's coordinate system has {quote(axes)} axes; its array "
                f"has {ndim} dimensions"
            )
        kinds = [a.get("type") if isinstance(a, dict) else None for a in axes]
        found = [i for i, k in enumerate(kinds) if k in _VECTOR_TYPES]
        if len(found) > 1:
            raise FormatError(f"{where}: the field's axes {kinds} have several vector axes")
        vector_axis = found[0] if found else None
    cts = meta.get("coordinateTransformations")
    datasets = meta.get("datasets")
    if cts is None and isinstance(datasets, list) and datasets:
        first = datasets[0]
        cts = first.get("coordinateTransformations") if isinstance(first, dict) else None
    scale, translation = np.ones(ndim), np.zeros(ndim)
    if cts is not None:
        if isinstance(cts, dict):
            cts = cts.get("transformations", [cts]) if cts.get("type") == "sequence" else [cts]
        if not isinstance(cts, list):
            raise FormatError(f"{where}: the field's coordinateTransformations must be a list")
        if len(cts) == 1 and isinstance(cts[0], dict) and cts[0].get("type") == "sequence":
            cts = cts[0].get("transformations")  # the 0.6 dataset form: [sequence(scale, ...)]
            if not isinstance(cts, list):
                raise FormatError(f"{where}: the field's sequence needs 'transformations'")
        for i, ct in enumerate(cts):
            cw = f"{where}: the field's coordinateTransformations[{i}]"
            kind = _typed(ct, cw)["type"]
            if kind == "sequence":
                raise FormatError(f"{cw}: a nested sequence is not a field grid")
            if kind == "identity":
                continue
            if kind not in ("scale", "translation"):
                raise FormatError(
                    f"{cw}: a field's grid is a scale and a translation, got {quote(kind)}"
                )
            v = _numbers(ct.get(kind), cw, kind)
            if len(v) != ndim:
                raise FormatError(f"{cw}: {kind} has {len(v)} numbers for {ndim} axes")
            if kind == "scale":
                if np.any(v <= 0):
                    raise FormatError(f"{cw}: scale={v.tolist()} must be positive")
                scale, translation = scale * v, translation * v
            else:
                translation = translation + v
    return vector_axis, scale, translation


def _field(node, where, ctx):
    """The node of a ``coordinates`` / ``displacements`` field: a pull map from the points of
    the space the field is indexed by to the vectors it stores. The field's own grid (its
    scale and translation) places its samples in that space."""
    kind = node["type"]
    cls = getattr(_transforms, _FIELD_NODES[kind], None)
    if cls is None:
        raise FormatError(
            f"{where}: {kind} transformations need transfuse.transforms.{_FIELD_NODES[kind]}, "
            "which this version of transfuse does not provide"
        )
    if "path" not in node:
        raise FormatError(f"{where}: a {kind} transformation needs 'path'")
    if not isinstance(node["path"], str):
        raise FormatError(f"{where}: path must be a string, got {quote(node['path'])}")
    raw = ctx.raw(node, where)
    meta = raw[1] if isinstance(raw, tuple) and len(raw) == 2 else None
    field = _plain_array(raw, where, node["path"])
    if field.ndim < 2 or field.ndim > MAX_NDIM + 1:
        raise FormatError(f"{where}: the {kind} array must have N+1 dimensions, got {field.shape}")
    if field.dtype.kind not in "iuf":
        raise FormatError(f"{where}: the {kind} array must hold numbers, got {field.dtype}")
    n = field.ndim - 1
    own_axis, scale, translation = (None, np.ones(n + 1), np.zeros(n + 1))
    if meta is not None:
        own_axis, scale, translation = _field_metadata(meta, where, n + 1)
    axis = ctx.vector_axis
    if axis is None:
        axis = 0 if own_axis is None else own_axis  # the 0.6 layout: vector axis first
    elif own_axis is not None and axis % (n + 1) != own_axis:
        raise FormatError(
            f"{where}: vector_axis={ctx.vector_axis} but the field's own axes put the vector "
            f"on axis {own_axis}"
        )
    if not -(n + 1) <= axis <= n:
        raise FormatError(f"{where}: vector_axis={axis} is not an axis of a {n + 1}-D field")
    axis %= n + 1
    if field.shape[axis] != n:
        raise FormatError(
            f"{where}: the {kind} array has shape {field.shape}: vector_axis={axis} holds "
            f"{field.shape[axis]} components, but the field has {n} grid axes (pass "
            "vector_axis= for another layout)"
        )
    vectors = np.moveaxis(field, axis, 0)  # -> (M, *grid), map_coordinates layout
    spacing = np.delete(scale, axis)
    origin = np.delete(translation, axis)
    interpolation = node.get("interpolation", "linear")
    order = _INTERPOLATION.get(interpolation) if isinstance(interpolation, str) else None
    if order is None:
        raise FormatError(
            f"{where}: interpolation={quote(node.get('interpolation'))} must be one of "
            f"{sorted(_INTERPOLATION)}"
        )
    try:
        if kind == "displacements":
            return cls(vectors, spacing=tuple(spacing), origin=tuple(origin), order=order)
        if np.any(spacing != 1) or np.any(origin != 0):
            # A coordinate field on its own grid: c(p) = p + (c(p) - p), a displacement field
            # on that grid (exact at the samples, and between them for linear interpolation).
            if vectors.shape[0] != n:
                raise FormatError(f"{where}: a coordinates field on a grid must map N-D to N-D")
            at = np.indices(vectors.shape[1:], dtype=np.float64)
            at = at * spacing.reshape((-1,) + (1,) * n) + origin.reshape((-1,) + (1,) * n)
            displacement = _transforms.DisplacementField
            return displacement(
                vectors - at, spacing=tuple(spacing), origin=tuple(origin), order=order
            )
        return cls(vectors)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: the array at {quote(node['path'])}: {exc}") from exc


def _at(where: str, step: str) -> str:
    """The position ``where + step`` for messages, its middle elided beyond 160 characters."""
    out = where + step
    return out if len(out) <= 160 else out[:50] + "..." + out[-100:]


def _list(node, key, where):
    value = node.get(key)
    if not isinstance(value, list) or not value:
        raise FormatError(f"{where}: {key} must be a non-empty list of transformations")
    return value


def _typed(node, where):
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise FormatError(f"{where}: a transformation must be an object with a string 'type'")
    return node


def _compose(parts, where):
    if len(parts) == 1:
        return parts[0]
    try:
        return Compose(tuple(parts))
    except ValueError as exc:
        raise FormatError(f"{where}: {exc}") from exc


def _convert(node, where, ctx, pull: bool, depth: int = 0) -> Transform:
    """The pull transform of ``node`` (``pull=True``) or its forward map as a transform."""
    if depth > MAX_DEPTH:
        raise FormatError(f"transformations are nested deeper than {MAX_DEPTH}")
    kind = _typed(node, where)["type"]
    if kind in ("identity", "scale", "translation", "mapAxis", "rotation", "affine"):
        try:
            forward, backward = _matrix_pair(node, where, ctx)
        except FormatError:
            raise
        except (ValueError, ZeroDivisionError, OverflowError) as exc:  # a transform refusing it
            raise FormatError(f"{where}: {kind}: {exc}") from exc
        return backward if pull else forward
    if kind == "sequence":
        items = [_inherit(child, node) for child in _list(node, "transformations", where)]
        parts = [
            _convert(child, _at(where, f".transformations[{i}]"), ctx, pull, depth + 1)
            for i, child in enumerate(items)
        ]
        # forward applies items[0] first, so forward = f_last @ ... @ f_0;
        # the pull map undoes them in reverse: pull = p_0 @ p_1 @ ... @ p_last
        return _compose(parts if pull else parts[::-1], where)
    if kind == "inverseOf":
        if "transformation" not in node:
            raise FormatError(f"{where}: inverseOf needs 'transformation'")
        return _convert(
            node["transformation"], _at(where, ".transformation"), ctx, not pull, depth + 1
        )
    if kind == "bijection":
        if "forward" not in node or "inverse" not in node:
            raise FormatError(f"{where}: bijection needs 'forward' and 'inverse'")
        fwd = _convert(
            _inherit(node["forward"], node), _at(where, ".forward"), ctx, False, depth + 1
        )
        inv = _convert(
            _inherit(node["inverse"], node, swap=True),
            _at(where, ".inverse"),
            ctx,
            False,
            depth + 1,
        )
        _check_bijection(fwd, inv, where)
        return inv if pull else fwd
    if kind == "byDimension":
        try:
            forward, backward = _by_dimension(node, where, ctx)
        except FormatError:
            raise
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            raise FormatError(f"{where}: byDimension: {exc}") from exc
        return backward if pull else forward
    if kind in _FIELD_NODES:
        node_ = _field(node, where, ctx)
        if not pull:
            return node_
        # A field only has an approximate, iterative inverse: reading must stay exact, so
        # the file has to say which direction it stores.
        raise _NoExactInverse(
            f"{where}: a forward {kind} transformation has no exact inverse; store it "
            "inside 'inverseOf' or a 'bijection' to give the pull direction"
        )
    raise FormatError(f"{where}: unknown transformation type {quote(kind)}")


def _inherit(child, parent, swap=False):
    """``child`` with the parent's coordinate systems where it names none: a ``byDimension``
    (or a nested ``sequence``/``bijection``) inside a ``sequence`` addresses axes of the
    parent's systems (a bijection's ``inverse`` runs from its output to its input)."""
    if not isinstance(child, dict) or child.get("type") not in (
        "byDimension",
        "sequence",
        "bijection",
        "inverseOf",
    ):
        return child
    roles = ("output", "input") if swap else ("input", "output")
    extra = {
        mine: parent[theirs]
        for mine, theirs in zip(("input", "output"), roles, strict=True)
        if mine not in child and theirs in parent
    }
    return {**child, **extra} if extra else child


def _check_bijection(fwd, inv, where):
    """A bijection's members must be inverses: exactly checked for matrices, by dimension
    for fields."""
    n_f, n_i = fwd.ndim, inv.ndim
    if n_f is not None and n_i is not None and n_f != n_i:
        raise FormatError(f"{where}: bijection.forward is {n_f}-D but its inverse is {n_i}-D")
    if fwd.is_affine and inv.is_affine and not (fwd.free_symbols or inv.free_symbols):
        n = n_f if n_f is not None else n_i
        if n is None:
            return
        product = np.asarray((fwd @ inv).matrix(n), dtype=np.float64)
        scale = max(1.0, float(np.abs(np.asarray(fwd.matrix(n), dtype=np.float64)).max()))
        if not np.allclose(product, np.eye(n + 1), atol=1e-9 * scale):
            raise FormatError(
                f"{where}: bijection.forward and bijection.inverse are not inverses of each other"
            )


class _NoExactInverse(FormatError):
    """A well-formed transformation whose asked-for direction has no exact form."""


def ngff_maps(
    transformation, coordinate_systems=None, *, arrays=None, vector_axis: int | None = None
) -> tuple[Transform | None, Transform | None]:
    """Both directions of one NGFF transformation, where they are exact.

    Returns ``(forward, pull)``: ``forward`` maps ``input`` points to ``output`` points,
    ``pull`` maps ``output`` points to ``input`` points (what :func:`from_ngff` returns).
    Matrix types, sequences of them, ``bijection`` and ``inverseOf`` give both; a bare
    field gives only its stored direction (the other is ``None``).

    >>> fwd, pull = ngff_maps({"type": "scale", "scale": [2.0, 4.0]})
    >>> fwd([[1.0, 1.0]]), pull([[2.0, 4.0]])
    (array([[2., 4.]]), array([[1., 1.]]))
    """
    ctx = _Context(coordinate_systems, arrays, vector_axis)
    out = []
    for pull in (False, True):
        try:
            out.append(_convert(transformation, "transformation", ctx, pull=pull))
        except _NoExactInverse:
            out.append(None)
    return out[0], out[1]


def from_ngff(
    transformations, coordinate_systems=None, *, arrays=None, vector_axis: int | None = None
) -> Transform:
    """The pull transform that an NGFF ``coordinateTransformations`` entry describes.

    Parameters
    ----------
    transformations : dict or list of dict
        One transformation object (0.6), or a list of them applied in order (the
        ``coordinateTransformations`` list of a 0.4/0.5 ``datasets`` entry, e.g. a ``scale``
        then a ``translation``).
    coordinate_systems : list of dict or dict, optional
        The ``coordinateSystems`` (objects with ``name`` and ``axes``) that ``input`` and
        ``output`` refer to; needed by ``mapAxis`` written with axis names and by
        ``byDimension``, and used to check dimensions.
    arrays : mapping or callable, optional
        Resolves a ``path`` to an array, for parameters stored in zarr arrays and for
        ``coordinates`` / ``displacements`` fields. A field may come as ``(array, metadata)``
        where ``metadata`` is the field's own OME ``multiscales`` entry (its
        ``coordinateSystems`` and ``datasets``) or ``{"axes": [...],
        "coordinateTransformations": [...]}``: the axis of type ``displacement`` /
        ``coordinate`` is the vector axis, and the scale and translation place the field's
        samples in the space it is indexed by.
    vector_axis : int, optional
        The axis of a field array that holds the vector components. Default: the field's
        own axis types when given, else ``0`` (the 0.6 layout, vector axis first, as the
        specification's ``c, y, x`` example). A shape that contradicts it is a
        :class:`FormatError` naming ``vector_axis``.

    Returns
    -------
    Transform
        The map from output coordinates to input coordinates (the inverse of the NGFF forward
        map). Resampling the input array with it gives the image on the output coordinate
        system's unit grid; compose it with ``Translate(origin) @ Scale(spacing)`` (on the
        right) for another output grid. Matrix types come back as ``Scale``, ``Translate``,
        ``Permute``, ``Identity`` or ``Affine``; a list or a ``sequence`` as a ``Compose``.

    Raises
    ------
    FormatError
        (a ``ValueError``) for malformed metadata, non-invertible forward maps, or types this
        version cannot read; the message gives the position, e.g.
        ``transformations[1].scale``.

    Examples
    --------
    A 0.4 dataset with 0.5 µm pixels offset by 10 µm on the last axis:

    >>> from transfuse.io.ngff import from_ngff
    >>> T = from_ngff([{"type": "scale", "scale": [0.5, 0.5]},
    ...                {"type": "translation", "translation": [0.0, 10.0]}])
    >>> T.matrix()
    array([[  2.,   0.,   0.],
           [  0.,   2., -20.],
           [  0.,   0.,   1.]])
    >>> T([[0.0, 10.0]])  # physical (0, 10) is array index (0, 0)
    array([[0., 0.]])
    """
    ctx = _Context(coordinate_systems, arrays, vector_axis)
    if isinstance(transformations, dict):
        return _convert(transformations, "transformation", ctx, pull=True)
    if not isinstance(transformations, list | tuple) or not transformations:
        raise FormatError("transformations must be a transformation object or a non-empty list")
    parts = [
        _convert(node, f"transformations[{i}]", ctx, pull=True)
        for i, node in enumerate(transformations)
    ]
    return _compose(parts, "transformations")


# -- writing -----------------------------------------------------------------------------------
def _node_of(pull: np.ndarray) -> dict:
    """The NGFF forward node of one affine pull matrix, as plain as it can be."""
    n = len(pull) - 1
    lin, off = pull[:n, :n], pull[:n, n]
    no_offset = not np.any(off)
    if np.array_equal(lin, np.eye(n)):
        if no_offset:
            return {"type": "identity"}
        return {"type": "translation", "translation": _floats(-off)}
    if no_offset and np.array_equal(lin, np.diag(np.diag(lin))) and np.all(np.diag(lin)):
        return {"type": "scale", "scale": _floats(1.0 / np.diag(lin))}
    if no_offset and np.all((lin == 0) | (lin == 1)) and np.all(lin.sum(0) == 1):
        if np.all(lin.sum(1) == 1):
            return {"type": "mapAxis", "mapAxis": [int(i) for i in np.argmax(lin, axis=0)]}
    if no_offset and np.allclose(lin @ lin.T, np.eye(n), atol=1e-12) and np.linalg.det(lin) > 0:
        return {"type": "rotation", "rotation": [_floats(r) for r in lin.T]}
    fwd = _invert(pull, "to_ngff")
    return {"type": "affine", "affine": [_floats(r) for r in fwd[:n]]}


def _floats(values):
    return [float(v) + 0.0 for v in values]


def to_ngff(
    transform: Transform,
    *,
    version: str = "0.6",
    form: str = "sequence",
    input=None,
    output=None,
    ndim: int | None = None,
):
    """NGFF ``coordinateTransformations`` metadata for an affine pull transform.

    The NGFF forward map is the inverse of ``transform``: written this way, :func:`from_ngff`
    reads back the same transform (up to rounding of ``1/x``).

    Parameters
    ----------
    transform : Transform
        Affine, with numeric parameters; maps output coordinates to input coordinates.
    version : {"0.6", "0.5", "0.4"}
        ``"0.4"``/``"0.5"`` give the list form (a ``scale``, then a ``translation`` when it is
        not zero); the forward map must then be a per-axis scale plus a shift.
        ``"0.6"`` gives one transformation object.
    form : {"sequence", "affine"}
        For 0.6: one node per part of the composition (each as plain a type as fits:
        identity, translation, scale, mapAxis, rotation, else affine), wrapped in a
        ``sequence`` when there are several; or one fused ``affine`` (``M x (N+1)`` rows).
    input, output : str or dict, optional
        Stored on the outer 0.6 object in the specification's object form: a name ``"a"``
        becomes ``{"name": "a"}``; an object ``{"name": ...}`` or ``{"path": ...}`` (an
        image's array) is kept.
    ndim : int, optional
        Needed only when the transform does not fix its dimension.

    Returns
    -------
    list of dict (0.4/0.5) or dict (0.6)

    Examples
    --------
    >>> from transfuse import Scale, Translate
    >>> from transfuse.io.ngff import to_ngff
    >>> T = Scale((2.0, 2.0)) @ Translate((0.0, -10.0))
    >>> to_ngff(T, version="0.4")
    [{'type': 'scale', 'scale': [0.5, 0.5]}, {'type': 'translation', 'translation': [0.0, 10.0]}]
    >>> to_ngff(T, input="array", output="physical")["transformations"]
    [{'type': 'scale', 'scale': [0.5, 0.5]}, {'type': 'translation', 'translation': [0.0, 10.0]}]
    """
    if not isinstance(transform, Transform) or not transform.is_affine:
        raise ValueError(f"to_ngff: {transform!r} is not an affine transform")
    if transform.free_symbols:
        names = sorted(map(str, transform.free_symbols))
        raise ValueError(f"to_ngff: free symbols {names} must be bound first")
    n = transform.resolve_ndim(ndim)
    if version in _VERSIONS_04:
        return _to_04(np.asarray(transform.matrix(n), dtype=np.float64), version)
    if version != "0.6":
        raise ValueError(f"to_ngff: version={version!r} must be '0.4', '0.5' or '0.6'")
    if form == "affine":
        fwd = _invert(np.asarray(transform.matrix(n), dtype=np.float64), "to_ngff")
        out = {"type": "affine", "affine": [_floats(r) for r in fwd[:n]]}
    elif form == "sequence":
        nodes = [_node_of(np.asarray(p.matrix(n), dtype=np.float64)) for p in transform.parts]
        if len(nodes) == 1:
            out = nodes[0]
        else:
            out = {"type": "sequence", "transformations": nodes}
    else:
        raise ValueError(f"to_ngff: form={form!r} must be 'sequence' or 'affine'")
    if input is not None:
        out["input"] = _reference(input, "input")
    if output is not None:
        out["output"] = _reference(output, "output")
    return out


def _reference(value, name):
    """A 0.6 ``input``/``output``: the object form ``{"name": ...}`` (or ``{"path": ...}``
    for an array), from a coordinate-system name or such an object."""
    if isinstance(value, str) and value:
        return {"name": value}
    if (
        isinstance(value, dict)
        and value
        and set(value) <= {"name", "path"}
        and all(isinstance(v, str) for v in value.values())
    ):
        return dict(value)
    raise ValueError(
        f"to_ngff: {name}={value!r} must be a coordinate-system name or an object with "
        "'name' and/or 'path' strings"
    )


def _to_04(pull, version):
    n = len(pull) - 1
    lin, off = pull[:n, :n], pull[:n, n]
    d = np.diag(lin)
    if not np.array_equal(lin, np.diag(d)) or not np.all(d):
        raise ValueError(
            f"to_ngff: version {version} can only store a per-axis scale and a translation; "
            f"this transform's linear part is {lin.tolist()} (use version='0.6')"
        )
    out = [{"type": "scale", "scale": _floats(1.0 / d)}]
    if np.any(off):
        out.append({"type": "translation", "translation": _floats(-off / d)})
    return out


# -- grids -------------------------------------------------------------------------------------
def grid_from_ngff(shape, transformations, axes=None, coordinate_systems=None) -> Grid:
    """The :class:`~transfuse.Grid` of an array whose NGFF transformations map its indices
    into a coordinate system (a dataset's ``coordinateTransformations``).

    Parameters
    ----------
    shape : tuple of int
        The array's shape.
    transformations : list of dict or dict
        The 0.4/0.5 list (scale, then translation) or one 0.6 object (a ``scale``, a
        ``sequence`` of them, an ``affine``: any affine forward map).
    axes : list of dict, optional
        The system's axes (``name``, ``unit``); default names ``z, y, x`` / ``dim_i``.
    coordinate_systems : list of dict, optional
        As for :func:`from_ngff`.

    Examples
    --------
    >>> g = grid_from_ngff((10, 20), [{"type": "scale", "scale": [0.5, 2.0]},
    ...                               {"type": "translation", "translation": [1.0, 3.0]}])
    >>> g.spacing, g.origin
    ((0.5, 2.0), (1.0, 3.0))
    """
    n = len(shape)
    node = transformations
    if isinstance(node, list | tuple):
        if not node:
            raise FormatError("transformations must not be empty")
        node = node[0] if len(node) == 1 else {"type": "sequence", "transformations": list(node)}
    forward, _ = ngff_maps(node, coordinate_systems)
    if forward is None or not forward.is_affine:
        raise FormatError("the transformations of a grid must be affine")
    try:
        m = np.asarray(forward.matrix(n), dtype=np.float64)
    except ValueError as exc:
        raise FormatError(f"transformations: {exc}") from None
    names = units = None
    if axes is not None:
        if (
            not isinstance(axes, list)
            or len(axes) != n
            or not all(isinstance(a, dict) for a in axes)
        ):
            raise FormatError(f"axes must be a list of {n} axis objects")
        names = tuple(a.get("name") for a in axes)
        units = tuple(a.get("unit") for a in axes)
        if not all(isinstance(v, str) and v for v in names) or len(set(names)) != n:
            raise FormatError(f"every axis needs a distinct string 'name', got {quote(names)}")
        if not all(u is None or isinstance(u, str) for u in units):
            raise FormatError("axis units must be strings")
    linear = m[:n, :n]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise FormatError(f"the index->physical matrix {m.tolist()} is singular")
    try:
        return Grid(shape, tuple(spacing), tuple(m[:n, n]), linear / spacing, names, units)
    except ValueError as exc:
        raise FormatError(f"the grid: {exc}") from None


#: Unit abbreviations written as the UDUNITS-2 names the NGFF specification lists.
UNIT_NAMES = {
    "nm": "nanometer",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "s": "second",
    "ms": "millisecond",
    "us": "microsecond",
    "µs": "microsecond",
}


def ngff_unit(unit):
    """The NGFF name of a unit: ``"mm"`` -> ``"millimeter"``; other names unchanged.

    >>> ngff_unit("um"), ngff_unit("micrometer"), ngff_unit(None)
    ('micrometer', 'micrometer', None)
    """
    return UNIT_NAMES.get(unit, unit) if isinstance(unit, str) else unit


def _axis_type(name: str) -> str:
    return {"c": "channel", "t": "time"}.get(name, "space")


def grid_to_ngff(grid: Grid, version: str = "0.6", *, input=None, output=None) -> dict:
    """A grid as NGFF metadata: ``{"axes": [...], "coordinateTransformations": ...}``.

    0.4/0.5: the list ``[scale, translation]``; a rotated grid (``direction`` not the
    identity) has no such form (ValueError). 0.6: one object, a ``sequence`` of ``scale``
    and ``translation`` (an ``affine`` for a rotated grid), with ``input``/``output`` in
    the object form when given. Axes named ``c``/``t`` are typed channel/time, others space.

    >>> grid_to_ngff(Grid((4, 4), spacing=(2.0, 1.0)), "0.4")["coordinateTransformations"]
    [{'type': 'scale', 'scale': [2.0, 1.0]}, {'type': 'translation', 'translation': [0.0, 0.0]}]
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"grid={grid!r} must be a transfuse.Grid")
    axes = []
    for name, unit in zip(grid.axes, grid.units, strict=True):
        axis = {"name": name, "type": _axis_type(name)}
        if unit is not None:
            axis["unit"] = ngff_unit(unit)
        axes.append(axis)
    scale = {"type": "scale", "scale": _floats(grid.spacing)}
    translation = {"type": "translation", "translation": _floats(grid.origin)}
    if version in _VERSIONS_04:
        if not grid.is_axis_aligned():
            raise ValueError(
                f"grid_to_ngff: version {version} stores only a per-axis scale and translation; "
                f"this grid has direction={grid.direction} (use version='0.6')"
            )
        return {"axes": axes, "coordinateTransformations": [scale, translation]}
    if version != "0.6":
        raise ValueError(f"grid_to_ngff: version={version!r} must be '0.4', '0.5' or '0.6'")
    if grid.is_axis_aligned():
        ct = {"type": "sequence", "transformations": [scale, translation]}
    else:
        m = grid.physical_matrix()[: grid.ndim]
        ct = {"type": "affine", "affine": [_floats(r) for r in m]}
    if input is not None:
        ct["input"] = _reference(input, "input")
    if output is not None:
        ct["output"] = _reference(output, "output")
    return {"axes": axes, "coordinateTransformations": ct}
