"""Maps computed by a Python callable: :class:`FunctionMap`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import numbers
import sys
import types

import numpy as np

from ..base import Transform, canonical
from ..sympy_types import is_sympy
from .base import NonlinearTransform, format_values, per_axis

#: Longest ``token=`` a FunctionMap accepts.
MAX_TOKEN_LENGTH = 200
#: Deepest nesting of values (closures, defaults, containers) a callable's token follows.
MAX_TOKEN_DEPTH = 32


class _Untokenizable(ValueError):
    """A value in a callable has no deterministic token."""


def _by_reference(obj) -> str | None:
    """``module.qualname`` when importing that name gives back ``obj`` itself (as pickle
    finds functions and classes), else None. Nothing new is imported."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    target = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return f"{module}.{qualname}" if target is obj else None


class _Tokenizer:
    """Feeds a deterministic description of a value into a hash: the same in every process
    and every run (no ``id()``, no ``hash()``), different when code or captured data differ."""

    def __init__(self):
        self.hash = hashlib.sha256()
        self.active: set[int] = set()  # cycle detection only; never part of the token

    def text(self, *parts) -> None:
        for part in parts:
            data = (
                part if isinstance(part, bytes) else str(part).encode("utf-8", "backslashreplace")
            )
            self.hash.update(len(data).to_bytes(8, "little") + data)

    def feed(self, value, where: str, depth: int = 0) -> None:
        if depth > MAX_TOKEN_DEPTH:
            raise _Untokenizable(f"{where} is nested deeper than {MAX_TOKEN_DEPTH}")
        if isinstance(value, int) and not isinstance(value, bool):
            self.text(type(value).__qualname__, hex(value))  # no digit limit, unlike repr
            return
        if value is None or isinstance(value, bool | str | bytes | complex):
            self.text(type(value).__qualname__, repr(value))
            return
        if isinstance(value, float):
            self.text("float", value.hex())
            return
        if id(value) in self.active:
            self.text("cycle")
            return
        self.active.add(id(value))
        try:
            self._feed_object(value, where, depth + 1)
        finally:
            self.active.discard(id(value))

    def _feed_object(self, value, where, depth):
        if isinstance(value, tuple | list):
            self.text(type(value).__name__, len(value))
            for i, v in enumerate(value):
                self.feed(v, f"{where}[{i}]", depth)
        elif isinstance(value, dict | set | frozenset):
            self._feed_unordered(value, where, depth)
        elif isinstance(value, np.ndarray | np.generic):
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise _Untokenizable(f"{where} is an object array")
            data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1).tobytes()
            self.text("ndarray", arr.dtype.str, arr.shape, hashlib.sha256(data).hexdigest())
        elif isinstance(value, types.CodeType):
            self._feed_code(value, where, depth)
        elif isinstance(value, types.FunctionType):
            self._feed_function(value, where, depth)
        elif isinstance(value, functools.partial):
            self.text("partial")
            self.feed(value.func, f"{where}.func", depth)
            self.feed(value.args, f"{where}.args", depth)
            self.feed(value.keywords, f"{where}.keywords", depth)
        elif isinstance(value, types.MethodType):
            self.text("method")
            self.feed(value.__func__, f"{where}.__func__", depth)
            self.feed(value.__self__, f"{where}.__self__", depth)
        elif isinstance(value, types.ModuleType):
            self.text("module", value.__name__)
        elif is_sympy(value) or isinstance(value, Transform):
            self.text("canonical", type(value).__qualname__, canonical(value))
        elif isinstance(value, types.BuiltinFunctionType | np.ufunc | type) or callable(value):
            self._feed_named(value, where, depth)
        elif type(value).__module__ == "builtins" and type(value) in (range, slice):
            self.text(repr(value))
        else:
            self._feed_instance(value, where, depth)

    def _feed_unordered(self, value, where, depth):
        items = value.items() if isinstance(value, dict) else ((v, None) for v in value)
        parts = []
        for k, v in items:
            sub = _Tokenizer()
            sub.active = self.active
            sub.feed(k, f"{where} key", depth)
            sub.feed(v, f"{where}[{k!r:.40}]", depth)
            parts.append(sub.hash.hexdigest())
        self.text(type(value).__name__, len(parts), *sorted(parts))

    def _feed_code(self, code, where, depth):
        self.text("code", code.co_name, code.co_argcount, code.co_posonlyargcount)
        self.text(code.co_kwonlyargcount, code.co_flags, code.co_code)
        self.text(code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
        for i, const in enumerate(code.co_consts):
            self.feed(const, f"{where}.co_consts[{i}]", depth)

    def _feed_function(self, func, where, depth):
        self.text("function", func.__module__, func.__qualname__)
        self.feed(func.__code__, f"{where}.__code__", depth)
        self.feed(func.__defaults__, f"{where}.__defaults__", depth)
        self.feed(func.__kwdefaults__, f"{where}.__kwdefaults__", depth)
        for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=True):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell (a variable assigned later)
                self.text("empty cell", name)
                continue
            self.feed(content, f"the closure variable {name!r} of {func.__qualname__}", depth)
        for name in _global_names(func.__code__):
            if name in func.__globals__:
                value = func.__globals__[name]
                self.text("global", name)
                self.feed(value, f"the global {name!r} of {func.__qualname__}", depth)

    def _feed_named(self, value, where, depth):
        ref = _by_reference(value)
        if ref is not None:
            self.text("ref", ref)
            owner = getattr(value, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType | type):
                self.feed(owner, f"{where}.__self__", depth)
            return
        if isinstance(value, types.BuiltinFunctionType | np.ufunc | type):
            raise _Untokenizable(f"{where} ({value!r:.60}) cannot be found by its name")
        self._feed_instance(value, where, depth)

    def _feed_instance(self, value, where, depth):
        cls = type(value)
        ref = _by_reference(cls)
        state = getattr(value, "__dict__", None)
        slots = [n for c in cls.__mro__ for n in getattr(c, "__slots__", ()) if n != "__dict__"]
        if ref is None or (state is None and not slots):
            raise _Untokenizable(
                f"{where} is a {cls.__qualname__} object, which has no deterministic token"
            )
        self.text("instance", ref)
        if state is not None:
            self.feed(dict(state), f"{where}.__dict__", depth)
        for name in slots:
            if hasattr(value, name):
                self.text("slot", name)
                self.feed(getattr(value, name), f"{where}.{name}", depth)


