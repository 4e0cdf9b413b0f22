"""Maps given by sympy expressions: :class:`ExprMap` and its numerical inverse
:class:`InverseExprMap`."""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ..params import as_scalar
from ..sympy_types import is_sympy
from .base import NonlinearTransform, evaluator


def _as_symbols(coords) -> tuple:
    import sympy

    if isinstance(coords, str):
        coords = coords.replace(",", " ").split()
    elif isinstance(coords, sympy.Symbol):
        coords = (coords,)
    try:
        items = list(coords)
    except TypeError as exc:
        raise ValueError(f"coords={coords!r} must be a sequence of sympy symbols") from exc
    out = []
    for c in items:
        if isinstance(c, str):
            c = sympy.Symbol(c, real=True)
        if not isinstance(c, sympy.Symbol):
            raise ValueError(f"coords={coords!r} must be a sequence of sympy symbols or names")
        out.append(c)
    if not out:
        raise ValueError("coords must name at least one coordinate")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"coords={tuple(names)} repeats a name")
    return tuple(out)


def _non_real() -> tuple:
    """The sympy constants that make an expression non-real or non-finite."""
    import sympy

    return (sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


def _as_expression(e, where: str, local: dict):
    import sympy

    if isinstance(e, str):
        try:
            e = sympy.sympify(e, locals=local)
        except (sympy.SympifyError, SyntaxError, TypeError) as exc:
            raise ValueError(f"{where}={e!r} is not a valid expression: {exc}") from exc
    elif isinstance(e, numbers.Real) and not isinstance(e, bool):
        if not math.isfinite(float(e)):
            raise ValueError(f"{where}={e!r} must be finite")
        e = sympy.Float(float(e)) if not float(e).is_integer() else sympy.Integer(int(e))
    if not isinstance(e, sympy.Expr):
        raise ValueError(f"{where}={e!r} is not a sympy expression")
    undefined = sorted(str(f) for f in e.atoms(sympy.core.function.AppliedUndef))
    if undefined:
        raise ValueError(f"{where}: unknown function(s) {', '.join(undefined)}")
    if e.has(*_non_real()):
        raise ValueError(f"{where}={e} is not real and finite")
    return e


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ExprMap(NonlinearTransform):
    """A map given by sympy expressions: input coordinate ``k`` is ``expressions[k]``
    evaluated at the output point whose coordinates are ``coords`` (in axis order).

    Other symbols in the expressions are free parameters: bind them with
    :meth:`~transfuse.Transform.bind` (``.bind(k=0.1)``) as for the affine transforms. The
    expressions are compiled once with :func:`sympy.lambdify` (numpy) and evaluated per
    output chunk; footprints come from interval arithmetic over each chunk
    (:mod:`transfuse.planner.interval`).

    Parameters
    ----------
    expressions : sequence of sympy expressions or strings
        One per input axis (``len(expressions) == len(coords)``). Strings are parsed by
        :func:`sympy.sympify` with ``coords`` (and ``parameters``) in scope.
    coords : sequence of sympy.Symbol or str
        The symbols standing for the output axes, in axis order (a string like ``"y x"`` is
        split into real symbols). A symbol in the expressions with the name of a coordinate
        but other assumptions is taken to be that coordinate.
    parameters : sequence of str or sympy.Symbol, optional
        The names of the free parameters. When given, any other symbol is an error; when
        omitted, every symbol that is not a coordinate is a parameter.

    Raises
    ------
    ValueError
        Wrong number of expressions, an unknown symbol (with ``parameters``), an undefined
        function, a non-real constant, or a non-expression.

    Examples
    --------
    A barrel distortion about (10, 10) with a free strength ``k``:

    >>> import transfuse
    >>> y, x, k = transfuse.symbols("y x k")
    >>> r2 = (y - 10) ** 2 + (x - 10) ** 2
    >>> B = ExprMap([10 + (y - 10) * (1 + k * r2), 10 + (x - 10) * (1 + k * r2)], (y, x))
    >>> sorted(map(str, B.free_symbols))
    ['k']
    >>> B.bind(k=0.01)([[10.0, 12.0]])
    array([[10.  , 12.08]])
    """

    expressions: tuple = ()
    coords: tuple = ()
    parameters: tuple | None = None

    def __post_init__(self):
        import sympy

        coords = _as_symbols(self.coords)
        params = None
        if self.parameters is not None:
            items = (
                self.parameters.replace(",", " ").split()
                if isinstance(self.parameters, str)
                else list(self.parameters)
            )
            params = []
            for p in items:
                name = p.name if isinstance(p, sympy.Symbol) else p
                if not isinstance(name, str):
                    raise ValueError(f"parameters={self.parameters!r} must be names or symbols")
                params.append(name)
            params = tuple(sorted(set(params)))
            clash = set(params) & {c.name for c in coords}
            if clash:
                raise ValueError(f"parameters {sorted(clash)} are also coordinates")
        exprs = self.expressions
        if isinstance(exprs, str | sympy.Basic) or not hasattr(exprs, "__len__"):
            raise ValueError(
                f"expressions={exprs!r} must be a sequence with one expression per input axis"
            )
        exprs = list(exprs)
        if len(exprs) != len(coords):
            raise ValueError(
                f"expressions: got {len(exprs)} expression(s) for {len(coords)} coordinate(s) "
                f"{tuple(c.name for c in coords)}; give one expression per input axis"
            )
        local = {c.name: c for c in coords}
        for name in params or ():
            local.setdefault(name, sympy.Symbol(name, real=True))
        by_name = {c.name: c for c in coords}
        out = []
        for i, e in enumerate(exprs):
            e = _as_expression(e, f"expressions[{i}]", local)
            swap = {
                s: by_name[s.name]
                for s in e.free_symbols
                if s.name in by_name and s != by_name[s.name]
            }
            if swap:
                e = e.xreplace(swap)
            if params is not None:
                unknown = sorted(
                    s.name for s in e.free_symbols if s not in coords and s.name not in params
                )
                if unknown:
                    raise ValueError(
                        f"expressions[{i}]: unknown symbol(s) {', '.join(unknown)}; coordinates "
                        f"are {[c.name for c in coords]}, parameters {list(params)}"
                    )
            out.append(e)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "expressions", tuple(out))

    @property
    def ndim(self):
        return len(self.coords)

    @property
    def free_symbols(self):
        out: frozenset = frozenset()
        for e in self.expressions:
            out |= e.free_symbols
        return frozenset(out - set(self.coords))

    def params(self):
        return {
            "expressions": self.expressions,
            "coords": self.coords,
            "parameters": self.parameters,
        }

    def _substitute(self, subs):
        import sympy

        subs = {k: v for k, v in subs.items() if k not in self.coords}
        names = {c.name for c in self.coords}
        for k, v in subs.items():
            clash = sorted(s.name for s in getattr(v, "free_symbols", ()) if s.name in names)
            if clash:
                raise ValueError(
                    f"bind({k}=...): the value uses the coordinate(s) {clash} of this map; "
                    "a parameter cannot become a coordinate"
                )
        exprs = tuple(sympy.sympify(e.subs(subs)) for e in self.expressions)
        for e in exprs:
            if e.has(*_non_real()):
                raise ValueError(f"binding gives a non-real expression {e}")
        return ExprMap(exprs, self.coords, self.parameters)

    def __repr__(self):
        names = ", ".join(c.name for c in self.coords)
        body = ", ".join(str(e) for e in self.expressions)
        return f"ExprMap(({names}) -> ({body}))"

    # -- evaluation ---------------------------------------------------------------------
    def _check_bound(self):
        free = self.free_symbols
        if free:
            names = ", ".join(sorted(s.name for s in free))
            raise ValueError(f"ExprMap: free symbols {names} are unbound; bind them first")

    def jacobian(self, coords) -> np.ndarray:
        """The Jacobian ``d expressions[i] / d coords[j]`` at points ``(ndim, ...)``;
        shape ``(ndim, ndim, ...)``."""
        self._check_bound()
        return evaluator().jacobian(self, np.asarray(coords, dtype=np.float64))

    # -- inverse ------------------------------------------------------------------------
    def inverse(self, method: str = "auto", tol: float = 1e-10, max_iter: int = 50):
        """The inverse map, exact through :func:`sympy.solve` when possible.

        Parameters
        ----------
        method : {"auto", "symbolic", "numeric"}
            ``"auto"`` solves symbolically when the system is linear in the coordinates
            (:func:`sympy.linsolve`) or can be solved one equation and one coordinate at a
            time with a unique solution each (triangular systems); otherwise it returns the
            numerical inverse. ``"symbolic"`` also tries :func:`sympy.solve` on the whole
            system (which can take very long) and raises if there is no unique solution.
            ``"numeric"`` always returns :class:`InverseExprMap`.
        tol, max_iter
            For the numerical inverse (see :class:`InverseExprMap`).

        Returns
        -------
        ExprMap or InverseExprMap

        Examples
        --------
        >>> import transfuse
        >>> y, x = transfuse.symbols("y x")
        >>> ExprMap([y + x**2 / 10, x - 3], (y, x)).inverse()
        ExprMap((y, x) -> (y - (x + 3)**2/10, x + 3))
        """
        if method not in ("auto", "symbolic", "numeric"):
            raise ValueError(f"method={method!r} must be 'auto', 'symbolic' or 'numeric'")
        if method != "numeric":
            solution = self._solve(full=method == "symbolic")
            if solution is not None:
                return ExprMap(solution, self.coords, self.parameters)
            if method == "symbolic":
                raise ValueError("ExprMap.inverse: sympy found no unique closed-form inverse")
        return InverseExprMap(self, tol=tol, max_iter=max_iter)

    def _solve(self, full: bool):
        """Closed-form inverse expressions in the output symbols, or None."""
        import sympy

        targets = [sympy.Dummy(c.name, real=True) for c in self.coords]
        eqs = [e - t for e, t in zip(self.expressions, targets, strict=True)]
        unknowns = list(self.coords)
        sol = None
        try:
            if all(sympy.Poly(eq, *unknowns).total_degree() <= 1 for eq in eqs):
                sols = sympy.linsolve(eqs, unknowns)
                if len(sols) == 1:
                    (tup,) = sols
                    if not (
                        set().union(*(sympy.sympify(v).free_symbols for v in tup)) & set(unknowns)
                    ):
                        sol = dict(zip(unknowns, tup, strict=True))
        except (sympy.PolynomialError, sympy.polys.polyerrors.GeneratorsNeeded):
            pass
        if sol is None:
            sol = self._solve_triangular(eqs, unknowns)
        if sol is None and full:
            try:
                sols = sympy.solve(eqs, unknowns, dict=True)
            except NotImplementedError:
                sols = []
            if len(sols) == 1 and set(sols[0]) == set(unknowns):
                sol = sols[0]
        if sol is None:
            return None
        back = dict(zip(targets, self.coords, strict=True))
        out = [sympy.simplify(sympy.sympify(sol[c]).xreplace(back)) for c in unknowns]
        if any(e.has(*_non_real()) for e in out):
            return None
        return out

    @staticmethod
    def _solve_triangular(eqs, unknowns):
        import sympy

        pending = list(eqs)
        solved: dict = {}
        while pending:
            for eq in pending:
                left = eq.free_symbols & (set(unknowns) - set(solved))
                if len(left) == 1:
                    (var,) = left
                    try:
                        roots = sympy.solve(eq, var)
                    except NotImplementedError:
                        return None
                    if len(roots) != 1:
                        return None
                    solved = {k: v.subs(var, roots[0]) for k, v in solved.items()}
                    solved[var] = roots[0]
                    pending = [p.subs(var, roots[0]) for p in pending if p is not eq]
                    break
            else:
                return None
        if set(solved) != set(unknowns):
            return None
        return solved


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class InverseExprMap(NonlinearTransform):
    """The numerical inverse of an :class:`ExprMap`: for each point ``q``, the ``p`` with
    ``forward(p) == q``, by damped Newton iteration with the sympy-derived Jacobian.

    Newton starts at ``p = q``, takes full steps ``J(p)^-1 (forward(p) - q)`` and halves a
    step (up to 30 times) while it does not reduce the residual. It stops when
    ``max |forward(p) - q| <= tol``. Where it does not converge in ``max_iter`` iterations
    (the map is not invertible there) the best iterate is kept and a RuntimeWarning is
    issued. Its footprint is the whole input (no sound local bound is derived).

    Parameters
    ----------
    forward : ExprMap
    tol : float
        Residual tolerance in coordinate units (max norm).
    max_iter : int

    Examples
    --------
    >>> import numpy as np, sympy, transfuse
    >>> y, x = transfuse.symbols("y x")
    >>> F = ExprMap([y + sympy.sin(x) / 10, x + y**2 / 200], (y, x))
    >>> G = F.inverse()
    >>> type(G).__name__
    'InverseExprMap'
    >>> bool(np.abs(F(G([[3.0, 4.0]])) - [3.0, 4.0]).max() < 1e-10)
    True
    """

    forward: ExprMap = None
    tol: float = 1e-10
    max_iter: int = 50

    def __post_init__(self):
        if not isinstance(self.forward, ExprMap):
            raise ValueError(f"forward={self.forward!r} must be an ExprMap")
        tol = as_scalar(self.tol, "tol")
        if is_sympy(tol) or not tol > 0:
            raise ValueError(f"tol={self.tol!r} must be a positive number")
        object.__setattr__(self, "tol", tol)
        it = self.max_iter
        if isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 1:
            raise ValueError(f"max_iter={it!r} must be a positive integer")
        object.__setattr__(self, "max_iter", int(it))

    @property
    def ndim(self):
        return self.forward.ndim

    @property
    def free_symbols(self):
        return self.forward.free_symbols

    def _substitute(self, subs):
        return dataclasses.replace(self, forward=self.forward._substitute(subs))

    def inverse(self):
        return self.forward

    def __repr__(self):
        return f"InverseExprMap({self.forward!r}, tol={self.tol:g})"
