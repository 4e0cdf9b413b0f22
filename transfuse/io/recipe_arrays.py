"""Arrays in recipes: inline data or ``.npy`` files beside the recipe (the ``ARRAY`` field
kind)."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from ..transforms.nonlinear.base import share_read_only
from .errors import RecipeError
from .recipe_fields import Field, refuse
from .recipe_limits import (
    MAX_EXTENT,
    MAX_INLINE_ELEMENTS,
    MAX_NDIM,
    MAX_NPY_BYTES,
    MAX_TOTAL_NPY_BYTES,
)
from .safe_files import (
    SideFileError,
    check_reference,
    open_regular,
    quote,
    quote_keys,
    side_file,
)

_DTYPES = frozenset(
    ["|b1", "|i1", "|u1"]
    + [f"{order}{kind}{size}" for order in "<>" for kind in "iu" for size in (2, 4, 8)]
    + [f"{order}f{size}" for order in "<>" for size in (2, 4, 8)]
)


def _enc_array(a, w, p):
    if hasattr(a, "dask"):
        raise RecipeError("a dask array cannot be written into a recipe; compute it first", p)
    if not isinstance(a, np.ndarray):
        refuse("an array", a, p)
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
        raise RecipeError(
            f"needs dtype, shape and one of data or npy, got {quote_keys(sorted(keys))}", p
        )
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
    try:
        check_reference(ref, suffix=".npy")
        if r.base_dir is None:
            raise RecipeError(f"refers to file {quote(ref)}; read the recipe with read_recipe()", p)
        return side_file(r.base_dir, ref, suffix=".npy")
    except SideFileError as exc:
        raise RecipeError(str(exc).replace("the document", "the recipe"), p) from None


def _read_npy(ref, dtype, shape, r, p):
    """The array of a ``.npy`` file beside the recipe, read once per resolved path (each
    further reference shares the same read-only array), within :data:`MAX_NPY_BYTES` per
    file and :data:`MAX_TOTAL_NPY_BYTES` for the whole recipe."""
    full = _npy_file(ref, r, p)
    cached = r.arrays.get(full)
    if cached is not None:
        if cached.dtype != dtype or cached.shape != shape:
            raise RecipeError(
                f".npy file {quote(ref)} holds {cached.dtype}{cached.shape}, the recipe says "
                f"{dtype}{shape}",
                p,
            )
        return cached
    nbytes = math.prod(shape) * dtype.itemsize
    try:
        if nbytes > MAX_NPY_BYTES:
            raise ValueError(f"is larger than {MAX_NPY_BYTES} bytes")
        if r.array_bytes + nbytes > MAX_TOTAL_NPY_BYTES:
            raise ValueError(
                f"would bring the recipe's .npy data over {MAX_TOTAL_NPY_BYTES} bytes in all"
            )
        with os.fdopen(open_regular(full, label=quote(ref)), "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            file_shape, fortran, file_dtype = read_header(fh)
            if file_dtype != dtype or tuple(file_shape) != shape:
                raise ValueError(f"holds {file_dtype}{file_shape}, the recipe says {dtype}{shape}")
            if os.fstat(fh.fileno()).st_size - fh.tell() < nbytes:
                raise ValueError("is truncated")
            out = np.fromfile(fh, dtype=dtype, count=math.prod(shape))
        out = out.reshape(shape, order="F" if fortran else "C")
    except RecipeError:
        raise
    except Exception as exc:  # a malformed or truncated file, not a regular file
        raise RecipeError(f"bad .npy file {quote(ref)}: {exc}", p) from None
    if out.dtype != dtype or out.shape != shape:
        raise RecipeError(f".npy file {quote(ref)} does not hold {dtype}{shape}", p)
    r.array_bytes += nbytes
    r.arrays[full] = share_read_only(out)
    return out


ARRAY = Field("an array {'array': ...}", _enc_array, _dec_array)
