"""Interval arithmetic over sympy expressions, vectorised with numpy.

:func:`interval_eval` bounds an expression over many boxes at once: every symbol is given
as arrays ``(lo, hi)`` and the result is a pair of arrays with, for each box, a range that
contains the expression's value at every point of the box (the *natural interval
extension*: each operation is bounded on the ranges of its arguments).

Soundness in floating point: every operation widens its result outward by a few units in
the last place of the largest magnitude involved. That covers the rounding of the bound
itself and the rounding of the evaluation the bound is for (the same expression tree
evaluated by numpy, whose arithmetic is correctly rounded and whose elementary functions
are accurate to a few ulp), so the values computed at run time lie inside the bounds.

Supported: numbers and constants, ``+``, ``*``, powers (integer, real constant and
symbolic exponents), ``exp``, ``log``, ``sin``, ``cos``, ``tan``, ``asin``, ``acos``, ``atan``,
``atan2``, ``sinh``, ``cosh``, ``tanh``, ``asinh``, ``acosh``, ``atanh``, ``erf``, ``Abs``,
``sign``, ``floor``, ``ceiling``, ``Min``, ``Max``, ``Piecewise`` (union of the branches).
Anything else raises :class:`Unsupported`; callers then fall back to an unbounded range.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["Unsupported", "interval_eval"]

EPS = np.finfo(np.float64).eps
TINY = 1e-300


class Unsupported(Exception):
    """The expression uses an operation without an interval rule."""


#: Key of the cache entry where :func:`interval_eval` marks the boxes in which some operation
#: may leave its domain (a logarithm or real power of a possibly negative number, a
#: division by a range holding 0, ...): the values there may be NaN or infinite.
RISK = "domain-risk"


def _flag(cache, mask) -> None:
    mask = np.asarray(mask, dtype=bool)
    if RISK in cache:
        cache[RISK] = cache[RISK] | mask
    else:
        cache[RISK] = mask


def widen(lo, hi, mag=None, ulps=4.0):
    """Widen ``[lo, hi]`` by ``ulps`` units of rounding of ``mag`` (default: the larger
    bound), so that it still holds values computed with rounding; NaN bounds open up."""
    if mag is None:
        mag = np.maximum(np.abs(lo), np.abs(hi))
    mag = np.where(np.isfinite(mag), mag, 0.0)
    w = ulps * EPS * mag + TINY
    lo = np.where(np.isnan(lo), -np.inf, lo - w)
    hi = np.where(np.isnan(hi), np.inf, hi + w)
    return lo, hi


def _const(v):
    v = float(v)
    return widen(np.float64(v), np.float64(v), ulps=1.0)


def _mul(a, b):
    with np.errstate(invalid="ignore"):
        p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    p = [np.where(np.isnan(v), 0.0, v) for v in p]  # 0 * unbounded: the factor is exactly 0
    lo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3]))
    hi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
    return widen(lo, hi)


def _recip(a):
    lo, hi = a
    pos = lo > 0
    neg = hi < 0
    with np.errstate(divide="ignore"):
        rlo = np.where(pos | neg, 1.0 / hi, -np.inf)
        rhi = np.where(pos | neg, 1.0 / lo, np.inf)
    return widen(rlo, rhi)


def _monotone(fn, a, increasing=True, ulps=8.0):
    with np.errstate(all="ignore"):
        x, y = fn(a[0]), fn(a[1])
    return widen(x, y, ulps=ulps) if increasing else widen(y, x, ulps=ulps)


def _int_pow(a, n: int):
    lo, hi = a
    if n == 0:
        return np.float64(1.0), np.float64(1.0)
    if n < 0:
        return _recip(_int_pow(a, -n))
    with np.errstate(over="ignore", invalid="ignore"):
        plo, phi = lo**n, hi**n
    if n % 2:
        return widen(plo, phi, ulps=2.0 * n)
    straddle = (lo < 0) & (hi > 0)
    out_lo = np.where(straddle, 0.0, np.minimum(plo, phi))
    out_hi = np.maximum(plo, phi)
    return widen(out_lo, out_hi, ulps=2.0 * n)


def _real_pow(a, e: float):
    lo = np.maximum(a[0], 0.0)  # negative bases give NaN at run time (caught there)
    hi = np.maximum(a[1], 0.0)
    with np.errstate(all="ignore"):
        x, y = lo**e, hi**e
    if e > 0:
        return widen(x, y, ulps=8.0)
    return widen(y, x, ulps=8.0)


def _sin(a, shift=0.0):
    """sin over [lo, hi] (cos is sin shifted by pi/2)."""
    lo, hi = a[0] + shift, a[1] + shift
    with np.errstate(invalid="ignore"):
        s_lo, s_hi = np.sin(lo), np.sin(hi)
    out_lo = np.minimum(s_lo, s_hi)
    out_hi = np.maximum(s_lo, s_hi)
    two_pi = 2 * math.pi
    wide = ~((hi - lo) < two_pi)  # includes inf/nan
    with np.errstate(invalid="ignore"):
        # a maximum at pi/2 + 2k pi inside [lo, hi]?
        k = np.ceil((lo - math.pi / 2) / two_pi)
        has_max = (math.pi / 2 + two_pi * k) <= hi
        k = np.ceil((lo + math.pi / 2) / two_pi)
        has_min = (-math.pi / 2 + two_pi * k) <= hi
    out_hi = np.where(wide | has_max, 1.0, out_hi)
    out_lo = np.where(wide | has_min, -1.0, out_lo)
    lo_w, hi_w = widen(out_lo, out_hi, ulps=8.0)
    # rounding of the shifted argument: a few ulp of |x| (sin is 1-Lipschitz)
    slack = 4 * EPS * np.maximum(np.abs(a[0]), np.abs(a[1]))
    slack = np.where(np.isfinite(slack), slack, 0.0)
    return np.maximum(lo_w - slack, -1.0), np.minimum(hi_w + slack, 1.0)


def _tan(a):
    lo, hi = a
    with np.errstate(invalid="ignore"):
        k_lo = np.floor((lo + math.pi / 2) / math.pi)
        k_hi = np.floor((hi + math.pi / 2) / math.pi)
        same = (k_lo == k_hi) & np.isfinite(lo) & np.isfinite(hi)
        t_lo, t_hi = np.tan(lo), np.tan(hi)
    out_lo = np.where(same, t_lo, -np.inf)
    out_hi = np.where(same, t_hi, np.inf)
    return widen(out_lo, out_hi, ulps=8.0)


def _abs(a):
    lo, hi = a
    straddle = (lo < 0) & (hi > 0)
    alo, ahi = np.abs(lo), np.abs(hi)
    return np.where(straddle, 0.0, np.minimum(alo, ahi)), np.maximum(alo, ahi)


def _cosh(a):
    lo, hi = a
    with np.errstate(over="ignore"):
        c_lo, c_hi = np.cosh(lo), np.cosh(hi)
    straddle = (lo < 0) & (hi > 0)
    return widen(np.where(straddle, 1.0, np.minimum(c_lo, c_hi)), np.maximum(c_lo, c_hi), None, 8)


def _atan2(y, x):
    # atan2(y, x) over the box: for x > 0 it is atan(y / x) (monotone in each argument)
    lo = np.full(np.broadcast(y[0], x[0]).shape, -math.pi)
    hi = np.full_like(lo, math.pi)
    pos = x[0] > 0
    with np.errstate(all="ignore"):
        cands = [np.arctan2(yy, xx) for yy in y for xx in x]
    c_lo = np.minimum.reduce(cands)
    c_hi = np.maximum.reduce(cands)
    lo = np.where(pos, c_lo, lo)
    hi = np.where(pos, c_hi, hi)
    return widen(lo, hi, ulps=8.0)


@functools.cache
def _function_rules():
    """The monotone functions and the argument domains (sympy function -> rule), built at
    the first bound of an expression: sympy is imported only when expressions are used."""
    import sympy

    monotone_up = {
        sympy.exp: np.exp,
        sympy.log: np.log,
        sympy.atan: np.arctan,
        sympy.sinh: np.sinh,
        sympy.tanh: np.tanh,
        sympy.asinh: np.arcsinh,
        sympy.floor: np.floor,
        sympy.ceiling: np.ceil,
        sympy.sign: np.sign,
    }
    domain = {  # argument domains: the bound is taken over the domain's part of the range
        sympy.log: (0.0, np.inf),
        sympy.asin: (-1.0, 1.0),
        sympy.acos: (-1.0, 1.0),
        sympy.acosh: (1.0, np.inf),
        sympy.atanh: (-1.0, 1.0),
    }
    return monotone_up, domain


def interval_eval(expr, env: dict, cache: dict | None = None):
    """Bounds ``(lo, hi)`` of ``expr`` when each symbol ``s`` ranges over ``env[s]``.

    Parameters
    ----------
    expr : sympy.Expr
    env : dict
        Symbol -> ``(lo, hi)`` arrays (broadcastable against each other).
    cache : dict, optional
        Memo of sub-expressions (shared between expressions over the same ``env``).

    Returns
    -------
    lo, hi : ndarray
        Broadcast to the shape of the ranges in ``env``; ``-inf``/``inf`` where no finite
        bound is known.

    Raises
    ------
    Unsupported
        For operations without a rule, or a symbol missing from ``env``.

    Examples
    --------
    >>> import sympy
    >>> x = sympy.Symbol("x")
    >>> lo, hi = interval_eval(x**2 - 2 * x, {x: (np.array([0.0]), np.array([3.0]))})
    >>> float(lo[0]) <= -1.0, float(hi[0]) >= 3.0   # true range [-1, 3]; natural bound [-6, 9]
    (True, True)
    """
    cache = {} if cache is None else cache
    lo, hi = _eval(expr, env, cache)
    shape = np.broadcast_shapes(*(np.shape(v) for pair in env.values() for v in pair))
    return np.broadcast_to(lo, shape), np.broadcast_to(hi, shape)


def _eval(e, env, cache):
    if e in cache:
        return cache[e]
    out = _eval_uncached(e, env, cache)
    cache[e] = out
    return out


def _eval_uncached(e, env, cache):
    import sympy

    if e.is_Symbol:
        if e not in env:
            raise Unsupported(f"symbol {e} has no range (unbound parameter?)")
        lo, hi = env[e]
        return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if e.is_Number or e.is_NumberSymbol:
        if not e.is_real or not e.is_finite:
            raise Unsupported(f"{e} is not a finite real number")
        return _const(e)
    if isinstance(e, sympy.Piecewise):
        vals = [_eval(branch, env, cache) for branch, _cond in e.args]
        shape = np.broadcast_shapes(*(np.shape(v[0]) for v in vals))
        lo = np.minimum.reduce([np.broadcast_to(v[0], shape) for v in vals])
        hi = np.maximum.reduce([np.broadcast_to(v[1], shape) for v in vals])
        return lo, hi
    if not isinstance(e, sympy.Expr):
        raise Unsupported(f"no interval rule for {type(e).__name__}")
    args = [_eval(a, env, cache) for a in e.args] if not e.is_Pow else None
    if e.is_Add:
        lo = sum(a[0] for a in args)
        hi = sum(a[1] for a in args)
        mag = sum(np.maximum(np.abs(a[0]), np.abs(a[1])) for a in args)
        return widen(lo, hi, mag, ulps=2.0 * len(args))
    if e.is_Mul:
        acc = args[0]
        for a in args[1:]:
            acc = _mul(acc, a)
        return acc
    if e.is_Pow:
        base, ex = e.args
        b = _eval(base, env, cache)
        if ex.is_Number and ex.is_real:
            e_val = float(ex)
            if e_val < 0:
                _flag(cache, (b[0] <= 0) & (b[1] >= 0))  # may divide by zero
            if e_val.is_integer() and abs(e_val) < 2**31:  # x**2.0: defined for x < 0 too
                return _int_pow(b, int(e_val))
            _flag(cache, b[0] < 0)  # a real power of a negative number
            return _real_pow(b, e_val)
        return _eval(sympy.exp(ex * sympy.log(base), evaluate=False), env, cache)
    func = e.func
    monotone_up, domain = _function_rules()
    if func in monotone_up or func in domain:
        (a,) = args
        if func in domain:
            dlo, dhi = domain[func]
            inside_lo = a[0] > dlo if func is sympy.log else a[0] >= dlo
            _flag(cache, ~(inside_lo & (a[1] <= dhi)))
            a = (np.clip(a[0], dlo, dhi), np.clip(a[1], dlo, dhi))
        if func is sympy.log:
            return _monotone(np.log, a)
        if func is sympy.asin:
            return _monotone(np.arcsin, a)
        if func is sympy.acos:
            return _monotone(np.arccos, a, increasing=False)
        if func is sympy.acosh:
            return _monotone(np.arccosh, a)
        if func is sympy.atanh:
            return _monotone(np.arctanh, a)
        return _monotone(monotone_up[func], a)
    if func is sympy.sin:
        return _sin(args[0])
    if func is sympy.cos:
        return _sin(args[0], shift=math.pi / 2)
    if func is sympy.tan:
        return _tan(args[0])
    if func is sympy.cosh:
        return _cosh(args[0])
    if func is sympy.erf:
        from scipy import special

        return _monotone(special.erf, args[0])
    if func is sympy.Abs:
        return _abs(args[0])
    if func is sympy.atan2:
        return _atan2(args[0], args[1])
    if func in (sympy.Min, sympy.Max):
        red = np.minimum if func is sympy.Min else np.maximum
        lo = args[0][0]
        hi = args[0][1]
        for a in args[1:]:
            lo, hi = red(lo, a[0]), red(hi, a[1])
        return lo, hi
    raise Unsupported(f"no interval rule for {func}")
