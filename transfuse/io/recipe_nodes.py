"""The registry of recipe node types (``TRANSFORM`` fields, :func:`register_node`) and the
built-in transform nodes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import sympy

from ..transforms import affine, base, nonlinear
from .errors import RecipeError
from .recipe_arrays import ARRAY
from .recipe_fields import (
    AXES,
    EXPR,
    INT,
    MATRIX,
    NAME,
    NDIM,
    NUMBER,
    SCALAR,
    SCALAR_OR_VECTOR,
    STRING,
    VECTOR,
    Field,
    _kind_of,
    refuse,
)
from .safe_files import quote_keys


def _enc_transform(v, w, p):
    if not isinstance(v, base.Transform):
        refuse("a transform", v, p)
    return _encode_node(v, w, p)


TRANSFORM = Field("a transform node", _enc_transform, lambda j, r, p: _decode_node(j, r, p))
TRANSFORMS = TRANSFORM.many(min_items=1)


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
    >>> from transfuse.io.recipes import dumps, loads
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


def _rotate_values(node):
    out = {f: getattr(node, f) for f in ("angle", "axes", "center", "ndim", "output_center")}
    if out["output_center"] is None:
        del out["output_center"]  # recipes without it read as before
    return out


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
        if field in values:  # a values() function may leave out fields at their default
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
        raise RecipeError(f"unknown fields {quote_keys(unknown)} for {codec.name}", p)
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
        {
            "angle": SCALAR,
            "axes": AXES,
            "center": VECTOR.optional(),
            "ndim": ndim,
            "output_center": VECTOR.optional(),
        },
        required=("angle",),
        values=_rotate_values,
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
