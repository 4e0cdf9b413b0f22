"""Sympy expressions as JSON trees of allowed nodes, built back by explicit constructors.

Nothing here parses text: no ``eval``, no :func:`sympy.sympify`, no ``parse_expr``. A tree
is made only of the nodes below, and anything else is refused with
:class:`~transfuse.io.errors.RecipeError`.

==========================================  ==============================================
JSON                                        sympy
==========================================  ==============================================
``3`` (integer)                             ``Integer(3)``
``0.25`` (a number with ``.`` or ``e``)     ``Float(0.25)`` (53 bits, bit for bit)
``[1, 3]``                                  ``Rational(1, 3)``
``{"float": [m, e, p]}``                    ``Float`` ``m·2**e`` of ``p`` bits precision
``{"symbol": "theta", "real": true}``       ``Symbol("theta", real=True)``
``{"op": "pi"}``, ``{"op": "E"}``           ``pi``, ``E``
``{"op": "Add", "args": [a, b, ...]}``      ``Add(a, b, ...)``; also ``Mul``
``{"op": "Pow", "args": [a, b]}``           ``Pow(a, b)``
``{"op": "sin", "args": [a]}``              ``sin(a)``, and every name of :data:`FUNCTIONS`
==========================================  ==============================================

Nodes are rebuilt with ``evaluate=False`` from exactly the arguments that were written, so
an expression comes back identical to the one encoded, and loading does no arithmetic.
"""

from __future__ import annotations

import math

import sympy

from .errors import RecipeError
from .safe_files import quote_keys

__all__ = [
    "ASSUMPTIONS",
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_EXACT_BITS",
    "MAX_EXPONENT",
    "MAX_EXPR_NODES",
    "MAX_FLOAT_EXPONENT",
    "MAX_FLOAT_PRECISION",
    "MAX_INT_BITS",
    "MAX_SYMBOL_NAME",
    "Budget",
    "decode_expr",
    "encode_expr",
]

#: Largest number of nodes in one expression tree.
MAX_EXPR_NODES = 10_000
#: Largest magnitude of an integer, in bits (also for both parts of a rational).
MAX_INT_BITS = 256
#: Largest magnitude of an integer exponent in ``Pow``.
MAX_EXPONENT = 1_000
#: Largest size, in bits, that exact arithmetic on an expression may build: a bound on every
#: integer or rational sympy could compute from it (symbols counted as small numbers), and
#: on the magnitude (log2) of every constant subexpression.
MAX_EXACT_BITS = 2**14
#: Largest precision, in bits, of a float of non-standard precision.
MAX_FLOAT_PRECISION = MAX_INT_BITS
#: Largest magnitude of the binary exponent of a float of non-standard precision.
MAX_FLOAT_EXPONENT = 100_000
#: Longest symbol name.
MAX_SYMBOL_NAME = 64
#: The assumptions a symbol may carry.
ASSUMPTIONS = ("real", "positive")

#: Allowed functions: name -> (sympy class or constructor, number of arguments or None for
#: two or more).
FUNCTIONS = {
    "sin": (sympy.sin, 1),
    "cos": (sympy.cos, 1),
    "tan": (sympy.tan, 1),
    "asin": (sympy.asin, 1),
    "acos": (sympy.acos, 1),
    "atan": (sympy.atan, 1),
    "atan2": (sympy.atan2, 2),
    "sinh": (sympy.sinh, 1),
    "cosh": (sympy.cosh, 1),
    "tanh": (sympy.tanh, 1),
    "exp": (sympy.exp, 1),
    "log": (sympy.log, 1),
    "Abs": (sympy.Abs, 1),
    "sign": (sympy.sign, 1),
    "floor": (sympy.floor, 1),
    "ceiling": (sympy.ceiling, 1),
    "Min": (sympy.Min, None),
    "Max": (sympy.Max, None),
}
#: Accepted on reading only: ``sqrt(a)`` is read as ``Pow(a, 1/2)``, which is how sympy
#: stores it and how it is written.
_READ_ONLY = {"sqrt": (lambda a, evaluate: sympy.Pow(a, sympy.S.Half, evaluate=evaluate), 1)}
#: Allowed constants.
CONSTANTS = {"pi": sympy.pi, "E": sympy.E}

_OPS = {"Add": sympy.Add, "Mul": sympy.Mul}
_NAMES = {cls: name for name, (cls, _) in FUNCTIONS.items()}


