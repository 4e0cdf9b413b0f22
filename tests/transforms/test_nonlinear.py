"""Non-linear nodes: DisplacementField, ExprMap (+ inverses), FunctionMap, CoordinateMap.

References are computed directly with numpy/scipy (never through transfuse's planner).
"""

from __future__ import annotations

import math
import pickle
import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import sympy

import transfuse
from tests.strategies import MODES
from transfuse import (
    Affine,
    CoordinateMap,
    DisplacementField,
    ExprMap,
    FunctionMap,
    InverseExprMap,
    Rotate,
    Scale,
    Translate,
)


def smooth_field(shape, amplitude=1.0, seed=0):
    """A smooth random vector field, shape (ndim, *shape)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    comps = []
    for _ in shape:
        acc = np.zeros(shape)
        for _ in range(3):
            k = rng.uniform(0.1, 0.5, len(shape))
            phase = rng.uniform(0, 2 * np.pi)
            acc += np.sin(sum(ki * g for ki, g in zip(k, grids, strict=True)) + phase)
        comps.append(amplitude * acc / 3)
    return np.stack(comps)


# -- DisplacementField ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", range(6))
def test_field_samples_like_map_coordinates(mode, order):
    rng = np.random.default_rng(order)
    field = rng.standard_normal((2, 6, 7))
    spacing, origin, cval = (3.0, 2.5), (-4.0, 1.0), 0.75
    D = DisplacementField(field, spacing=spacing, origin=origin, order=order, mode=mode, cval=cval)
    pts = rng.uniform(-25, 35, (200, 2))
    g = (pts - np.array(origin)) / np.array(spacing)
    u = np.stack(
        [ndi.map_coordinates(field[k], g.T, order=order, mode=mode, cval=cval) for k in range(2)]
    )
    np.testing.assert_array_equal(D(pts), pts + u.T)  # bit for bit: same scipy calls


def test_field_composes_with_affine():
    D = DisplacementField(smooth_field((5, 6)), spacing=4, order=3)
    A = Affine([[1.1, 0.2], [-0.1, 0.9]], offset=(1, -2))
    pts = np.random.default_rng(1).uniform(0, 20, (50, 2))
    np.testing.assert_allclose((A @ D)(pts), A(D(pts)))
    np.testing.assert_allclose((D @ A)(pts), D(A(pts)))
    # a true composition, not a sum of fields
    assert not np.allclose((D @ D)(pts), pts + 2 * (D(pts) - pts))


def test_field_docstring_convention_is_pull():
    u = np.zeros((1, 4))
    u[0] = 2.0
    D = DisplacementField(u)
    x = np.arange(10.0)
    out = transfuse.lazy(x).transform(D, order=1, mode="nearest").compute()
    np.testing.assert_allclose(out, np.minimum(np.arange(10.0) + 2, 9))  # reads x[p + 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"field": np.zeros((3, 4, 5))}, "field must have shape"),
        ({"field": np.zeros((1, 4, 5))}, "leading dimension of 2"),
        ({"field": np.zeros(4)}, "field must have at least 2"),
        ({"field": np.full((2, 3, 3), np.nan)}, "field contains NaN"),
        ({"field": np.full((2, 3, 3), np.inf)}, "field contains NaN"),
        ({"field": [["a"]]}, "field must be an array of real numbers"),
        ({"field": np.zeros((2, 3, 3)), "spacing": 0}, "spacing"),
        ({"field": np.zeros((2, 3, 3)), "spacing": (1, -1)}, "spacing"),
        ({"field": np.zeros((2, 3, 3)), "spacing": (1, 2, 3)}, "spacing"),
        ({"field": np.zeros((2, 3, 3)), "origin": (0, np.nan)}, "origin"),
        ({"field": np.zeros((2, 3, 3)), "order": 6}, "order"),
        ({"field": np.zeros((2, 3, 3)), "order": 1.0}, "order"),
        ({"field": np.zeros((2, 3, 3)), "mode": "edge"}, "mode"),
        ({"field": np.zeros((2, 3, 3)), "cval": np.inf}, "cval"),
    ],
)
def test_field_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DisplacementField(**kwargs)


def test_field_dask_nan_rejected_at_plan():
    bad = da.from_array(np.full((2, 4, 4), np.nan), chunks=2)
    D = DisplacementField(bad)  # not computed at build time
    img = transfuse.lazy(np.zeros((8, 8)), chunks=4).transform(D, order=1)
    with pytest.raises(ValueError, match="field contains NaN"):
        img.plan()


def test_field_keys_and_equality():
    f = smooth_field((4, 5))
    a, b = DisplacementField(f, spacing=2), DisplacementField(f.copy(), spacing=2)
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert a != DisplacementField(f, spacing=3)
    assert a != DisplacementField(f, spacing=2, order=3)
    g = f.copy()
    g[0, 0, 0] += 1e-12
    assert a != DisplacementField(g, spacing=2)
    d1 = DisplacementField(da.from_array(f, chunks=2))
    assert d1.params()["field"].startswith("dask:") and d1 != DisplacementField(f)
    assert "field shape=(2, 4, 5)" in repr(a)


def test_field_is_frozen_and_copied():
    f = smooth_field((4, 5))
    D = DisplacementField(f)
    f[:] = 0
    assert np.abs(D.field).max() > 0
    with pytest.raises(ValueError):
        D.field[0, 0, 0] = 1.0
    D2 = pickle.loads(pickle.dumps(D))
    assert D2 == D


def test_bind_through_a_chain_with_a_field():
    theta = transfuse.symbols("theta")
    D = DisplacementField(smooth_field((4, 5)))
    T = (Rotate(theta, ndim=2) @ D).bind(theta=30)
    assert T.free_symbols == frozenset()
    assert T.parts[1] is D  # the field is not copied by binding


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_field_inverse_fixed_point(order, tol):
    # smooth field, |grad u| < 1: the fixed-point iteration contracts
    y, x = np.mgrid[0:24, 0:20] * 1.0
    u = np.stack([1.5 * np.sin(x / 6 + y / 9), 1.2 * np.cos(y / 7 - x / 11)])
    D = DisplacementField(u, spacing=2.0, origin=(-3.0, 1.0), order=order)
    Dinv = D.inverse(tol=tol)
    assert isinstance(Dinv, DisplacementField)
    assert Dinv.residual <= tol and Dinv.iterations >= 1
    assert Dinv.spacing == D.spacing and Dinv.origin == D.origin and Dinv.order == order
    q = D.node_coordinates().reshape(2, -1).T
    # the stated tolerance at the grid nodes: D(Dinv(q)) == q
    assert np.abs(D(Dinv(q)) - q).max() <= tol
    # inverse(field) @ field at the points p = Dinv(q): identity within ~tol
    p = Dinv(q)
    assert np.abs((Dinv @ D)(p) - p).max() <= 3 * tol
    # between nodes: tol + interpolation error of v. Measured on 2000 interior points
    # (amplitude 1.5, wavelengths >= 75 samples): 1.35e-2 (order 1), 1.8e-4 / 5.9e-4
    # (order 3, inverse @ field / field @ inverse)
    rng = np.random.default_rng(0)
    pts = rng.uniform([8, 10], [32, 28], (2000, 2))
    bound = 2e-2 if order == 1 else 1e-3
    assert np.abs((Dinv @ D)(pts) - pts).max() <= bound
    assert np.abs((D @ Dinv)(pts) - pts).max() <= bound


def test_field_inverse_warns_when_it_cannot_converge():
    x = np.arange(20.0)
    u = (3.0 * np.sin(x / 1.5))[None]  # |u'| = 2: the map folds
    with pytest.warns(RuntimeWarning, match="did not reach"):
        inv = DisplacementField(u).inverse(tol=1e-8, max_iter=20)
    assert inv.residual > 1e-8


@pytest.mark.parametrize(("kwargs", "match"), [({"tol": 0}, "tol"), ({"max_iter": 0}, "max_iter")])
def test_field_inverse_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DisplacementField(np.zeros((1, 3))).inverse(**kwargs)


def test_dask_field_matches_numpy_field():
    f = smooth_field((6, 7))
    a = DisplacementField(f, spacing=3, order=3)
    b = DisplacementField(da.from_array(f, chunks=3), spacing=3, order=3)
    pts = np.random.default_rng(2).uniform(-5, 25, (40, 2))
    np.testing.assert_array_equal(a(pts), b(pts))


# -- ExprMap ----------------------------------------------------------------------------------

y, x, k = transfuse.symbols("y x k")


def barrel(c=10.0):
    r2 = (y - c) ** 2 + (x - c) ** 2
    return ExprMap([c + (y - c) * (1 + k * r2), c + (x - c) * (1 + k * r2)], (y, x))


def test_expr_map_evaluates_like_numpy():
    B = barrel().bind(k=0.003)
    pts = np.random.default_rng(0).uniform(0, 20, (30, 2))
    r2 = ((pts - 10) ** 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(B(pts), 10 + (pts - 10) * (1 + 0.003 * r2), rtol=1e-14)
    assert B.free_symbols == frozenset()
    assert barrel().free_symbols == frozenset({k})


def test_expr_map_keeps_every_bit_of_float_constants():
    v = 0.12345678901234567
    E = ExprMap([y * v, x], (y, x))
    assert E([[1.0, 0.0]])[0, 0] == v
    assert ExprMap([y * k, x], (y, x)).bind(k=v)([[1.0, 0.0]])[0, 0] == v


def test_expr_map_strings_constants_and_coordinate_names():
    E = ExprMap(["y + 2*x", "3"], "y x")
    np.testing.assert_allclose(E([[1.0, 2.0], [0.0, 0.0]]), [[5.0, 3.0], [0.0, 3.0]])
    # a plain Symbol named like a coordinate is that coordinate
    E2 = ExprMap([sympy.Symbol("y") + 1, sympy.Symbol("x")], (y, x))
    assert E2.free_symbols == frozenset()
    np.testing.assert_allclose(E2([[1.0, 2.0]]), [[2.0, 2.0]])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([y, x, y], (y, x)), {}, "expressions: got 3 expression"),
        (([y], (y, x)), {}, "expressions: got 1 expression"),
        (("y", (y,)), {}, "must be a sequence"),
        (([y + k, x + sympy.Symbol("q")], (y, x)), {"parameters": ["k"]}, "unknown symbol.*q"),
        ((["y + typo", "x"], "y x"), {"parameters": ()}, "unknown symbol.*typo"),
        ((["f(y)", "x"], "y x"), {}, "unknown function"),
        (([y + sympy.I, x], (y, x)), {}, "not real"),
        (([y, x], (y, y)), {}, "repeats"),
        (([y, x], ()), {}, "at least one coordinate"),
        (([y, x], (y, 3)), {}, "symbols"),
        ((["y +* 2", "x"], "y x"), {}, "not a valid expression"),
        (([y, [x]], (y, x)), {}, "not a sympy expression"),
        (([y, x], (y, x)), {"parameters": ["x"]}, "also coordinates"),
    ],
)
def test_expr_map_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExprMap(*args, **kwargs)


def test_expr_map_unbound_parameters():
    with pytest.raises(ValueError, match="k.*unbound"):
        barrel()([[1.0, 1.0]])
    img = transfuse.lazy(np.zeros((8, 8)), chunks=4).transform(barrel(), order=1)
    with pytest.raises(ValueError, match="free symbols k"):
        img.plan()
    with pytest.raises(ValueError, match="not among the free symbols"):
        barrel().bind(y=1)
    assert img.bind(k=0.0).plan().passes


def test_expr_map_keys():
    assert barrel() == barrel() and hash(barrel()) == hash(barrel())
    assert barrel().bind(k=0.1) != barrel().bind(k=0.2)
    assert barrel().bind(k=0.1) == barrel().bind(k=0.1)
    assert pickle.loads(pickle.dumps(barrel().bind(k=0.1))) == barrel().bind(k=0.1)
    E = barrel().bind(k=0.1)
    E([[1.0, 2.0]])  # compile, then pickle without the compiled function
    assert pickle.loads(pickle.dumps(E))([[1.0, 2.0]]).shape == (1, 2)


def test_expr_inverse_symbolic_linear_and_triangular():
    a = transfuse.symbols("a")
    lin = ExprMap([2 * y + a * x + 1, x - 3], (y, x))
    inv = lin.inverse()
    assert isinstance(inv, ExprMap) and inv.free_symbols == frozenset({a})
    pts = np.random.default_rng(0).uniform(-5, 5, (20, 2))
    np.testing.assert_allclose((lin @ inv).bind(a=0.7)(pts), pts, atol=1e-12)
    tri = ExprMap([y + x**2 / 10, x + 2], (y, x))
    inv = tri.inverse()
    assert isinstance(inv, ExprMap)
    np.testing.assert_allclose((inv @ tri)(pts), pts, atol=1e-12)


def test_expr_inverse_numeric_newton():
    B = barrel().bind(k=0.002)
    G = B.inverse()  # cubic system: no unique closed form -> Newton
    assert isinstance(G, InverseExprMap) and G.inverse() == B
    pts = np.random.default_rng(0).uniform(0, 20, (200, 2))
    np.testing.assert_allclose(B(G(pts)), pts, atol=1e-10, rtol=0)
    np.testing.assert_allclose(G(B(pts)), pts, atol=1e-9, rtol=0)
    assert isinstance(B.inverse(method="numeric"), InverseExprMap)
    with pytest.raises(ValueError, match="no unique closed-form"):
        ExprMap([y**2, x], (y, x)).inverse(method="symbolic")
    with pytest.raises(ValueError, match="method"):
        B.inverse(method="magic")


def test_expr_numeric_inverse_warns_where_not_invertible():
    F = ExprMap([y**2, x], (y, x))  # never reaches negative y
    with pytest.warns(RuntimeWarning, match="did not reach"):
        F.inverse(method="numeric")([[-4.0, 1.0]])


def test_numeric_inverse_binds_through():
    G = barrel().inverse(method="numeric")
    assert G.free_symbols == frozenset({k})
    H = G.bind(k=0.001)
    assert isinstance(H, InverseExprMap) and H.forward == barrel().bind(k=0.001)


# -- FunctionMap ------------------------------------------------------------------------------


def test_function_map_vectorized_and_pointwise():
    def f(c):
        return np.stack([c[0] + 0.5 * np.sin(c[1] / 3), c[1] * 1.1])

    def g(p):
        return (p[0] + 0.5 * math.sin(p[1] / 3), p[1] * 1.1)

    pts = np.random.default_rng(0).uniform(0, 10, (25, 2))
    a = FunctionMap(f, 2)
    b = FunctionMap(g, 2, vectorized=False)
    np.testing.assert_allclose(a(pts), b(pts), rtol=1e-15)
    assert a != b and a == FunctionMap(f, 2) and a != FunctionMap(f, 2, bounds=1)
    assert FunctionMap(lambda c: c, 2) != FunctionMap(lambda c: c, 2)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((3, 2), {}, "func=3 is not callable"),
        ((np.sin, 0), {}, "ndim"),
        ((np.sin, 2), {"bounds": -1}, "bounds"),
        ((np.sin, 2), {"bounds": (1, 2, 3)}, "bounds"),
        ((np.sin, 2), {"vectorized": "yes"}, "vectorized"),
    ],
)
def test_function_map_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FunctionMap(*args, **kwargs)


def test_function_map_bad_output_shape():
    F = FunctionMap(lambda c: c[:1], 2)
    with pytest.raises(ValueError, match="returned shape"):
        F([[1.0, 2.0]])


# -- composition with the affine family --------------------------------------------------------


def test_mixed_composition_points():
    D = DisplacementField(smooth_field((5, 5)), spacing=3)
    E = barrel().bind(k=0.001)
    F = FunctionMap(lambda c: c[::-1].copy(), 2)
    T = Translate((1, 2)) @ D @ Scale((1.1, 0.9)) @ E @ F
    pts = np.random.default_rng(3).uniform(0, 12, (10, 2))
    ref = Translate((1, 2))(D(Scale((1.1, 0.9))(E(pts[:, ::-1]))))
    np.testing.assert_allclose(T(pts), ref, rtol=1e-14)
    assert T.ndim == 2 and not T.is_affine
    with pytest.raises(ValueError, match="ndim"):
        DisplacementField(np.zeros((3, 2, 2, 2))) @ E


def test_coordinate_map_still_works():
    m = CoordinateMap(np.zeros((2, 3, 4)))
    assert m.ndim == 2 and m.output_shape == (3, 4)
    assert m.free_symbols == frozenset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (Translate((1, 1)) @ m).bind() is not None