def _global_names(code) -> list[str]:
    """Names the code (and the code nested in it) may look up as globals."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return sorted(set(names))


def _callable_token(func, name: str) -> str:
    """A deterministic token of a callable: its name, code, defaults, closure and the
    globals it refers to, hashed. Raises ValueError naming ``name`` when some part has no
    deterministic token."""
    tok = _Tokenizer()
    try:
        tok.feed(func, name)
    except _Untokenizable as exc:
        raise ValueError(
            f"{name}={func!r:.80} cannot be given a deterministic key: {exc}; pass a "
            "module-level function, or name the computation with FunctionMap(..., token='...')"
        ) from None
    label = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{label}:{tok.hash.hexdigest()[:32]}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class FunctionMap(NonlinearTransform):
    """A pull map computed by a Python callable (the case of
    :func:`scipy.ndimage.geometric_transform`).

    Parameters
    ----------
    func : callable
        With ``vectorized=True`` (default): ``func(coords) -> coords_in`` where ``coords`` is a
        float64 array of shape ``(ndim, N)`` of output coordinates (index space, axis order)
        and the result has the same shape (input coordinates). It is called once per output
        chunk, with that chunk's points. With ``vectorized=False``: scipy's
        ``geometric_transform`` convention, ``func(point_tuple) -> point_tuple``, called
        once per point (slow; for compatibility).
    ndim : int
        The dimension.
    bounds : None, float, sequence of float or callable, optional
        How far the input points of a region can be from it, for footprints:

        * None (default): anywhere — every output chunk depends on the whole input;
        * a margin ``m`` (one number or one per axis): ``|func(p)[k] - p[k]| <= m[k]``;
        * a callable ``bounds(lo, hi) -> (lo_in, hi_in)`` taking arrays of shape
          ``(nboxes, ndim)`` (corners of boxes of output points) and returning a box per
          row that contains ``func`` of every point of the box (it must be sound).
    vectorized : bool
    token : str, optional
        A name for the computation ``func`` (and a callable ``bounds``) performs, used in
        the key instead of a token computed from them. Give it for callables whose content
        cannot be tokenized (see Notes); two maps with the same token, ``ndim``, margins
        and ``vectorized`` are taken to be the same map.

    Notes
    -----
    Keys (and equality) come from the content of ``func`` (and of a callable ``bounds``):
    its module and qualified name, its code, default arguments, the values its closure
    captured and the module-level names its code refers to, hashed the same way in every
    process. Two maps that differ in any of these never share a key; the same function
    defined twice does. The values must be numbers, strings, containers, numpy arrays,
    sympy expressions, transforms, functions, modules, classes, or objects whose class is
    importable and whose attributes are such values; anything else (say, an open file
    captured in a closure) raises ValueError when the map is built: pass a module-level
    function, or ``token=``.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi, transfuse
    >>> def shear(c):
    ...     return np.stack([c[0], c[1] + 0.25 * c[0]])
    >>> F = FunctionMap(shear, ndim=2, bounds=(0, 3))
    >>> F([[4.0, 1.0]])
    array([[4., 2.]])
    >>> x = np.random.default_rng(0).random((8, 9))
    >>> out = transfuse.lazy(x, chunks=4).transform(F, order=1).compute()
    >>> ref = ndi.geometric_transform(x, lambda p: (p[0], p[1] + 0.25 * p[0]), order=1)
    >>> bool(np.allclose(out, ref))
    True
    """

    func: object = None
    ndim: int = None
    bounds: object = None
    vectorized: bool = True
    token: str | None = None

    def __post_init__(self):
        if not callable(self.func):
            raise ValueError(f"func={self.func!r} is not callable")
        n = self.ndim
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"ndim={n!r} must be a positive integer")
        object.__setattr__(self, "ndim", int(n))
        b = self.bounds
        if b is not None and not callable(b):
            b = per_axis(b, "bounds", int(n))
            if any(v < 0 for v in b):
                raise ValueError(f"bounds={self.bounds!r} must be non-negative margins")
        object.__setattr__(self, "bounds", b)
        if not isinstance(self.vectorized, bool | np.bool_):
            raise ValueError(f"vectorized={self.vectorized!r} must be True or False")
        object.__setattr__(self, "vectorized", bool(self.vectorized))
        t = self.token
        if t is not None and (type(t) is not str or not 0 < len(t) <= MAX_TOKEN_LENGTH):
            raise ValueError(
                f"token={t!r:.80} must be a string of 1 to {MAX_TOKEN_LENGTH} characters"
            )
        if t is not None:
            tokens = (f"token:{t}", "token" if callable(b) else b)
        else:
            tokens = (
                _callable_token(self.func, "func"),
                _callable_token(b, "bounds") if callable(b) else b,
            )
        object.__setattr__(self, "_tokens", tokens)

    def params(self):
        return {
            "func": self._tokens[0],
            "ndim": self.ndim,
            "bounds": self._tokens[1],
            "vectorized": self.vectorized,
        }

    def __repr__(self):
        name = getattr(self.func, "__qualname__", type(self.func).__name__)
        b = self.bounds
        if b is None:
            bound = "whole input"
        elif callable(b):
            bound = getattr(b, "__qualname__", "callable")
        else:
            bound = f"margin {format_values(b)}"
        return f"FunctionMap({name}, ndim={self.ndim}, bounds={bound})"