class Budget:
    """A count of nodes left to spend, shared across one recipe.

    Examples
    --------
    >>> b = Budget(2, "expression nodes")
    >>> b.spend("x"); b.spend("x")
    >>> b.spend("transform.angle")
    Traceback (most recent call last):
    ...
    transfuse.io.errors.RecipeError: transform.angle: more than 2 expression nodes
    """

    def __init__(self, limit: int, what: str, parent: Budget | None = None):
        self.limit = limit
        self.left = limit
        self.what = what
        self.parent = parent

    def spend(self, path: str) -> None:
        """Take one node (from the parent budget too, if any); raise :class:`RecipeError`
        once a limit is passed."""
        self.left -= 1
        if self.left < 0:
            raise RecipeError(f"more than {self.limit} {self.what}", path)
        if self.parent is not None:
            self.parent.spend(path)


def _check_int(value: int, path: str) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise RecipeError(f"integer of {value.bit_length()} bits exceeds {MAX_INT_BITS}", path)
    return value


def _is_int(value) -> bool:
    return type(value) is int


# -- encoding ------------------------------------------------------------------------------
def encode_expr(expr, path: str = "expr", budget: Budget | None = None, depth: int = 0):
    """A JSON tree for a sympy expression made of allowed nodes.

    Parameters
    ----------
    expr : sympy.Expr
    path : str
        Where the expression sits in the recipe, for messages.
    budget : Budget, optional
        A count shared with the rest of the recipe; this expression may in any case use
        at most :data:`MAX_EXPR_NODES`.
    depth : int
        Nesting depth already used above ``expr``.

    Returns
    -------
    int, float, list or dict

    Raises
    ------
    RecipeError
        For a node that is not allowed (``I``, ``oo``, ``Dummy``, an unlisted function, ...),
        or a value over a limit.

    Examples
    --------
    >>> import sympy
    >>> theta = sympy.Symbol("theta", real=True)
    >>> encode_expr(sympy.cos(theta) / 2)
    {'op': 'Mul', 'args': [[1, 2], {'op': 'cos', 'args': [{'symbol': 'theta', 'real': True}]}]}
    """
    if depth == 0:
        budget = Budget(MAX_EXPR_NODES, "nodes in one expression", budget)
        tree = encode_expr(expr, path, budget, 1)
        check_size(expr, path)
        return tree
    budget.spend(path)
    if depth > 49:
        raise RecipeError("expression is nested too deeply", path)
    if isinstance(expr, sympy.Integer):
        return _check_int(int(expr), path)
    if isinstance(expr, sympy.Rational):
        return [_check_int(int(expr.p), path), _check_int(int(expr.q), path)]
    if isinstance(expr, sympy.Float):
        return _encode_float(expr, path)
    if type(expr) is sympy.Symbol:
        return _encode_symbol(expr, path)
    for name, const in CONSTANTS.items():
        if expr is const:
            return {"op": name}
    if type(expr) in _NAMES:
        name = _NAMES[type(expr)]
    elif type(expr) in (sympy.Add, sympy.Mul, sympy.Pow):
        name = type(expr).__name__
    else:
        raise RecipeError(
            f"cannot write {type(expr).__name__} ({sympy.srepr(expr)[:80]}): allowed are "
            "numbers, symbols, Add, Mul, Pow, pi, E and " + ", ".join(FUNCTIONS),
            path,
        )
    args = [encode_expr(a, f"{path}.args[{i}]", budget, depth + 1) for i, a in enumerate(expr.args)]
    if name == "Pow":
        _check_pow(expr.args[0], expr.args[1], path)
    return {"op": name, "args": args}


def _encode_float(expr, path):
    sign, man, exp, _ = expr._mpf_
    if man == 0 and exp != 0:
        raise RecipeError(f"non-finite number {expr} is not allowed", path)
    if expr._prec == 53:
        value = float(expr)
        if math.isfinite(value) and sympy.Float(value)._mpf_ == expr._mpf_:
            return value
    mantissa = -man if sign else man
    if expr._prec > MAX_FLOAT_PRECISION or abs(exp) > MAX_FLOAT_EXPONENT:
        raise RecipeError(f"float {expr} is over the precision or exponent limit", path)
    return {"float": [_check_int(mantissa, path), exp, expr._prec]}


def _encode_symbol(expr, path):
    _check_name(expr.name, path)
    given = dict(getattr(expr, "_assumptions_orig", expr.assumptions0))
    extra = sorted(set(given) - set(ASSUMPTIONS))
    if extra:
        raise RecipeError(
            f"symbol {expr.name!r} has assumptions {extra}; only {list(ASSUMPTIONS)} are allowed",
            path,
        )
    out = {"symbol": expr.name}
    out.update({k: bool(v) for k, v in given.items()})  # in the given order, as srepr shows
    return out


