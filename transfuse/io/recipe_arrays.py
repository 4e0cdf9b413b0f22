"""Arrays in recipes: inline data or ``.npy`` files beside the recipe (the ``ARRAY`` field
kind)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import RecipeError
from .recipe_fields import Field, _refuse
from .recipe_limits import MAX_EXTENT, MAX_INLINE_ELEMENTS, MAX_NDIM, MAX_NPY_BYTES

_DTYPES = frozenset(
    ["|b1", "|i1", "|u1"]
    + [f"{order}{kind}{size}" for order in "<>" for kind in "iu" for size in (2, 4, 8)]
    + [f"{order}f{size}" for order in "<>" for size in (2, 4, 8)]
)


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
