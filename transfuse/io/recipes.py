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

import dataclasses
import json
import math
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np

from ..planner.options import ResampleOptions, check_chunks, check_output_shape
from ..transforms import base
from .errors import RecipeError
from .expressions import MAX_INT_BITS
from .recipe_arrays import ARRAY
from .recipe_fields import (
    AXES,
    AXIS,
    BOOL,
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
    _Reader,
    _Writer,
)
from .recipe_limits import (
    INLINE_ELEMENTS,
    MAX_DEPTH,
    MAX_EXTENT,
    MAX_INLINE_ELEMENTS,
    MAX_NDIM,
    MAX_NODES,
    MAX_NPY_BYTES,
    MAX_TEXT_BYTES,
    MAX_TOTAL_EXPR_NODES,
)
from .recipe_nodes import (
    TRANSFORM,
    TRANSFORMS,
    _decode_node,
    _encode_node,
    register_node,
    registered_types,
)

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
        if not math.isfinite(opts.cval):
            raise ValueError(f"cval={self.cval!r} must be finite in a recipe (JSON has no NaN)")
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