# -- decoding ------------------------------------------------------------------------------
def decode_expr(tree, path: str = "expr", budget: Budget | None = None):
    """Build the sympy expression a JSON tree describes, by explicit constructors only.

    Parameters
    ----------
    tree : int, float, list or dict
        As produced by :func:`encode_expr` (already parsed JSON).
    path : str
        Where the tree sits in the recipe, for messages.
    budget : Budget, optional
        A count shared with the rest of the recipe; this expression may in any case use
        at most :data:`MAX_EXPR_NODES`.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    RecipeError
        For any node that is not allowed, a wrong shape, or a value over a limit.

    Examples
    --------
    >>> decode_expr({"op": "Mul", "args": [[1, 2], {"symbol": "theta", "real": True}]})
    theta/2
    >>> decode_expr({"op": "__import__", "args": ["os"]})
    Traceback (most recent call last):
    ...
    transfuse.io.errors.RecipeError: expr: unknown operation '__import__'
    """
    expr = _decode(tree, path, Budget(MAX_EXPR_NODES, "nodes in one expression", budget), 0)
    check_size(expr, path)
    return expr


def _decode(tree, path, budget, depth):
    budget.spend(path)
    if depth > 48:
        raise RecipeError("expression is nested too deeply", path)
    if _is_int(tree):
        return sympy.Integer(_check_int(tree, path))
    if type(tree) is float:
        if tree != tree or tree in (float("inf"), float("-inf")):
            raise RecipeError("non-finite number is not allowed", path)
        return sympy.Float(tree)
    if type(tree) is list:
        if len(tree) != 2 or not all(_is_int(v) for v in tree):
            raise RecipeError("a rational must be a list of two integers [p, q]", path)
        p, q = (_check_int(v, path) for v in tree)
        if q == 0:
            raise RecipeError("a rational must not have denominator 0", path)
        return sympy.Rational(p, q)
    if type(tree) is not dict:
        raise RecipeError(
            f"an expression node must be a number, [p, q] or an object, got {type(tree).__name__}",
            path,
        )
    if "symbol" in tree:
        return _decode_symbol(tree, path)
    if "float" in tree:
        return _decode_float(tree, path)
    if "op" in tree:
        return _decode_op(tree, path, budget, depth)
    raise RecipeError(
        f"an expression object needs 'symbol', 'float' or 'op', got {_keys(tree)}", path
    )


def _keys(obj) -> str:
    return "{" + ", ".join(repr(k)[:40] for k in list(obj)[:8]) + "}"


def _check_name(name, path):
    if type(name) is not str or not name.isidentifier() or len(name) > MAX_SYMBOL_NAME:
        raise RecipeError(
            f"symbol name {name!r:.80} must be an identifier of at most {MAX_SYMBOL_NAME} "
            "characters",
            path,
        )


def _decode_symbol(tree, path):
    extra = sorted(set(tree) - {"symbol", *ASSUMPTIONS})
    if extra:
        raise RecipeError(
            f"unknown symbol keys {quote_keys(extra)}; allowed assumptions are {list(ASSUMPTIONS)}",
            path,
        )
    name = tree["symbol"]
    _check_name(name, f"{path}.symbol")
    assumptions = {}
    for key in tree:  # keep the written order: it is part of the symbol's srepr
        if key != "symbol":
            if type(tree[key]) is not bool:
                raise RecipeError(f"assumption {key!r} must be true or false", f"{path}.{key}")
            assumptions[key] = tree[key]
    try:
        return sympy.Symbol(name, **assumptions)
    except Exception as exc:  # e.g. contradictory assumptions
        raise RecipeError(f"bad symbol: {exc}", path) from exc


def _decode_float(tree, path):
    value = tree["float"]
    if set(tree) != {"float"} or type(value) is not list or len(value) != 3:
        raise RecipeError("a float must be {'float': [mantissa, exponent, precision]}", path)
    if not all(_is_int(v) for v in value):
        raise RecipeError("mantissa, exponent and precision must be integers", path)
    man, exp, prec = value
    _check_int(man, path)
    if (
        not 1 <= prec <= MAX_FLOAT_PRECISION
        or abs(exp) > MAX_FLOAT_EXPONENT
        or (abs(man).bit_length() > prec)
    ):
        raise RecipeError(
            f"precision must be in 1..{MAX_FLOAT_PRECISION}, the mantissa fit in it, and "
            f"|exponent| be at most {MAX_FLOAT_EXPONENT}",
            path,
        )
    if man == 0:
        return sympy.Float(0, precision=prec)
    # (sign, mantissa, exponent): sympy's documented raw form, built without arithmetic
    return sympy.Float((int(man < 0), abs(man), exp), precision=prec)


