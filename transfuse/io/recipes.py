"""Safe, versioned JSON recipes for transforms and resampling pipelines.

A recipe is plain JSON: ``{"transfuse": "recipe", "version": 1, "transform": node}`` or
``{..., "pipeline": {...}}``. Each node is ``{"type": "Rotate", ...fields}``. Reading one
never runs code: no ``eval``, no string parsing by sympy, no pickle; every value is checked
against the field it fills, and anything wrong or over a limit raises
:class:`~transfuse.io.errors.RecipeError` naming the JSON path. See ``docs/recipes.md``.

Examples
--------
>>> import transfuse
>>> from transfuse.io import recipes
>>> theta = transfuse.symbols("theta")
>>> T = transfuse.Rotate(theta, center=(0.5, -0.0)) @ transfuse.Translate((1e-300, 5e-324))
>>> text = recipes.dumps(T)
>>> U = recipes.loads(text)
>>> U == T and U.key == T.key
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np
import sympy

from ..planner.options import ResampleOptions, check_chunks, check_output_shape
from ..transforms import affine, base, nonlinear
from .errors import RecipeError
from .expressions import MAX_INT_BITS, MAX_SYMBOL_NAME, Budget, decode_expr, encode_expr

__all__ = [
    "FORMAT",
    "VERSION",
    "MAX_TEXT_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_TOTAL_EXPR_NODES",
    "INLINE_ELEMENTS",
    "MAX_INLINE_ELEMENTS",
    "MAX_NPY_BYTES",
    "MAX_NDIM",
    "MAX_EXTENT",
    "Pipeline",
    "RecipeError",
    "Field",
    "SCALAR",
    "NUMBER",
    "VECTOR",
    "SCALAR_OR_VECTOR",
    "MATRIX",
    "EXPR",
    "INT",
    "NDIM",
    "AXIS",
    "AXES",
    "STRING",
    "NAME",
    "BOOL",
    "ARRAY",
    "TRANSFORM",
    "TRANSFORMS",
    "register_node",
    "registered_types",
    "to_dict",
    "from_dict",
    "dumps",
    "loads",
    "read_recipe",
    "write_recipe",
    "recipe_schema",
]

FORMAT = "recipe"
VERSION = 1
#: Largest recipe text (bytes of a file, or characters of a string).
MAX_TEXT_BYTES = 10 * 2**20
#: Deepest nesting of JSON objects and arrays.
MAX_DEPTH = 64
#: Most transform nodes in one recipe.
MAX_NODES = 10_000
#: Most expression nodes in one recipe (all expressions together).
MAX_TOTAL_EXPR_NODES = 100_000
#: :func:`write_recipe` writes arrays with more elements than this to ``.npy`` files.
INLINE_ELEMENTS = 4_096
#: Most elements of an array written inline (in the JSON text).
MAX_INLINE_ELEMENTS = 2**20
#: Largest ``.npy`` file a recipe may refer to (its array data, in bytes).
MAX_NPY_BYTES = 2**32
#: Largest number of dimensions of a stored array, of an ``ndim`` field and of an axis index.
MAX_NDIM = 32
#: Largest single extent in ``output_shape`` or ``output_chunks``.
MAX_EXTENT = 2**48

_DTYPES = frozenset(
    ["|b1", "|i1", "|u1"]
    + [f"{order}{kind}{size}" for order in "<>" for kind in "iu" for size in (2, 4, 8)]
    + [f"{order}f{size}" for order in "<>" for size in (2, 4, 8)]
)


# -- the pipeline ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A transform with the resampling settings to apply it with, as a recipe stores them.

    Parameters
    ----------
    transform : Transform
    output_shape : tuple of int, optional
        Shape of the result; the input's shape when None.
    order : int
        Spline order, 0 to 5.
    mode : str
        One of the :mod:`scipy.ndimage` boundary modes.
    cval : float
        Finite value outside the input for the constant modes.
    prefilter : bool
        Whether to spline-prefilter the input when ``order > 1``.
    output_chunks : int or tuple, optional
        Chunks of the result: one int for every axis, or per axis an int or a tuple of
        block sizes.

    Examples
    --------
    >>> import transfuse
    >>> p = Pipeline(transfuse.Scale((2.0, 2.0)), output_shape=(4, 4), order=1)
    >>> from_dict(p.to_dict()) == p
    True
    """

    transform: base.Transform
    output_shape: tuple | None = None
    order: int = 3
    mode: str = "constant"
    cval: float = 0.0
    prefilter: bool = True
    output_chunks: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.transform, base.Transform):
            raise ValueError(f"transform={self.transform!r} is not a Transform")
        opts = ResampleOptions(self.order, self.mode, self.cval, self.prefilter)  # validates
        object.__setattr__(self, "order", opts.order)
        object.__setattr__(self, "cval", opts.cval)
        if self.output_shape is not None:
            shape = check_output_shape(self.output_shape)
            if max(shape) > MAX_EXTENT:
                raise ValueError(f"output_shape={shape!r} has an extent over {MAX_EXTENT}")
            object.__setattr__(self, "output_shape", shape)
        if self.output_chunks is not None:
            chunks = _chunks(self.output_chunks)
            if self.output_shape is not None:
                check_chunks(chunks, self.output_shape)
            object.__setattr__(self, "output_chunks", chunks)

    def apply(self, image):
        """Resample ``image`` lazily: ``transfuse.lazy(image).transform(...)``.

        Examples
        --------
        >>> import numpy as np, transfuse
        >>> Pipeline(transfuse.Translate((1.0, 0.0)), order=0).apply(np.eye(3)).compute()
        array([[0., 1., 0.],
               [0., 0., 1.],
               [0., 0., 0.]])
        """
        from ..lazy import lazy

        return lazy(image).transform(
            self.transform,
            output_shape=self.output_shape,
            order=self.order,
            mode=self.mode,
            cval=self.cval,
            prefilter=self.prefilter,
            output_chunks=self.output_chunks,
        )

    def to_dict(self) -> dict:
        """The pipeline as a JSON-ready recipe dict."""
        return to_dict(self)

    def to_json(self, **kwargs) -> str:
        """The pipeline as recipe text (see :func:`dumps`)."""
        return dumps(self, **kwargs)


