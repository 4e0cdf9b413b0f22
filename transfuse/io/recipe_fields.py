"""Field kinds of recipe nodes: how each value is written to and read from JSON, and the
state of one encoding or decoding."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sympy

from .errors import RecipeError
from .expressions import MAX_SYMBOL_NAME, Budget, decode_expr, encode_expr
from .recipe_limits import MAX_NDIM, MAX_NODES, MAX_TOTAL_EXPR_NODES


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
        self.arrays: dict[Path, np.ndarray] = {}  # resolved .npy path -> its array, read once
        self.array_bytes = 0  # .npy bytes loaded so far


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


def refuse(what, v, p):
    raise RecipeError(f"cannot write {type(v).__name__} {v!r:.60} as {what}", p)


def _enc_scalar(v, w, p):
    if isinstance(v, sympy.Basic):
        return _enc_expr(v, w, p)
    if isinstance(v, bool) or not isinstance(v, int | float):
        refuse("a number", v, p)
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
        refuse("an expression", v, p)
    return {"expr": encode_expr(v, f"{p}.expr", w.exprs)}


def _dec_expr(j, r, p):
    if type(j) is not dict or set(j) != {"expr"}:
        raise RecipeError("an expression must be {'expr': tree}", p)
    return decode_expr(j["expr"], f"{p}.expr", r.exprs)


def _int_field(label, low, high):
    def enc(v, w, p):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            refuse("an integer", v, p)
        return int(v)

    def dec(j, r, p):
        if type(j) is not int or not low <= j <= high:
            raise RecipeError(f"must be {label}, got {j!r:.40}", p)
        return j

    return Field(label, enc, dec)


def _typed_field(label, kind, limit=None):
    def enc(v, w, p):
        if type(v) is not kind:
            refuse(label, v, p)
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
        refuse("a name", v, p)
    return v


def _dec_name(j, r, p):
    if type(j) is not str or not j.isidentifier() or len(j) > MAX_SYMBOL_NAME:
        raise RecipeError(f"must be an identifier of at most {MAX_SYMBOL_NAME} characters", p)
    return j


NAME = Field("a name", _enc_name, _dec_name)
BOOL = _typed_field("true or false", bool)