def _decode_op(tree, path, budget, depth):
    extra = sorted(set(tree) - {"op", "args"})
    if extra:
        raise RecipeError(f"unknown keys {quote_keys(extra)} in an operation", path)
    name = tree["op"]
    if type(name) is not str:
        raise RecipeError("'op' must be a string", path)
    if name in CONSTANTS:
        if tree.get("args", []) != []:
            raise RecipeError(f"constant {name} takes no arguments", path)
        return CONSTANTS[name]
    if name in _OPS or name == "Pow":
        build, nargs = (_OPS.get(name, sympy.Pow), 2 if name == "Pow" else None)
    elif name in FUNCTIONS or name in _READ_ONLY:
        build, nargs = FUNCTIONS.get(name) or _READ_ONLY[name]
    else:
        raise RecipeError(f"unknown operation {name!r:.60}", path)
    raw = tree.get("args")
    if type(raw) is not list:
        raise RecipeError(f"{name} needs a list 'args'", path)
    if (nargs is None and len(raw) < 2) or (nargs is not None and len(raw) != nargs):
        want = "two or more" if nargs is None else str(nargs)
        raise RecipeError(f"{name} takes {want} arguments, got {len(raw)}", path)
    args = [_decode(a, f"{path}.args[{i}]", budget, depth + 1) for i, a in enumerate(raw)]
    if name == "Pow":
        _check_pow(args[0], args[1], path)
    try:
        return build(*args, evaluate=False)
    except Exception as exc:  # sympy refusing the arguments
        raise RecipeError(f"{name}: {type(exc).__name__}: {exc}", path) from exc


def _check_pow(base, exponent, path):
    if base.is_Number and base.is_zero and exponent.is_Number and exponent.is_negative:
        raise RecipeError("zero to a negative power (a division by zero)", path)
    if isinstance(exponent, sympy.Integer):
        if abs(int(exponent)) > MAX_EXPONENT:
            raise RecipeError(
                f"integer exponent {int(exponent)} exceeds the limit {MAX_EXPONENT}", path
            )
        if isinstance(base, sympy.Rational):
            raise RecipeError("a rational to an integer power must be written as its value", path)


# -- bounding exact arithmetic -----------------------------------------------------------------
_INF = math.inf
_BOUNDED = (sympy.sin, sympy.cos, sympy.tanh, sympy.atan, sympy.asin, sympy.acos, sympy.sign)
_GROWING = (sympy.exp, sympy.sinh, sympy.cosh)


def _log2_abs(number) -> float:
    """log2 of ``|number|`` for a sympy Integer, Rational or Float (-inf for zero)."""
    if isinstance(number, sympy.Float):
        sign, man, exp, bc = number._mpf_
        return -_INF if man == 0 else float(exp + bc)
    p, q = abs(int(number.p)), int(number.q)
    return -_INF if p == 0 else float(p.bit_length() - q.bit_length() + 1)


class _Size:
    """Bounds of one subexpression: ``bits`` — the size of any exact number sympy may build
    from it (symbols, floats and constants count as one bit; this also bounds log2 of every
    exact integer or rational it can evaluate to); ``mag`` — for a constant, an upper bound
    of log2 of its absolute value, or None when unknown (no lower bound for a divisor);
    ``const`` — no free symbols."""

    __slots__ = ("bits", "mag", "const")

    def __init__(self, bits, mag, const):
        self.bits, self.mag, self.const = bits, mag, const

    def too_big(self) -> bool:
        return self.bits > MAX_EXACT_BITS or (
            self.const and self.mag is not None and self.mag > MAX_EXACT_BITS
        )


