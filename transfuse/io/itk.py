r"""ITK text transform files (``.tfm`` / ``.txt``, ``#Insight Transform File V1.0``).

An ITK transform maps *fixed* (output) physical points to *moving* (input) physical points:
the same pull direction as a transfuse :class:`~transfuse.Transform`. Two things differ:

* ITK works in **physical** space. ``read_itk(path, space="physical")`` gives the transform
  as ITK means it (a pull map on physical points, for
  ``LazyImage.resample(T, onto=grid, space="physical")``); the default ``space="index"``
  expresses it between two :class:`~transfuse.Grid`\ s (``grid`` = output, ITK's fixed image;
  ``input_grid`` = input, the moving image): ``input_grid.to_index() @ T @ grid.to_physical()``.
  The older loose arguments (``spacing``, ``origin``, ``direction`` and ``input_*``, in ITK's
  ``(x, y, z)`` order) still work, deprecated.
* ITK's ``(x, y, z)`` are numpy's last, middle and first axes: every vector and matrix is
  reversed here, and only here.

Supported transform types (``double`` or ``float``): ``IdentityTransform``,
``TranslationTransform``, ``ScaleTransform``, ``AffineTransform``,
``MatrixOffsetTransformBase``, ``Euler2DTransform`` (also ``Rigid2DTransform``),
``Similarity2DTransform``, ``Euler3DTransform``, ``VersorRigid3DTransform``,
``Similarity3DTransform`` and ``CompositeTransform`` (first in the file, its parts after it).
See ``docs/formats.md`` for every parameter layout.
"""

from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np

from ..transforms import Affine, Transform
from ..transforms.grid import Grid
from .errors import FormatError
from .recipe_limits import MAX_NDIM, MAX_NODES, MAX_TEXT_BYTES
from .safe_files import SideFileError, quote, read_limited, side_file

__all__ = [
    "FormatError",
    "MAX_ITK_BYTES",
    "MAX_ITK_TOTAL_BYTES",
    "MAX_ITK_NDIM",
    "MAX_ITK_TRANSFORMS",
    "read_itk",
    "write_itk",
    "index_to_physical",
]

#: Largest transform file (the main file, and each component file), in bytes.
MAX_ITK_BYTES = MAX_TEXT_BYTES
#: Most bytes read for one transform: the main file and all its component files.
MAX_ITK_TOTAL_BYTES = 4 * MAX_TEXT_BYTES
#: Largest dimension of a transform (``AffineTransform_double_N_N``).
MAX_ITK_NDIM = MAX_NDIM
#: Most ``Transform:`` entries in one transform, component files included.
MAX_ITK_TRANSFORMS = MAX_NODES

HEADER = "#Insight Transform File V1.0"
_TYPE_NAME = re.compile(r"^([A-Za-z0-9]+)_(double|float)_([0-9]+)_([0-9]+)$", re.ASCII)
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$", re.ASCII)