def _chunk_size(value, name):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}={value!r} must be a positive integer")
    if not 1 <= int(value) <= MAX_EXTENT:
        raise ValueError(f"{name}={value!r} must be in 1..{MAX_EXTENT}")
    return int(value)


def _chunks(value):
    """An int (every axis), or per axis an int or a tuple of block sizes."""
    if not isinstance(value, tuple | list):
        return _chunk_size(value, "output_chunks")
    out = []
    for i, c in enumerate(value):
        if not isinstance(c, tuple | list):
            out.append(_chunk_size(c, f"output_chunks[{i}]"))
        else:
            out.append(tuple(_chunk_size(v, f"output_chunks[{i}]") for v in c))
    return tuple(out)


# -- reading and writing contexts ----------------------------------------------------------
class _Writer:
    """State of one encoding: budgets, and the arrays bound for ``.npy`` files."""

    def __init__(self, inline_limit: int | None = None, stem: str = "recipe"):
        self.inline_limit = inline_limit  # None: everything inline (no directory)
        self.stem = stem
        self.files: dict[str, np.ndarray] = {}
        self.nodes = Budget(MAX_NODES, "transform nodes")
        self.exprs = Budget(MAX_TOTAL_EXPR_NODES, "expression nodes")


class _Reader:
    """State of one decoding: budgets and the directory ``.npy`` references resolve in."""

    def __init__(self, base_dir=None):
        self.base_dir = None if base_dir is None else Path(base_dir)
        self.nodes = Budget(MAX_NODES, "transform nodes")
        self.exprs = Budget(MAX_TOTAL_EXPR_NODES, "expression nodes")