def check_size(expr, path: str = "expr") -> None:
    """Refuse an expression on which exact arithmetic could build numbers of more than
    :data:`MAX_EXACT_BITS` bits, or whose constant parts may exceed ``2**MAX_EXACT_BITS``.

    Nested powers of numbers (``((1 + 2)**1000)**1000``), powers with huge computed
    exponents (``3**floor(pi * 10**300)``) and towers (``exp(exp(exp(1000)))``) would make
    sympy compute for hours once the expression is evaluated (e.g. by ``cos`` when a matrix
    is built); the bound is computed from the tree alone, before any evaluation.

    Raises
    ------
    RecipeError

    Examples
    --------
    >>> import sympy
    >>> three = sympy.Add(1, 2, evaluate=False)
    >>> check_size(sympy.Pow(three, 1000, evaluate=False))
    >>> check_size(sympy.Pow(sympy.Pow(three, 1000, evaluate=False), 1000, evaluate=False))
    Traceback (most recent call last):
    ...
    transfuse.io.errors.RecipeError: expr: exact arithmetic on this expression could build ...
    """
    if _size(expr, {}).too_big():
        raise RecipeError(
            "exact arithmetic on this expression could build numbers of more than "
            f"{MAX_EXACT_BITS} bits (powers of powers, huge or unbounded exponents, "
            "floor or ceiling of an unbounded value, towers of exp); write the value as a "
            "number",
            path,
        )


def _size(expr, memo) -> _Size:
    key = id(expr)
    if key not in memo:
        args = [_size(a, memo) for a in expr.args]
        out = _node_size(expr, args)
        if out.too_big():
            out.bits = _INF  # stop here: every node above is too big as well
        memo[key] = out
    return memo[key]


def _combine(mags, how):
    return None if any(m is None for m in mags) else how(mags)


def _node_size(expr, args) -> _Size:
    if isinstance(expr, sympy.Rational):
        bits = max(1, int(abs(expr.p)).bit_length() + int(expr.q).bit_length())
        return _Size(bits, max(_log2_abs(expr), 0.0), True)
    if isinstance(expr, sympy.Float):
        return _Size(1, max(_log2_abs(expr), 0.0), True)
    if isinstance(expr, sympy.Symbol):
        return _Size(1, None, False)
    if not args:  # pi, E and other constants
        return _Size(1, 2.0, True)
    const = all(a.const for a in args)
    bits = sum(a.bits for a in args)
    mags = [a.mag for a in args]
    if isinstance(expr, sympy.Add):
        return _Size(bits, _combine(mags, lambda m: max(m) + math.log2(len(m))), const)
    if isinstance(expr, sympy.Mul):
        return _Size(bits, _combine(mags, sum), const)
    if isinstance(expr, sympy.Pow):
        return _pow_size(expr, *args)
    if isinstance(expr, sympy.floor | sympy.ceiling):
        (a,) = args
        if not a.const:
            return _Size(a.bits, None, False)
        # sympy computes the integer: it has as many bits as the value's magnitude
        made = _INF if a.mag is None else a.mag + 1
        return _Size(max(a.bits, made), None if a.mag is None else a.mag + 1, True)
    if isinstance(expr, _BOUNDED) or isinstance(expr, sympy.atan2):
        return _Size(bits, 2.0, const)
    if isinstance(expr, _GROWING):
        (m,) = mags
        return _Size(bits, None if m is None else (1.45 * 2.0**m if m < 64 else _INF), const)
    if isinstance(expr, sympy.Abs | sympy.Min | sympy.Max):
        return _Size(bits, _combine(mags, max), const)
    return _Size(bits, None, const)  # log, tan: no bound without a lower bound


def _pow_size(expr, base, exponent) -> _Size:
    const = base.const and exponent.const
    b, e = expr.args
    if isinstance(e, sympy.Rational | sympy.Float):
        k = abs(float(e))
        if k == 0:
            mag = 0.0
        elif float(e) > 0:
            mag = None if base.mag is None else base.mag * k
        elif isinstance(b, sympy.Rational | sympy.Float) and not b.is_zero:  # a known base
            mag = abs(_log2_abs(b)) * k
        else:
            mag = None  # a base near zero to a negative power: no bound
        if isinstance(e, sympy.Rational):
            bits = base.bits * max(1, math.ceil(k))
        else:
            bits = base.bits + 1  # a float power: floating-point arithmetic
        return _Size(bits, mag, const)
    if not exponent.const:
        return _Size(base.bits + exponent.bits, None, const)
    # A constant exponent: its magnitude bounds the size of an exact power and the
    # magnitude of the result; without a bound the power is refused.
    log_k = _INF if exponent.mag is None else exponent.mag
    k = 2.0**log_k if log_k < 64 else _INF
    mag = None if base.mag is None else base.mag * k
    return _Size(base.bits * max(1.0, k) + exponent.bits, mag, const)