# -- grids -------------------------------------------------------------------------------------
def index_to_physical(ndim: int, spacing=None, origin=None, direction=None) -> np.ndarray:
    """The homogeneous matrix taking a numpy-order index to an ITK ``(x, y, z)`` point.

    Parameters
    ----------
    ndim : int
        Number of spatial dimensions.
    spacing, origin : sequence of float, optional
        In ITK's ``(x, y, z)`` order; 1 and 0 when omitted. Spacing must be positive.
    direction : array_like, optional
        ``(ndim, ndim)`` matrix or its ``ndim * ndim`` entries row by row (as SimpleITK's
        ``GetDirection()`` returns them); identity when omitted. Must be invertible.

    Returns
    -------
    numpy.ndarray
        ``(ndim + 1, ndim + 1)``: ``[x, y, z, 1] = G @ [k, j, i, 1]`` for index ``(k, j, i)``.

    Examples
    --------
    >>> from transfuse.io.itk import index_to_physical
    >>> index_to_physical(2, spacing=(0.5, 2.0), origin=(10.0, 20.0))
    array([[ 0. ,  0.5, 10. ],
           [ 2. ,  0. , 20. ],
           [ 0. ,  0. ,  1. ]])
    """
    spacing = _vector(spacing, ndim, "spacing", 1.0)
    if np.any(spacing <= 0):
        raise ValueError(f"spacing={tuple(spacing)} must be positive")
    origin = _vector(origin, ndim, "origin", 0.0)
    if direction is None:
        d = np.eye(ndim)
    else:
        d = np.asarray(direction, dtype=np.float64)
        if d.shape == (ndim * ndim,):
            d = d.reshape(ndim, ndim)
        if d.shape != (ndim, ndim):
            raise ValueError(
                f"direction must be {ndim}x{ndim} or hold {ndim * ndim} numbers, "
                f"got shape {np.shape(direction)}"
            )
        if not np.all(np.isfinite(d)) or abs(np.linalg.det(d)) < 1e-12:
            raise ValueError(f"direction={d.tolist()} must be finite and invertible")
    g = np.eye(ndim + 1)
    # column j of the linear part belongs to numpy axis j, i.e. ITK axis ndim-1-j
    g[:ndim, :ndim] = (d * spacing)[:, ::-1]
    g[:ndim, ndim] = origin
    return g


def _vector(value, ndim, name, default):
    if value is None:
        return np.full(ndim, default)
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (ndim,):
        raise ValueError(f"{name}={value!r} must hold {ndim} numbers (one per axis, x first)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={value!r} must be finite")
    return arr


# -- what each ITK type means, as a physical homogeneous matrix --------------------------------
def _centered(linear, translation, center):
    """ITK's MatrixOffsetTransformBase: ``x' = A (x - c) + c + t``."""
    n = linear.shape[0]
    m = np.eye(n + 1)
    m[:n, :n] = linear
    m[:n, n] = translation + center - linear @ center
    return m