def _kind_of(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    names.update({int: "an integer", float: "a number", type(None): "null"})
    return names.get(type(value), type(value).__name__)


# -- field kinds -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Field:
    """How one field of a node is written and read.

    ``encode(value, writer, path) -> JSON`` and ``decode(json, reader, path) -> value``;
    ``label`` names the kind in messages. Use the ready kinds (``SCALAR``, ``VECTOR``,
    ``ARRAY``, ...), :meth:`optional` and :meth:`many` rather than making new ones.
    """

    label: str
    encode: Callable
    decode: Callable

    def optional(self) -> Field:
        """The same kind, or null for None."""

        def enc(v, w, p):
            return None if v is None else self.encode(v, w, p)

        def dec(j, r, p):
            return None if j is None else self.decode(j, r, p)

        return Field(f"{self.label} or null", enc, dec)

    def many(self, min_items: int = 0) -> Field:
        """A list of this kind, read back as a tuple."""

        def enc(v, w, p):
            if not isinstance(v, tuple | list):
                raise RecipeError(f"cannot write {type(v).__name__} as a list", p)
            return [self.encode(x, w, f"{p}[{i}]") for i, x in enumerate(v)]

        def dec(j, r, p):
            if type(j) is not list or len(j) < min_items:
                raise RecipeError(f"must be a list of {self.label}, got {_kind_of(j)}", p)
            return tuple(self.decode(x, r, f"{p}[{i}]") for i, x in enumerate(j))

        return Field(f"list of {self.label}", enc, dec)


def _refuse(what, v, p):
    raise RecipeError(f"cannot write {type(v).__name__} {v!r:.60} as {what}", p)


def _enc_scalar(v, w, p):
    if isinstance(v, sympy.Basic):
        return _enc_expr(v, w, p)
    if isinstance(v, bool) or not isinstance(v, int | float):
        _refuse("a number", v, p)
    if isinstance(v, float) and not math.isfinite(v):
        raise RecipeError(f"non-finite number {v} cannot be written", p)
    return float(v) if isinstance(v, float) else int(v)


def _dec_scalar(j, r, p):
    if type(j) in (int, float):
        return j
    if type(j) is dict and "expr" in j:
        return _dec_expr(j, r, p)
    raise RecipeError(f"must be a number or {{'expr': ...}}, got {_kind_of(j)}", p)


def _enc_expr(v, w, p):
    if not isinstance(v, sympy.Expr):
        _refuse("an expression", v, p)
    return {"expr": encode_expr(v, f"{p}.expr", w.exprs)}


def _dec_expr(j, r, p):
    if type(j) is not dict or set(j) != {"expr"}:
        raise RecipeError("an expression must be {'expr': tree}", p)
    return decode_expr(j["expr"], f"{p}.expr", r.exprs)


def _int_field(label, low, high):
    def enc(v, w, p):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            _refuse("an integer", v, p)
        return int(v)

    def dec(j, r, p):
        if type(j) is not int or not low <= j <= high:
            raise RecipeError(f"must be {label}, got {j!r:.40}", p)
        return j

    return Field(label, enc, dec)


def _typed_field(label, kind, limit=None):
    def enc(v, w, p):
        if type(v) is not kind:
            _refuse(label, v, p)
        return v

    def dec(j, r, p):
        if type(j) is not kind or (limit is not None and len(j) > limit):
            raise RecipeError(f"must be {label}, got {_kind_of(j)}", p)
        return j

    return Field(label, enc, dec)


def _enc_scalar_or_vector(v, w, p):
    return VECTOR.encode(v, w, p) if isinstance(v, tuple | list) else SCALAR.encode(v, w, p)


def _dec_scalar_or_vector(j, r, p):
    return VECTOR.decode(j, r, p) if type(j) is list else SCALAR.decode(j, r, p)


def _dec_number(j, r, p):
    if type(j) not in (int, float):
        raise RecipeError(f"must be a number, got {_kind_of(j)}", p)
    return j


SCALAR = Field("a number or {'expr': ...}", _enc_scalar, _dec_scalar)
NUMBER = Field("a number", _enc_scalar, _dec_number)
VECTOR = SCALAR.many(min_items=1)
MATRIX = VECTOR.many(min_items=1)
SCALAR_OR_VECTOR = Field(
    "a number, an expression or a list", _enc_scalar_or_vector, _dec_scalar_or_vector
)
EXPR = Field("{'expr': ...}", _enc_expr, _dec_expr)
INT = _int_field("an integer", -(2**63), 2**63 - 1)
NDIM = _int_field(f"an integer from 1 to {MAX_NDIM}", 1, MAX_NDIM)
AXIS = _int_field(f"an axis from -{MAX_NDIM} to {MAX_NDIM - 1}", -MAX_NDIM, MAX_NDIM - 1)
AXES = AXIS.many()
STRING = _typed_field("a string", str, limit=256)


def _enc_name(v, w, p):
    if type(v) is not str or not v.isidentifier() or len(v) > MAX_SYMBOL_NAME:
        _refuse("a name", v, p)
    return v


def _dec_name(j, r, p):
    if type(j) is not str or not j.isidentifier() or len(j) > MAX_SYMBOL_NAME:
        raise RecipeError(f"must be an identifier of at most {MAX_SYMBOL_NAME} characters", p)
    return j


NAME = Field("a name", _enc_name, _dec_name)
BOOL = _typed_field("true or false", bool)


def _enc_transform(v, w, p):
    if not isinstance(v, base.Transform):
        _refuse("a transform", v, p)
    return _encode_node(v, w, p)


TRANSFORM = Field("a transform node", _enc_transform, lambda j, r, p: _decode_node(j, r, p))
TRANSFORMS = TRANSFORM.many(min_items=1)


# -- arrays ------------------------------------------------------------------------------------
def _enc_array(a, w, p):
    if hasattr(a, "dask"):
        raise RecipeError("a dask array cannot be written into a recipe; compute it first", p)
    if not isinstance(a, np.ndarray):
        _refuse("an array", a, p)
    if a.dtype.str not in _DTYPES or a.ndim > MAX_NDIM:
        raise RecipeError(
            f"cannot write an array of dtype {a.dtype} and {a.ndim} dimensions; allowed are "
            f"bool, (u)int8-64 and float16-64 with at most {MAX_NDIM} dimensions",
            p,
        )
    head = {"dtype": a.dtype.str, "shape": list(a.shape)}
    finite = a.dtype.kind != "f" or bool(np.isfinite(a).all())
    if w.inline_limit is not None and (a.size > w.inline_limit or not finite):
        digest = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
        name = f"{w.stem}.{digest.hexdigest()[:16]}.npy"
        if a.nbytes > MAX_NPY_BYTES:
            raise RecipeError(f"array of {a.nbytes} bytes exceeds {MAX_NPY_BYTES}", p)
        w.files[name] = a
        return {"array": {**head, "npy": name}}
    if not finite:
        raise RecipeError(
            "array holds NaN or infinity, which JSON cannot; write_recipe() stores it as .npy", p
        )
    if a.size > MAX_INLINE_ELEMENTS:
        raise RecipeError(
            f"array of {a.size} elements exceeds {MAX_INLINE_ELEMENTS} inline; "
            "write_recipe() stores it as .npy",
            p,
        )
    return {"array": {**head, "data": a.ravel().tolist()}}


def _dec_array(j, r, p):
    if type(j) is not dict or set(j) != {"array"} or type(j["array"]) is not dict:
        raise RecipeError("an array must be {'array': {dtype, shape, data or npy}}", p)
    spec, p = j["array"], f"{p}.array"
    keys = set(spec)
    if keys not in ({"dtype", "shape", "data"}, {"dtype", "shape", "npy"}):
        raise RecipeError(f"needs dtype, shape and one of data or npy, got {sorted(keys)}", p)
    dtype = spec["dtype"]
    if type(dtype) is not str or dtype not in _DTYPES:
        raise RecipeError(f"dtype {dtype!r:.40} is not one of {sorted(_DTYPES)}", f"{p}.dtype")
    shape = spec["shape"]
    if (
        type(shape) is not list
        or len(shape) > MAX_NDIM
        or not all(type(n) is int and 0 <= n <= MAX_EXTENT for n in shape)
    ):
        raise RecipeError(f"must be a list of at most {MAX_NDIM} sizes", f"{p}.shape")
    size = math.prod(shape)
    if "npy" in spec:
        return _read_npy(spec["npy"], np.dtype(dtype), tuple(shape), r, f"{p}.npy")
    return _inline_array(spec["data"], np.dtype(dtype), tuple(shape), size, f"{p}.data")


def _inline_array(data, dtype, shape, size, p):
    if size > MAX_INLINE_ELEMENTS:
        raise RecipeError(f"{size} elements exceed {MAX_INLINE_ELEMENTS} inline", p)
    if type(data) is not list or len(data) != size:
        raise RecipeError(f"must be a flat list of {size} values", p)
    allowed = {"b": {bool}, "i": {int}, "u": {int}, "f": {int, float}}[dtype.kind]
    if not {type(v) for v in data} <= allowed:
        raise RecipeError(f"values must all be {' or '.join(t.__name__ for t in allowed)}", p)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.array(data, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise RecipeError(f"values do not fit dtype {dtype}: {exc}", p) from exc
    if dtype.kind == "f" and not np.isfinite(out).all():
        raise RecipeError(f"values overflow dtype {dtype}", p)
    return out


def _npy_file(ref, r, p) -> Path:
    if type(ref) is not str or not ref.endswith(".npy") or len(ref) > 255:
        raise RecipeError("must be a relative path ending in .npy", p)
    parts = ref.split("/")
    if (
        any(c in ref for c in "\\:\x00")
        or PurePosixPath(ref).is_absolute()
        or any(part in ("", "..") for part in parts)
    ):
        raise RecipeError(f"{ref!r:.80} must stay inside the recipe's directory", p)
    if r.base_dir is None:
        raise RecipeError(f"refers to file {ref!r}; read the recipe with read_recipe()", p)
    root = r.base_dir.resolve()
    full = (root / ref).resolve()
    if not full.is_relative_to(root):
        raise RecipeError(f"{ref!r:.80} leads outside the recipe's directory", p)
    if not full.is_file():
        raise RecipeError(f"file {ref!r} not found next to the recipe", p)
    return full


def _read_npy(ref, dtype, shape, r, p):
    full = _npy_file(ref, r, p)
    try:
        with open(full, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            file_shape, _, file_dtype = read_header(fh)
        if file_dtype != dtype or tuple(file_shape) != shape:
            raise ValueError(f"holds {file_dtype}{file_shape}, the recipe says {dtype}{shape}")
        if math.prod(shape) * dtype.itemsize > MAX_NPY_BYTES:
            raise ValueError(f"is larger than {MAX_NPY_BYTES} bytes")
        out = np.load(full, allow_pickle=False)
    except RecipeError:
        raise
    except Exception as exc:  # a malformed or truncated file
        raise RecipeError(f"bad .npy file {ref!r}: {exc}", p) from exc
    if out.dtype != dtype or out.shape != shape:
        raise RecipeError(f".npy file {ref!r} does not hold {dtype}{shape}", p)
    return out


ARRAY = Field("an array {'array': ...}", _enc_array, _dec_array)


# -- node registry ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Codec:
    name: str
    cls: type
    fields: dict
    required: tuple
    build: Callable | None
    values: Callable | None


_BY_NAME: dict[str, _Codec] = {}
_BY_CLASS: dict[type, _Codec] = {}


def register_node(cls, fields, *, name=None, required=(), build=None, values=None):
    """Teach recipes a transform type.

    Parameters
    ----------
    cls : type
        The :class:`~transfuse.transforms.base.Transform` subclass (exact type; subclasses
        register separately).
    fields : dict
        Field name -> :class:`Field` kind (``SCALAR``, ``VECTOR``, ``SCALAR_OR_VECTOR``,
        ``MATRIX``, ``EXPR``, ``EXPR.many()``, ``INT``, ``NDIM``, ``AXES``, ``STRING``,
        ``BOOL``, ``ARRAY``, ``TRANSFORM``, ``TRANSFORMS``, any of them ``.optional()``).
    name : str, optional
        The ``type`` written in recipes; ``cls.__name__`` by default.
    required : tuple of str
        Fields a recipe must give; the others default to the class's defaults.
    build : callable, optional
        ``build(**fields) -> Transform``; ``cls(**fields)`` by default. Whatever it raises
        becomes a :class:`RecipeError`.
    values : callable, optional
        ``values(node) -> dict`` of the fields to write; ``getattr`` of each by default.

    Examples
    --------
    >>> import dataclasses
    >>> from transfuse.transforms.base import Transform
    >>> @dataclasses.dataclass(frozen=True, repr=False)
    ... class Nudge(Transform):
    ...     step: float = 1.0
    >>> register_node(Nudge, {"step": SCALAR}, required=("step",))
    >>> loads(dumps(Nudge(0.25))) == Nudge(0.25)
    True
    """
    name = name or cls.__name__
    unknown = sorted(set(required) - set(fields))
    if unknown:
        raise ValueError(f"required fields {unknown} are not among the fields")
    codec = _Codec(name, cls, dict(fields), tuple(required), build, values)
    _BY_NAME[name] = codec
    _BY_CLASS[cls] = codec


def registered_types() -> tuple[str, ...]:
    """The node ``type`` names recipes know, sorted.

    Examples
    --------
    >>> "Rotate" in registered_types()
    True
    """
    return tuple(sorted(_BY_NAME))


def _encode_node(node, w, p):
    codec = _BY_CLASS.get(type(node))
    if codec is None:
        raise RecipeError(
            f"no recipe encoder for {type(node).__name__}; register one with register_node()", p
        )
    w.nodes.spend(p)
    values = codec.values(node) if codec.values else {f: getattr(node, f) for f in codec.fields}
    out = {"type": codec.name}
    for field, kind in codec.fields.items():
        out[field] = kind.encode(values[field], w, f"{p}.{field}")
    return out


def _decode_node(j, r, p):
    if type(j) is not dict or type(j.get("type")) is not str:
        raise RecipeError(f"a node must be an object with a string 'type', got {_kind_of(j)}", p)
    codec = _BY_NAME.get(j["type"])
    if codec is None:
        raise RecipeError(
            f"unknown node type {j['type']!r:.60}; known are {', '.join(registered_types())}", p
        )
    r.nodes.spend(p)
    unknown = sorted(set(j) - set(codec.fields) - {"type"})
    if unknown:
        raise RecipeError(f"unknown fields {unknown} for {codec.name}", p)
    missing = [f for f in codec.required if f not in j]
    if missing:
        raise RecipeError(f"{codec.name} needs the fields {missing}", p)
    kwargs = {f: kind.decode(j[f], r, f"{p}.{f}") for f, kind in codec.fields.items() if f in j}
    try:
        return (codec.build or codec.cls)(**kwargs)
    except Exception as exc:  # the constructor's own validation, whatever it raises
        raise RecipeError(f"invalid {codec.name}: {exc}", p) from exc


def _build_affine(linear, offset):
    if len(offset) != len(linear) or any(len(row) != len(linear) for row in linear):
        raise ValueError("linear must be n x n and offset must have n entries")
    rows = [[*row, offset[i]] for i, row in enumerate(linear)]
    symbolic = any(isinstance(v, sympy.Basic) for row in rows for v in row)
    return affine.Affine(np.array(rows, dtype=object if symbolic else np.float64))


def _register_builtins():
    ndim = NDIM.optional()
    register_node(base.Compose, {"transforms": TRANSFORMS}, required=("transforms",))
    register_node(affine.Identity, {"ndim": ndim})
    register_node(affine.Translate, {"vector": VECTOR}, required=("vector",))
    register_node(affine.Scale, {"factors": SCALAR_OR_VECTOR}, required=("factors",))
    register_node(
        affine.Rotate,
        {"angle": SCALAR, "axes": AXES, "center": VECTOR.optional(), "ndim": ndim},
        required=("angle",),
    )
    register_node(
        affine.Shear, {"factor": SCALAR, "axes": AXES, "ndim": ndim}, required=("factor",)
    )
    register_node(
        affine.Affine,
        {"linear": MATRIX, "offset": VECTOR},
        required=("linear", "offset"),
        build=_build_affine,
    )
    register_node(affine.Flip, {"axes": AXES, "center": VECTOR, "ndim": ndim}, required=("axes",))
    register_node(affine.Permute, {"order": AXES}, required=("order",))
    register_node(nonlinear.CoordinateMap, {"coords": ARRAY}, required=("coords",))
    register_node(
        nonlinear.DisplacementField,
        {
            "field": ARRAY,
            "spacing": VECTOR,
            "origin": VECTOR,
            "order": INT,
            "mode": STRING,
            "cval": NUMBER,
        },
        required=("field",),
    )
    register_node(
        nonlinear.ExprMap,
        {"expressions": EXPR.many(1), "coords": EXPR.many(1), "parameters": NAME.many().optional()},
        required=("expressions", "coords"),
    )
    register_node(
        nonlinear.InverseExprMap,
        {"forward": TRANSFORM, "tol": NUMBER, "max_iter": INT},
        required=("forward",),
    )


_register_builtins()


# -- pipelines ---------------------------------------------------------------------------------
def _enc_chunks(v, w, p):
    return v if isinstance(v, int) else [_CHUNK.encode(c, w, f"{p}[{i}]") for i, c in enumerate(v)]


def _dec_chunks(j, r, p):
    return INT.decode(j, r, p) if type(j) is not list else _CHUNK.many().decode(j, r, p)


_CHUNK = Field(
    "an integer or a list of integers",
    lambda v, w, p: list(v) if isinstance(v, tuple) else v,
    lambda j, r, p: tuple(INT.many(1).decode(j, r, p)) if type(j) is list else INT.decode(j, r, p),
)
_PIPELINE_FIELDS = {
    "transform": TRANSFORM,
    "output_shape": INT.many().optional(),
    "order": INT,
    "mode": STRING,
    "cval": NUMBER,
    "prefilter": BOOL,
    "output_chunks": Field("an integer or a list", _enc_chunks, _dec_chunks).optional(),
}


def _encode_pipeline(pipe, w, p):
    return {f: kind.encode(getattr(pipe, f), w, f"{p}.{f}") for f, kind in _PIPELINE_FIELDS.items()}


def _decode_pipeline(j, r, p):
    if type(j) is not dict:
        raise RecipeError(f"must be an object, got {_kind_of(j)}", p)
    unknown = sorted(set(j) - set(_PIPELINE_FIELDS))
    if unknown:
        raise RecipeError(f"unknown pipeline fields {unknown}", p)
    if "transform" not in j:
        raise RecipeError("a pipeline needs a 'transform'", p)
    kwargs = {f: k.decode(j[f], r, f"{p}.{f}") for f, k in _PIPELINE_FIELDS.items() if f in j}
    try:
        return Pipeline(**kwargs)
    except ValueError as exc:
        raise RecipeError(f"invalid pipeline: {exc}", p) from exc


# -- generic JSON checks ---------------------------------------------------------------------
def _check_json(doc, what="recipe"):
    """Check that ``doc`` is plain, finite, bounded JSON data (iteratively)."""
    stack = [(doc, 1, "", None)]
    while stack:
        value, depth, parent, key = stack.pop()
        kind = type(value)
        if kind in (str, bool, type(None)):
            continue
        where = (
            parent
            if key is None
            else (f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}".lstrip("."))
        )
        if kind is float:
            if not math.isfinite(value):
                raise RecipeError("NaN and infinities are not allowed", where)
        elif kind is int:
            if value.bit_length() > MAX_INT_BITS:
                raise RecipeError(f"integer over {MAX_INT_BITS} bits", where)
        elif kind in (dict, list):
            if depth > MAX_DEPTH:
                raise RecipeError(f"{what} is nested deeper than {MAX_DEPTH}", where)
            if kind is dict:
                for k, v in value.items():
                    if type(k) is not str:
                        raise RecipeError(f"object keys must be strings, got {k!r:.40}", where)
                    stack.append((v, depth + 1, where, k))
            else:
                stack.extend((v, depth + 1, where, i) for i, v in enumerate(value))
        else:
            raise RecipeError(f"{kind.__name__} is not a JSON value", where)


def _parse_constant(name):
    raise RecipeError(f"{name} is not allowed in a recipe")


def _parse_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise RecipeError(f"number {text[:40]} overflows a float")
    return value


def _parse_int(text):
    if len(text) > MAX_INT_BITS // 3 + 2:
        raise RecipeError(f"integer of {len(text)} digits is over {MAX_INT_BITS} bits")
    return int(text)


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise RecipeError(f"duplicate key {dup!r:.40} in an object")
    return out


# -- public API --------------------------------------------------------------------------------
def _to_doc(obj, w):
    if isinstance(obj, Pipeline):
        doc = {"transfuse": FORMAT, "version": VERSION}
        doc["pipeline"] = _encode_pipeline(obj, w, "pipeline")
    elif isinstance(obj, base.Transform):
        doc = {"transfuse": FORMAT, "version": VERSION, "transform": None}
        doc["transform"] = _encode_node(obj, w, "transform")
    else:
        raise RecipeError(f"cannot write {type(obj).__name__}: not a Transform or Pipeline")
    _check_json(doc)
    return doc


def to_dict(obj) -> dict:
    """The recipe of a transform or :class:`Pipeline`, as JSON-ready dicts and lists.

    Arrays are written inline (up to :data:`MAX_INLINE_ELEMENTS`); use
    :func:`write_recipe` for larger ones.

    Raises
    ------
    RecipeError
        When some part cannot be written (unregistered node type, disallowed expression,
        a limit).

    Examples
    --------
    >>> import transfuse
    >>> to_dict(transfuse.Translate((1.0, -0.0)))
    {'transfuse': 'recipe', 'version': 1, 'transform': {'type': 'Translate', 'vector': [1.0, -0.0]}}
    """
    return _to_doc(obj, _Writer())


def from_dict(doc, *, base_dir=None):
    """The transform or :class:`Pipeline` a recipe dict describes.

    Parameters
    ----------
    doc : dict
        Parsed JSON (dicts, lists, str, int, float, bool, None only).
    base_dir : path-like, optional
        Directory that ``.npy`` references are relative to; without it they are refused.

    Raises
    ------
    RecipeError
        For anything malformed, unknown, unsafe or over a limit.

    Examples
    --------
    >>> from_dict({"transfuse": "recipe", "version": 1,
    ...            "transform": {"type": "Rotate", "angle": 30}})
    Rotate(angle=30, axes=(0, 1), center=None, ndim=None)
    """
    _check_json(doc)
    if type(doc) is not dict:
        raise RecipeError(f"a recipe must be a JSON object, got {_kind_of(doc)}")
    unknown = sorted(set(doc) - {"transfuse", "version", "transform", "pipeline"})
    if unknown:
        raise RecipeError(f"unknown top-level keys {unknown}")
    if doc.get("transfuse") != FORMAT:
        raise RecipeError('not a transfuse recipe: needs "transfuse": "recipe"')
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise RecipeError("'version' must be a positive integer", "version")
    if version > VERSION:
        raise RecipeError(
            f"recipe version {version} is newer than this transfuse reads ({VERSION})", "version"
        )
    if ("transform" in doc) == ("pipeline" in doc):
        raise RecipeError("a recipe needs exactly one of 'transform' and 'pipeline'")
    reader = _Reader(base_dir)
    if "pipeline" in doc:
        return _decode_pipeline(doc["pipeline"], reader, "pipeline")
    return _decode_node(doc["transform"], reader, "transform")


def dumps(obj, indent: int | None = 2) -> str:
    """The recipe of a transform or :class:`Pipeline` as JSON text; :func:`loads` reverses it.

    Floats are written with Python's ``repr``, so they read back bit for bit.

    Examples
    --------
    >>> import transfuse
    >>> print(dumps(transfuse.Scale(5e-324), indent=None))
    {"transfuse": "recipe", "version": 1, "transform": {"type": "Scale", "factors": 5e-324}}
    """
    text = json.dumps(to_dict(obj), indent=indent, allow_nan=False)
    if len(text) > MAX_TEXT_BYTES:
        raise RecipeError(f"recipe text of {len(text)} characters exceeds {MAX_TEXT_BYTES}")
    return text


def loads(text, *, base_dir=None):
    """Read a recipe from JSON text (str or bytes); the inverse of :func:`dumps`.

    Parameters
    ----------
    text : str or bytes
    base_dir : path-like, optional
        Directory ``.npy`` references resolve in (see :func:`read_recipe`).

    Returns
    -------
    Transform or Pipeline

    Raises
    ------
    RecipeError
        For text that is not JSON, too large, nested too deeply, holds NaN or Infinity, or
        does not describe a valid recipe.

    Examples
    --------
    >>> loads('{"transfuse": "recipe", "version": 1, "transform": {"type": "Identity"}}')
    Identity(ndim=None)
    >>> loads('{"transfuse": "recipe", "version": 1, "transform": {"type": "Eval"}}')
    Traceback (most recent call last):
    ...
    transfuse.io.errors.RecipeError: transform: unknown node type 'Eval'; known are ...
    """
    if not isinstance(text, str | bytes | bytearray):
        raise RecipeError(f"recipe text must be str or bytes, got {type(text).__name__}")
    if len(text) > MAX_TEXT_BYTES:
        raise RecipeError(f"recipe text of {len(text)} exceeds {MAX_TEXT_BYTES}")
    try:
        doc = json.loads(
            text,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_no_duplicates,
        )
    except RecipeError:
        raise
    except RecursionError as exc:
        raise RecipeError(f"recipe is nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RecipeError(f"not valid JSON: {exc}") from exc
    return from_dict(doc, base_dir=base_dir)


def read_recipe(path):
    """Read a recipe file, with ``.npy`` references resolved next to it.

    Raises
    ------
    RecipeError
        As :func:`loads`, and for ``.npy`` references that are missing, malformed, or lead
        outside the recipe's directory (``..``, absolute paths, symbolic links).
    OSError
        When the recipe file itself cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise RecipeError(f"recipe file of {size} bytes exceeds {MAX_TEXT_BYTES}")
    return loads(path.read_bytes(), base_dir=path.parent)


def write_recipe(obj, path, *, indent: int | None = 2, inline_limit: int = INLINE_ELEMENTS):
    """Write a recipe file; arrays over ``inline_limit`` elements go to ``.npy`` files beside it.

    The ``.npy`` files are named ``<stem>.<hash>.npy`` after the recipe and the array's
    content. Nothing is written when encoding fails.

    Returns
    -------
    pathlib.Path
        The recipe path.

    Examples
    --------
    >>> import tempfile, os, transfuse
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = write_recipe(transfuse.Flip(0, center=1.5), os.path.join(tmp, "flip.json"))
    ...     read_recipe(p)
    Flip(axes=(0,), center=(1.5,), ndim=None)
    """
    path = Path(path)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "recipe"
    w = _Writer(inline_limit=int(inline_limit), stem=stem)
    doc = _to_doc(obj, w)
    text = json.dumps(doc, indent=indent, allow_nan=False)
    if len(text) > MAX_TEXT_BYTES:
        raise RecipeError(f"recipe text of {len(text)} characters exceeds {MAX_TEXT_BYTES}")
    for name, array in w.files.items():
        np.save(os.path.join(path.parent, name), array, allow_pickle=False)
    path.write_text(text, encoding="utf-8")
    return path


def recipe_schema() -> dict:
    """The JSON Schema (draft 2020-12) of version-1 recipes, for use with ``jsonschema``.

    Examples
    --------
    >>> recipe_schema()["properties"]["version"]
    {'const': 1}
    """
    return json.loads(resources.files("transfuse.io").joinpath("schema.json").read_text())