def _rot2(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _euler3(ax, ay, az, zyx):
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    # ITK's default order applies Y, then X, then Z; ComputeZYX applies X, then Y, then Z
    return rz @ ry @ rx if zyx else rz @ rx @ ry


def _versor_matrix(v, where):
    x, y, z = v
    norm2 = x * x + y * y + z * z
    if norm2 > 1.0 + 1e-12:
        raise FormatError(f"{where}: versor {tuple(v)} has norm {math.sqrt(norm2):.6g} > 1")
    w = math.sqrt(max(0.0, 1.0 - norm2))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _identity(p, f, n, where):
    return np.eye(n + 1)


def _translation(p, f, n, where):
    return _centered(np.eye(n), p, np.zeros(n))


def _scale(p, f, n, where):
    return _centered(np.diag(p), np.zeros(n), f if len(f) else np.zeros(n))


def _affine(p, f, n, where):
    return _centered(p[: n * n].reshape(n, n), p[n * n :], f)


def _euler2(p, f, n, where):
    return _centered(_rot2(p[0]), p[1:], f)


def _similarity2(p, f, n, where):
    return _centered(p[0] * _rot2(p[1]), p[2:], f)


def _euler3d(p, f, n, where):
    return _centered(_euler3(*p[:3], zyx=len(f) == 4 and f[3] != 0), p[3:], f[:3])


def _versor_rigid(p, f, n, where):
    return _centered(_versor_matrix(p[:3], where), p[3:], f)


def _similarity3(p, f, n, where):
    return _centered(p[6] * _versor_matrix(p[:3], where), p[3:6], f)


# name: (dimensions or None for any, number of parameters, allowed numbers of fixed parameters)
_TYPES = {
    "IdentityTransform": (None, lambda n: 0, lambda n: {0}, _identity),
    "TranslationTransform": (None, lambda n: n, lambda n: {0}, _translation),
    "ScaleTransform": (None, lambda n: n, lambda n: {0, n}, _scale),
    "AffineTransform": (None, lambda n: n * n + n, lambda n: {n}, _affine),
    "MatrixOffsetTransformBase": (None, lambda n: n * n + n, lambda n: {n}, _affine),
    "Euler2DTransform": ({2}, lambda n: 3, lambda n: {2}, _euler2),
    "Rigid2DTransform": ({2}, lambda n: 3, lambda n: {2}, _euler2),
    "Similarity2DTransform": ({2}, lambda n: 4, lambda n: {2}, _similarity2),
    "Euler3DTransform": ({3}, lambda n: 6, lambda n: {3, 4}, _euler3d),
    "VersorRigid3DTransform": ({3}, lambda n: 6, lambda n: {3}, _versor_rigid),
    "Similarity3DTransform": ({3}, lambda n: 7, lambda n: {3}, _similarity3),
}


# -- parsing -----------------------------------------------------------------------------------
class _Record:
    """One ``Transform:`` entry with its parameter lines."""

    def __init__(self, kind, ndim, line, where):
        self.kind, self.ndim, self.line, self.where = kind, ndim, line, where
        self.params = self.fixed = None
        self.params_line = self.fixed_line = None


class _Source:
    """One file being parsed: its name for messages, its directory, and whether its text
    may be quoted in messages (only the main file's, never a component's)."""

    def __init__(self, name: str, base_dir: str, depth: int, budget: dict):
        self.name, self.base_dir, self.depth, self.budget = name, base_dir, depth, budget

    def show(self, text) -> str:
        return quote(text) if self.depth == 0 else "(text of a component file not shown)"


def _numbers(value, where, field, src):
    out = []
    for token in value.split():
        if _NUMBER.match(token) is None:  # ASCII decimals only: not "1_0", not "١"
            if token.lower().lstrip("+-") in ("inf", "infinity", "nan"):
                raise FormatError(f"{where}: {field}: {src.show(token)} is not finite")
            raise FormatError(f"{where}: {field}: {src.show(token)} is not a number")
        number = float(token)
        if not math.isfinite(number):
            raise FormatError(f"{where}: {field}: {src.show(token)} is not finite")
        out.append(number)
    return np.array(out, dtype=np.float64)


def _parse_type(value, where, src):
    match = _TYPE_NAME.match(value)
    if not match:
        raise FormatError(
            f"{where}: Transform: {src.show(value)} is not of the form Name_double_N_N (e.g. "
            "AffineTransform_double_3_3)"
        )
    kind, _, n_in, n_out = match.groups()
    if len(n_in) > 3 or len(n_out) > 3 or not 1 <= int(n_in) <= MAX_ITK_NDIM:
        raise FormatError(
            f"{where}: Transform: {src.show(value)}: dimensions must be 1 to {MAX_ITK_NDIM}"
        )
    if n_in != n_out:
        raise FormatError(
            f"{where}: Transform: {src.show(value)} maps {n_in}-D to {n_out}-D points"
        )
    ndim = int(n_in)
    if kind != "CompositeTransform" and kind not in _TYPES:
        raise FormatError(
            f"{where}: Transform: unsupported type {src.show(kind)}; supported: "
            f"{', '.join(sorted([*_TYPES, 'CompositeTransform']))}"
        )
    dims = _TYPES[kind][0] if kind in _TYPES else None
    if dims is not None and ndim not in dims:
        raise FormatError(f"{where}: Transform: {kind} does not exist in {ndim}-D")
    return kind, ndim


def _parse(text: str, src: _Source) -> list[_Record]:
    records: list[_Record] = []
    seen_header = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{src.name}:{number}"
        if not line:
            continue
        if not seen_header:
            if not line.startswith("#Insight Transform File"):
                raise FormatError(f"{where}: expected the header {HEADER!r}, got {src.show(line)}")
            seen_header = True
            continue
        if line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise FormatError(f"{where}: expected 'Name: value', got {src.show(line)}")
        name, value = name.strip(), value.strip()
        if name == "Transform":
            src.budget["transforms"] += 1
            if src.budget["transforms"] > MAX_ITK_TRANSFORMS:
                raise FormatError(f"{where}: more than {MAX_ITK_TRANSFORMS} transforms")
            records.append(_Record(*_parse_type(value, where, src), number, where))
        elif name == "ComponentTransformFile":
            if src.depth > 0:
                raise FormatError(f"{where}: ComponentTransformFile inside a component file")
            records.extend(_read_component(value, src, where))
        elif name in ("Parameters", "FixedParameters"):
            if not records:
                raise FormatError(f"{where}: {name} before any 'Transform:' line")
            rec = records[-1]
            attr = "params" if name == "Parameters" else "fixed"
            if getattr(rec, attr) is not None:
                raise FormatError(
                    f"{where}: second {name} line for the transform of line {rec.line}"
                )
            setattr(rec, attr, _numbers(value, where, name, src))
            setattr(rec, attr + "_line", where)
        else:
            raise FormatError(f"{where}: unknown field {src.show(name)}")
    if not seen_header:
        raise FormatError(f"{src.name}: empty file (expected the header {HEADER!r})")
    if not records:
        raise FormatError(f"{src.name}: no 'Transform:' line")
    return records


def _read_text(path, name: str, budget: dict, where: str) -> str:
    """The text of one transform file, within the byte limits (regular files only)."""
    left = MAX_ITK_TOTAL_BYTES - budget["bytes"]
    try:
        data = read_limited(path, min(MAX_ITK_BYTES, left), label=name)
    except SideFileError as exc:
        raise FormatError(f"{where}: {exc}") from None
    budget["bytes"] += len(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{where}: not a UTF-8 text transform file (invalid byte at offset {exc.start})"
        ) from None


def _read_component(name, src, where):
    try:
        path = side_file(src.base_dir, name)
    except SideFileError as exc:
        raise FormatError(f"{where}: ComponentTransformFile: {exc}") from None
    shown = quote(name)
    try:
        text = _read_text(path, shown, src.budget, f"{where}: ComponentTransformFile {shown}")
    except OSError as exc:
        raise FormatError(
            f"{where}: ComponentTransformFile {shown}: cannot read it ({exc.strerror or 'error'})"
        ) from None
    component = _Source(f"{src.name}:{shown}", os.path.dirname(path), src.depth + 1, src.budget)
    return _parse(text, component)


def _physical(rec: _Record) -> np.ndarray:
    """The (n+1, n+1) physical pull matrix of one non-composite record."""
    dims, n_params, n_fixed, build = _TYPES[rec.kind]
    n = rec.ndim
    if rec.params is None and rec.kind == "IdentityTransform":
        rec.params = np.zeros(0)  # nothing to set: ITK and transfuse both read an identity
    if rec.params is None:
        raise FormatError(f"{rec.where}: {rec.kind} has no Parameters line")
    if len(rec.params) != n_params(n):
        raise FormatError(
            f"{rec.params_line}: Parameters: {rec.kind} in {n}-D needs {n_params(n)} numbers, "
            f"got {len(rec.params)}"
        )
    fixed = rec.fixed
    if fixed is None:
        if len(rec.params):
            # ITK 5.4's reader sets the parameters only together with the fixed ones: without
            # a FixedParameters line it keeps the identity. Refuse rather than differ from ITK
            # or silently drop the numbers.
            raise FormatError(
                f"{rec.params_line}: {rec.kind} has Parameters but no FixedParameters line; "
                "ITK ignores the Parameters then (it reads an identity). Add the "
                "FixedParameters line (empty for a TranslationTransform) to apply them"
            )
        fixed = np.zeros(0)
    if len(fixed) not in n_fixed(n):
        raise FormatError(
            f"{rec.fixed_line}: FixedParameters: {rec.kind} in {n}-D needs "
            f"{' or '.join(map(str, sorted(n_fixed(n))))} numbers, got {len(fixed)}"
        )
    return build(rec.params, fixed, n, rec.where)


def _physical_chain(records: list[_Record], source: str) -> tuple[np.ndarray, int]:
    first = records[0]
    if first.kind == "CompositeTransform":
        if first.params is not None or first.fixed is not None:
            raise FormatError(f"{first.where}: a CompositeTransform has no parameter lines")
        parts = records[1:]
    else:
        if len(records) > 1:
            raise FormatError(
                f"{records[1].where}: the file holds {len(records)} transforms but no "
                "CompositeTransform header before them"
            )
        parts = records
    n = first.ndim
    total = np.eye(n + 1)
    for rec in parts:
        if rec.kind == "CompositeTransform":
            raise FormatError(f"{rec.where}: a CompositeTransform may only be the first transform")
        if rec.ndim != n:
            raise FormatError(f"{rec.where}: {rec.kind} is {rec.ndim}-D inside a {n}-D file")
        # CompositeTransform applies its parts from the back of the queue: T0(T1(...(x)))
        total = total @ _physical(rec)
    return total, n


# -- grids as matrices --------------------------------------------------------------------
def _reverse(n: int) -> np.ndarray:
    """The homogeneous permutation between ITK's ``(x, y, z)`` and numpy's ``(z, y, x)``."""
    r = np.eye(n + 1)
    r[:n, :n] = np.eye(n)[::-1]
    return r


def _grid_matrix(grid, n: int, name: str) -> np.ndarray:
    """``grid``'s index -> physical matrix, numpy order; the unit grid when ``grid`` is None."""
    if grid is None:
        return np.eye(n + 1)
    if not isinstance(grid, Grid):
        raise TypeError(f"{name}={grid!r} must be a transfuse.Grid (or None)")
    if grid.ndim != n:
        raise ValueError(f"{name} is {grid.ndim}-D but the transform is {n}-D")
    return grid.physical_matrix()


def _loose_used(*values) -> bool:
    return any(v is not None for v in values)


def _grid_pair(n, space, grid, input_grid, loose, caller):
    """``(G_out, G_in)``: index -> physical (numpy order) matrices of the two grids, or None
    for ``space="physical"``. ``loose`` are the deprecated ITK-order arguments."""
    if space not in ("index", "physical"):
        raise ValueError(f"{caller}: space={space!r} must be 'index' or 'physical'")
    spacing, origin, direction, in_spacing, in_origin, in_direction = loose
    if _loose_used(*loose):
        if grid is not None or input_grid is not None:
            raise ValueError(
                f"{caller}: pass grid=/input_grid= or the deprecated spacing/origin/direction "
                "arguments, not both"
            )
        warnings.warn(
            f"{caller}: spacing/origin/direction (and input_*) are deprecated; pass "
            "grid=Grid.from_itk(...) and input_grid= instead",
            DeprecationWarning,
            stacklevel=3,
        )
    if space == "physical":
        if _loose_used(*loose) or grid is not None or input_grid is not None:
            raise ValueError(
                f"{caller}: space='physical' takes no grid: the transform maps physical points"
            )
        return None
    if _loose_used(*loose):
        r = _reverse(n)
        g_out = r @ index_to_physical(n, spacing, origin, direction)
        g_in = r @ index_to_physical(
            n,
            spacing if in_spacing is None else in_spacing,
            origin if in_origin is None else in_origin,
            direction if in_direction is None else in_direction,
        )
        return g_out, g_in
    g_out = _grid_matrix(grid, n, "grid")
    g_in = g_out if input_grid is None else _grid_matrix(input_grid, n, "input_grid")
    return g_out, g_in


def _from_itk_physical(phys: np.ndarray, grids) -> Affine:
    """The transfuse transform of an ITK physical matrix (``(x, y, z)`` order)."""
    n = len(phys) - 1
    r = _reverse(n)
    numpy_phys = r @ phys @ r
    if grids is None:
        return Affine(numpy_phys[:n])
    g_out, g_in = grids
    index = np.linalg.solve(g_in, numpy_phys @ g_out)
    return Affine(index[:n])  # (n, n+1) rows: the bottom row need not be exact


# -- public API --------------------------------------------------------------------------------
def read_itk(
    path,
    spacing=None,
    origin=None,
    direction=None,
    *,
    input_spacing=None,
    input_origin=None,
    input_direction=None,
    grid: Grid | None = None,
    input_grid: Grid | None = None,
    space: str = "index",
) -> Affine | list[Affine]:
    """Read an ITK text transform file as a transfuse transform.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tfm`` / ``.txt`` file starting with ``#Insight Transform File V1.0``.
    grid : Grid, optional
        The grid of the output (ITK's *fixed* image). Unit grid when omitted.
    input_grid : Grid, optional
        The grid of the input (ITK's *moving* image); ``grid`` when omitted.
    space : {"index", "physical"}
        ``"index"`` (default): the pull map from output indices to input indices, for
        ``lazy(x).transform(T)``. ``"physical"``: the transform as ITK means it, a pull map
        from output physical points to input physical points, in numpy axis order (ITK's
        ``(x, y, z)`` reversed), for ``.resample(T, onto=..., space="physical")``; no grid.
    spacing, origin, direction, input_spacing, input_origin, input_direction : optional
        Deprecated: the two grids as loose values in ITK's ``(x, y, z)`` order (see
        :func:`index_to_physical`); use ``grid=Grid.from_itk(...)`` instead.

    Returns
    -------
    Affine or list of Affine
        A ``CompositeTransform`` is fused into one matrix. A file that lists several
        transforms without a ``CompositeTransform`` first (a head-motion file: one affine per
        volume, as fMRIPrep writes them) gives a list, one transform per entry, as
        nitransforms reads it (SimpleITK would read the first one only).

    Raises
    ------
    FormatError
        (a ``ValueError``) for a malformed file or an unsupported transform type; the message
        names the file, the line and the field.

    Examples
    --------
    A 2-D translation by ``(x, y) = (3, 4)`` moves numpy axis 0 by 4 and axis 1 by 3:

    >>> import os, tempfile
    >>> from transfuse import Grid
    >>> from transfuse.io.itk import read_itk
    >>> text = '''#Insight Transform File V1.0
    ... #Transform 0
    ... Transform: TranslationTransform_double_2_2
    ... Parameters: 3 4
    ... FixedParameters:
    ... '''
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fn = os.path.join(tmp, "t.tfm")
    ...     with open(fn, "w") as fh:
    ...         _ = fh.write(text)
    ...     T = read_itk(fn)
    ...     P = read_itk(fn, space="physical")
    ...     H = read_itk(fn, grid=Grid((8, 8), spacing=2.0))
    >>> T.matrix()
    array([[1., 0., 4.],
           [0., 1., 3.],
           [0., 0., 1.]])
    >>> H.matrix()  # 2-unit voxels: the shift is half as many voxels
    array([[1. , 0. , 2. ],
           [0. , 1. , 1.5],
           [0. , 0. , 1. ]])
    """
    path = os.fspath(path)
    budget = {"bytes": 0, "transforms": 0}
    text = _read_text(path, "the file", budget, path)
    src = _Source(path, os.path.dirname(os.path.abspath(path)), 0, budget)
    records = _parse(text, src)
    loose = (spacing, origin, direction, input_spacing, input_origin, input_direction)
    if len(records) > 1 and records[0].kind != "CompositeTransform":
        for rec in records:
            if rec.kind == "CompositeTransform":
                raise FormatError(
                    f"{rec.where}: a CompositeTransform may only be the first transform"
                )
        chains = [_physical_chain([rec], path) for rec in records]
        n = chains[0][1]
        for rec, (_, m) in zip(records, chains, strict=True):
            if m != n:
                raise FormatError(f"{rec.where}: {rec.kind} is {m}-D; the first transform is {n}-D")
        grids = _grid_pair(n, space, grid, input_grid, loose, "read_itk")
        return [_from_itk_physical(phys, grids) for phys, _ in chains]
    phys, n = _physical_chain(records, path)
    grids = _grid_pair(n, space, grid, input_grid, loose, "read_itk")
    return _from_itk_physical(phys, grids)


def write_itk(
    transform,
    path,
    spacing=None,
    origin=None,
    direction=None,
    *,
    input_spacing=None,
    input_origin=None,
    input_direction=None,
    grid: Grid | None = None,
    input_grid: Grid | None = None,
    space: str = "index",
    ndim: int | None = None,
) -> None:
    """Write an affine transfuse transform as an ITK ``AffineTransform_double_N_N`` file.

    The inverse of :func:`read_itk` for the same grids and ``space``: an index-space
    transform (output index → input index, numpy order) becomes ``G_in ∘ T ∘ G_out⁻¹`` in
    physical ``(x, y, z)`` space; a physical one (``space="physical"``) only has its axes
    reversed. Written with centre 0 (``FixedParameters`` all zero) and shortest round-trip
    decimals (exact). A composition is fused into one matrix; a list of transforms is
    written as a list (no ``CompositeTransform`` header), as :func:`read_itk` reads it back.

    Parameters
    ----------
    transform : Transform or list of Transform
        Affine, with numeric parameters.
    path : str or os.PathLike
        Destination (``.tfm`` or ``.txt``); overwritten.
    grid, input_grid, space
        As in :func:`read_itk`.
    spacing, origin, direction, input_spacing, input_origin, input_direction
        Deprecated, as in :func:`read_itk`.
    ndim : int, optional
        Needed only when neither the transform nor the grids fix the dimension.

    Raises
    ------
    ValueError
        If the transform is not affine, has free symbols, or its dimension is unknown.

    Examples
    --------
    >>> import os, tempfile
    >>> from transfuse import Translate
    >>> from transfuse.io.itk import write_itk
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fn = os.path.join(tmp, "t.tfm")
    ...     write_itk(Translate((4.0, 3.0)), fn)
    ...     print(open(fn).read())
    #Insight Transform File V1.0
    #Transform 0
    Transform: AffineTransform_double_2_2
    Parameters: 1 0 0 1 3 4
    FixedParameters: 0 0
    """
    many = isinstance(transform, list | tuple)
    items = list(transform) if many else [transform]
    if many and not items:
        raise ValueError("write_itk: transform=[] holds no transform")
    loose = (spacing, origin, direction, input_spacing, input_origin, input_direction)
    lines = [HEADER]
    for i, item in enumerate(items):
        if not isinstance(item, Transform) or not item.is_affine:
            raise ValueError(f"write_itk: {item!r} is not an affine transform")
        if item.free_symbols:
            names = sorted(map(str, item.free_symbols))
            raise ValueError(f"write_itk: free symbols {names} must be bound first")
        n = ndim if ndim is not None else item.ndim
        if n is None:
            n = _grid_ndim(spacing, origin, direction, grid)
        if n is None:
            raise ValueError("write_itk: the dimension is not fixed; pass ndim=")
        m = np.asarray(item.matrix(n), dtype=np.float64)
        grids = _grid_pair(n, space, grid, input_grid, loose, "write_itk")
        if grids is not None:
            g_out, g_in = grids
            m = g_in @ np.linalg.solve(g_out.T, m.T).T  # g_in @ m @ inv(g_out)
        r = _reverse(n)
        phys = r @ m @ r
        params = [*phys[:n, :n].ravel(), *phys[:n, n]]
        lines += [
            f"#Transform {i}",
            f"Transform: AffineTransform_double_{n}_{n}",
            "Parameters: " + " ".join(_fmt(v) for v in params),
            "FixedParameters: " + " ".join(["0"] * n),
        ]
    with open(os.fspath(path), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _grid_ndim(spacing, origin, direction, grid=None):
    if grid is not None:
        return grid.ndim
    for v in (spacing, origin):
        if v is not None:
            return int(np.size(v))
    if direction is not None:
        return int(round(math.sqrt(np.size(direction))))
    return None


def _fmt(value: float) -> str:
    value = float(value) + 0.0
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
