"""Non-linear chains fused into one map and one resampling (issue 4).

Every reference is scipy.ndimage on the whole array at coordinates composed independently
of the planner (by brute force, point by point, or through the nodes' own ``__call__``).
"""

from __future__ import annotations

import itertools
import math

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import sympy
from dask.core import get_dependencies
from hypothesis import assume, given
from hypothesis import strategies as st

import transfuse as tf
from tests.strategies import MODES, examples
from transfuse import Affine, CoordinateMap, DisplacementField, ExprMap, FunctionMap
from transfuse.executors import ScipyExecutor
from transfuse.executors.spline import field_coefficients
from transfuse.planner.lower import CompiledMap
from transfuse.planner.lower import compile_map as _compile_map


def compile_map(T, ndim):
    return _compile_map(T, ndim, spline_filter=field_coefficients)


def coordinates_of(stages, box):
    """The coordinates the reference executor computes for an output box."""
    return ScipyExecutor().coordinates(stages, box)


Y, X = tf.symbols("y x")


def smooth_field(shape, amplitude, seed):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    comps = []
    for _ in shape:
        acc = np.zeros(shape)
        for _ in range(3):
            k = rng.uniform(0.1, 0.6, len(shape))
            acc += np.sin(sum(ki * g for ki, g in zip(k, grids, strict=True)) + rng.uniform(0, 6))
        comps.append(amplitude * acc / 3)
    return np.stack(comps)


# -- the mixed chain: affine @ field @ affine @ expression -------------------------------------

SHAPE = (23, 21)
ANGLE = math.radians(17.0)
M1 = np.array([[math.cos(ANGLE), -math.sin(ANGLE)], [math.sin(ANGLE), math.cos(ANGLE)]])
OFF1 = np.array([11.0, 10.0]) - M1 @ np.array([11.0, 10.0]) + np.array([0.7, -1.3])
M2 = np.array([[1.08, 0.12], [-0.07, 0.93]])
OFF2 = np.array([0.4, -0.9])
FIELD = smooth_field((6, 7), 1.6, seed=5)
SPACING, ORIGIN = np.array([5.0, 4.0]), np.array([-3.0, 2.0])
A_COEF, B_COEF, CENTER = 0.015, 1.4, 10.0


def mixed_chain(field_order=3, field_mode="nearest", field_cval=0.0):
    E = ExprMap(
        [Y + A_COEF * (X - CENTER) ** 2 - 1, X + B_COEF * sympy.sin(Y / 4)], (Y, X)
    )  # innermost: defines where the output grid reads
    D = DisplacementField(
        FIELD, spacing=SPACING, origin=ORIGIN, order=field_order, mode=field_mode, cval=field_cval
    )
    A1 = Affine(np.column_stack([M1, OFF1]))
    A2 = Affine(np.column_stack([M2, OFF2]))
    return A1 @ D @ A2 @ E


def brute_force_coordinates(shape, field_order=3, field_mode="nearest", field_cval=0.0):
    """A1(D(A2(E(o)))) for every output point o, one point at a time."""
    out = np.empty((2, *shape))
    for i, j in itertools.product(range(shape[0]), range(shape[1])):
        e = np.array([i + A_COEF * (j - CENTER) ** 2 - 1, j + B_COEF * math.sin(i / 4)])
        q = M2 @ e + OFF2
        g = ((q - ORIGIN) / SPACING)[:, None]
        u = [
            ndi.map_coordinates(FIELD[k], g, order=field_order, mode=field_mode, cval=field_cval)[0]
            for k in range(2)
        ]
        r = q + np.array(u)
        out[:, i, j] = M1 @ r + OFF1
    return out


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).standard_normal(SHAPE)


@pytest.fixture(scope="module")
def reference_coordinates():
    return brute_force_coordinates(SHAPE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", range(6))
def test_mixed_chain_equals_map_coordinates(image, reference_coordinates, mode, order):
    out = (
        tf.lazy(image, chunks=(7, 6))
        .transform(mixed_chain(), order=order, mode=mode, cval=0.5, output_chunks=(6, 5))
        .compute()
    )
    ref = ndi.map_coordinates(image, reference_coordinates, order=order, mode=mode, cval=0.5)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-8 * np.abs(image).max())


@pytest.mark.parametrize("field_mode", MODES)
@pytest.mark.parametrize("field_order", range(6))
def test_mixed_chain_coordinates_every_field_mode(field_mode, field_order):
    shape = (9, 8)
    T = mixed_chain(field_order, field_mode, field_cval=-0.6)
    cmap = compile_map(T, 2)
    assert isinstance(cmap, CompiledMap)
    got = coordinates_of(cmap.stages, ((0, shape[0]), (0, shape[1])))
    ref = brute_force_coordinates(shape, field_order, field_mode, -0.6)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-12)


def test_mixed_chain_3d():
    z, y, x = tf.symbols("z y x")
    rng = np.random.default_rng(3)
    img = rng.standard_normal((14, 13, 12))
    field = smooth_field((4, 4, 4), 1.0, seed=1)
    D = DisplacementField(field, spacing=4.0, order=1)
    E = ExprMap([z, y + 0.5 * sympy.sin(x / 3), x + 0.02 * (y - 6) ** 2], (z, y, x))
    T = tf.Rotate(12, axes=(1, 2), center=(7, 6, 6)) @ D @ tf.Scale((1.05, 0.95, 1.0)) @ E
    out = tf.lazy(img, chunks=5).transform(T, order=3, mode="reflect").compute()
    pts = np.indices(img.shape).reshape(3, -1).T.astype(float)
    ref = ndi.map_coordinates(img, T(pts).T, order=3, mode="reflect").reshape(img.shape)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-8 * np.abs(img).max())


# -- one map, one resampling -------------------------------------------------------------------


def test_chain_is_one_pass_and_explain_shows_fused_map(image):
    lazy = (
        tf.lazy(image, chunks=8)
        .transform(tf.Translate((1, 0)), order=3)
        .transform(mixed_chain(), order=3)
        .transform(tf.Rotate(5, center=(11, 10)), order=3)
    )
    plan = lazy.plan()
    assert len(plan.passes) == 1
    stages = plan.passes[0].stages
    # runs of affine nodes become single matrices: T @ A1, then A2, with the rotation as
    # the first stage: stages are the rotation, E, A2, D, A1@Translate
    kinds = [type(s).__name__ for s in stages]
    assert kinds == ["AffineStage", "ExprStage", "AffineStage", "FieldStage", "AffineStage"]
    text = plan.explain()
    assert "1 resampling pass(es)" in text
    assert "fused map: affine[" in text and "field(grid 6x7" in text
    assert "expr((y, x) -> (" in text
    arr = lazy.to_dask()
    layers = [k for k in arr.__dask_graph__().layers if k.startswith("resample-")]
    assert len(layers) == 1


def test_field_after_affine_is_composed_not_summed():
    x = np.random.default_rng(2).standard_normal((20, 20))
    D = DisplacementField(smooth_field((5, 5), 2.0, seed=2), spacing=5)
    S = tf.Scale(1.3)
    out = tf.lazy(x, chunks=7).transform(D @ S @ D, order=1).compute()
    pts = np.indices(x.shape).reshape(2, -1).T.astype(float)
    composed = D(S(D(pts)))
    summed = 1.3 * pts + 2 * (D(pts) - pts)
    ref = ndi.map_coordinates(x, composed.T, order=1).reshape(x.shape)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert not np.allclose(composed, summed)


def test_coordinate_map_inside_a_chain():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 18))
    coords = np.stack(np.meshgrid(np.linspace(2, 13, 10), np.linspace(-1, 19, 12), indexing="ij"))
    coords = coords + rng.uniform(-0.3, 0.3, coords.shape)
    D = DisplacementField(smooth_field((4, 4), 1.0, seed=3), spacing=5)
    T = tf.Translate((0.5, -0.25)) @ D @ CoordinateMap(da.from_array(coords, chunks=(2, 4, 5)))
    out = tf.lazy(x, chunks=6).transform(T, output_shape=(10, 12), order=3).compute()
    pts = T.parts[0](D(coords.reshape(2, -1).T)).T
    ref = ndi.map_coordinates(x, pts, order=3).reshape(10, 12)
    np.testing.assert_allclose(out, ref, atol=1e-10)
    # a CoordinateMap defines the output grid: it must be innermost
    bad = CoordinateMap(coords) @ D
    with pytest.raises(ValueError, match="rightmost"):
        tf.lazy(x, chunks=6).transform(bad, output_shape=(10, 12)).plan()


def test_function_map_matches_geometric_transform():
    x = np.random.default_rng(5).standard_normal((17, 15))

    def mapping(p):
        return (p[0] * 0.9 + 0.3 * math.sin(p[1] / 3), p[1] + 0.05 * p[0] ** 1.5)

    def vectorized(c):
        return np.stack([c[0] * 0.9 + 0.3 * np.sin(c[1] / 3), c[1] + 0.05 * c[0] ** 1.5])

    ref = ndi.geometric_transform(x, mapping, order=3, mode="mirror")
    for F in (FunctionMap(mapping, 2, vectorized=False), FunctionMap(vectorized, 2)):
        out = tf.lazy(x, chunks=6).transform(F, order=3, mode="mirror").compute()
        np.testing.assert_allclose(out, ref, atol=1e-10)


def test_non_finite_coordinates_are_reported():
    E = ExprMap([sympy.sqrt(Y - 5), X], (Y, X))
    with pytest.raises(ValueError, match="non-finite coordinates"):
        tf.lazy(np.ones((10, 10)), chunks=5).transform(E, order=1).compute()


def test_dask_field_equals_numpy_field():
    x = np.random.default_rng(6).standard_normal((20, 22))
    f = smooth_field((5, 6), 1.5, seed=6)
    outs = [
        tf.lazy(x, chunks=8)
        .transform(DisplacementField(field, spacing=4, order=3), order=3, mode="nearest")
        .compute()
        for field in (f, da.from_array(f, chunks=(1, 2, 3)))
    ]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_numeric_inverse_in_a_chain():
    r2 = (Y - 8) ** 2 + (X - 8) ** 2
    B = ExprMap([8 + (Y - 8) * (1 + 0.002 * r2), 8 + (X - 8) * (1 + 0.002 * r2)], (Y, X))
    G = B.inverse()
    x = np.random.default_rng(7).standard_normal((16, 16))
    out = tf.lazy(x, chunks=6).transform(tf.Translate((0.5, 0)) @ G, order=1).compute()
    pts = np.indices(x.shape).reshape(2, -1).T.astype(float)
    ref = ndi.map_coordinates(x, (G(pts) + [0.5, 0]).T, order=1).reshape(x.shape)
    np.testing.assert_allclose(out, ref, atol=1e-9)


def test_inverse_field_chain_is_nearly_identity():
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    img = np.sin(6 * yy) * np.cos(5 * xx)  # smooth
    y, x = np.mgrid[0:11, 0:11] * 1.0
    D = DisplacementField(np.stack([1.5 * np.sin(x / 3), 1.0 * np.cos(y / 4)]), spacing=4, order=3)
    out = tf.lazy(img, chunks=10).transform(D.inverse(tol=1e-8) @ D, order=3).compute()
    # interior: inverse(field) @ field is the identity up to the inverse's interpolation error
    assert np.abs(out - img)[6:-6, 6:-6].max() < 1e-3


# -- soundness and locality of footprints ------------------------------------------------------


def _random_chain(seed):
    rng = np.random.default_rng(seed)
    mode = MODES[seed % len(MODES)]
    D = DisplacementField(
        smooth_field((6, 6), rng.uniform(0.5, 3), seed),
        spacing=rng.uniform(3, 8, 2),
        origin=rng.uniform(-5, 5, 2),
        order=int(rng.integers(0, 6)),
        mode=mode,
        cval=rng.uniform(-2, 2),
    )
    a, b, c = rng.uniform(-0.02, 0.02), rng.uniform(0.5, 2), rng.uniform(2, 6)
    r2 = (Y - 15) ** 2 + (X - 15) ** 2
    E = [
        ExprMap([Y + a * (X - 15) ** 2, X + b * sympy.sin(Y / c)], (Y, X)),
        ExprMap(
            [
                15
                + (Y - 15) * sympy.cos(b * sympy.exp(-r2 / 60))
                - (X - 15) * sympy.sin(b * sympy.exp(-r2 / 60)),
                15
                + (Y - 15) * sympy.sin(b * sympy.exp(-r2 / 60))
                + (X - 15) * sympy.cos(b * sympy.exp(-r2 / 60)),
            ],
            (Y, X),
        ),
        ExprMap([15 + (Y - 15) * (1 + a / 20 * r2), 15 + (X - 15) * (1 + a / 20 * r2)], (Y, X)),
    ][seed % 3]
    A = Affine(np.eye(2) + rng.uniform(-0.2, 0.2, (2, 2)), offset=rng.uniform(-4, 4, 2))
    return [A @ D @ E, E @ D @ A, D @ A @ D, A @ E @ A @ E, D @ E @ D][seed % 5]


@pytest.mark.parametrize("seed", range(10))
def test_ranges_are_sound_and_results_exact(seed):
    T = _random_chain(seed)
    shape, chunks = (31, 29), 7
    cmap = compile_map(T, 2)
    bounds = [range(0, n, chunks) for n in shape]
    boxes = np.array(
        [
            [(s, min(s + chunks, n)) for s, n in zip(starts, shape, strict=True)]
            for starts in itertools.product(*bounds)
        ]
    )
    ranges = cmap.ranges(boxes)
    for box, r in zip(boxes, ranges, strict=True):
        pts = np.stack(
            np.meshgrid(*[np.arange(a, b) for a, b in box], indexing="ij"), axis=-1
        ).reshape(-1, 2)
        c = T(pts.astype(float))  # composed node by node, no planner
        assert np.all(c >= r[:, 0]) and np.all(c <= r[:, 1])
    x = np.random.default_rng(seed).standard_normal(shape)
    mode = MODES[(seed + 3) % len(MODES)]
    order = seed % 6
    out = tf.lazy(x, chunks=6).transform(T, order=order, mode=mode, output_chunks=chunks)
    pts = np.indices(shape).reshape(2, -1).T.astype(float)
    ref = ndi.map_coordinates(x, T(pts).T, order=order, mode=mode).reshape(shape)
    np.testing.assert_allclose(out.compute(), ref, rtol=0, atol=1e-8 * np.abs(x).max())


def _resample_dependencies(lazy_image):
    arr = lazy_image.to_dask()
    graph = dict(arr.__dask_graph__())
    name = [k for k in arr.__dask_graph__().layers if k.startswith("resample-")][0]
    source = lazy_image._array.name
    return {
        key[1:]: {k[1:] for k in get_dependencies(graph, key) if k[0] == source}
        for key in graph
        if isinstance(key, tuple) and key[0] == name
    }


def _needed_chunks(coords, in_chunks, order):
    """Input chunks the points need, point by point (mode nearest: taps clamp)."""
    out = set()
    for p in coords.reshape(coords.shape[0], -1).T:
        per_axis = []
        for h, c in enumerate(p):
            size = sum(in_chunks[h])
            first = int(np.floor(c)) if order % 2 else int(np.floor(c + 0.5))
            taps = np.clip(
                np.arange(first - order // 2, first - order // 2 + order + 1), 0, size - 1
            )
            edges = np.cumsum(in_chunks[h])
            per_axis.append({int(np.searchsorted(edges, t, side="right")) for t in taps})
        out.update(itertools.product(*per_axis))
    return out


def test_local_chain_is_local_in_the_graph():
    n, ch = 128, 16
    x = np.random.default_rng(8).standard_normal((n, n))
    D = DisplacementField(smooth_field((9, 9), 2.0, seed=8), spacing=16)
    r2 = (Y - 64) ** 2 + (X - 64) ** 2
    E = ExprMap([64 + (Y - 64) * (1 + 2e-6 * r2), 64 + (X - 64) * (1 + 2e-6 * r2)], (Y, X))
    T = tf.Rotate(10, center=(64, 64)) @ D @ E
    image = tf.lazy(x, chunks=ch).transform(T, order=1, mode="nearest", output_chunks=ch)
    deps = _resample_dependencies(image)
    n_in = (n // ch) ** 2
    assert len(deps) == n_in
    assert max(len(d) for d in deps.values()) <= 9 < n_in  # a few input chunks per task
    # sound (every chunk a point needs is a dependency) and nearly tight
    stages = image.plan().passes[0].stages
    needed_total = 0
    for idx, d in deps.items():
        box = tuple((i * ch, (i + 1) * ch) for i in idx)
        needed = _needed_chunks(coordinates_of(stages, box), ((ch,) * (n // ch),) * 2, 1)
        assert needed <= d
        needed_total += len(needed)
    # measured: 4.16 dependencies per task where the points need 3.70
    assert sum(len(d) for d in deps.values()) <= 1.25 * needed_total
    np.testing.assert_allclose(
        image.compute(),
        ndi.map_coordinates(
            x, T(np.indices(x.shape).reshape(2, -1).T.astype(float)).T, order=1, mode="nearest"
        ).reshape(x.shape),
        atol=1e-12,
    )


def test_callable_footprints_whole_input_unless_bounded():
    n, ch = 64, 16
    x = np.random.default_rng(9).standard_normal((n, n))

    def wobble(c):
        return c + 1.5 * np.sin(c[::-1] / 7)

    free = tf.lazy(x, chunks=ch).transform(FunctionMap(wobble, 2), order=1, output_chunks=ch)
    assert all(len(d) == 16 for d in _resample_dependencies(free).values())
    assert "whole input" in free.explain()
    margin = tf.lazy(x, chunks=ch).transform(
        FunctionMap(wobble, 2, bounds=1.5), order=1, output_chunks=ch
    )
    assert max(len(d) for d in _resample_dependencies(margin).values()) <= 9 < 16

    def box_bound(lo, hi):
        return lo - 1.5, hi + 1.5

    boxed = tf.lazy(x, chunks=ch).transform(
        FunctionMap(wobble, 2, bounds=box_bound), order=1, output_chunks=ch
    )
    assert max(len(d) for d in _resample_dependencies(boxed).values()) <= 9 < 16
    ref = free.compute()
    np.testing.assert_array_equal(margin.compute(), ref)
    np.testing.assert_array_equal(boxed.compute(), ref)


def test_planning_many_chunks_is_fast():
    D = DisplacementField(smooth_field((8, 8, 8), 2.0, seed=1), spacing=32)
    z, y, x = tf.symbols("z y x")
    E = ExprMap([z, y + sympy.sin(x / 40), x], (z, y, x))
    img = da.zeros((256, 256, 256), chunks=64, dtype=np.float32)
    lazy = tf.lazy(img).transform(tf.Rotate(5, axes=(1, 2), ndim=3) @ D @ E, order=1)
    lazy = lazy.transform(tf.Identity(), order=1, output_chunks=12)  # fused: ~10^4 chunks
    plan = lazy.plan()  # its time is measured by benchmarks/bench_graph_build.py, not here
    assert plan.passes[0].ntasks == 22**3


# -- fused vs resampling step by step ----------------------------------------------------------


def test_fused_within_interpolation_error_of_step_by_step():
    """On smooth data, one resampling through the composed map and three scipy resamplings
    in a row differ by the interpolation error only. Bound (stated): with order 3 and data
    of wavelength >= 24 samples, every resampling errs by at most ~2e-4 of the amplitude
    (cubic B-spline interpolation of a sine of wavelength L errs by about (2 pi / L)**4 / 24)
    so three of them by 3x that; the test allows 1e-3 on the interior, where no step crops.
    """
    n = 64
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    img = np.sin(2 * np.pi * yy / 24) * np.cos(2 * np.pi * xx / 30) + 0.5 * np.sin(
        2 * np.pi * (xx + yy) / 40
    )
    field = smooth_field((9, 9), 1.5, seed=11)
    D = DisplacementField(field, spacing=8, order=3)
    A1 = tf.Rotate(8, center=(32, 32))
    A2 = tf.Scale((1.05, 0.97))
    fused = tf.lazy(img, chunks=16).transform(A1 @ D @ A2, order=3, mode="nearest").compute()
    # step by step, as a user would with scipy: A1 first (pull: the last image operation)
    s1 = ndi.affine_transform(img, A1.matrix(), order=3, mode="nearest")
    grid = np.indices(img.shape).astype(float)
    u = np.stack(
        [ndi.map_coordinates(field[k], grid / 8.0, order=3, mode="nearest") for k in range(2)]
    )
    s2 = ndi.map_coordinates(s1, grid + u, order=3, mode="nearest")
    s3 = ndi.affine_transform(s2, A2.matrix(), order=3, mode="nearest")
    interior = (slice(12, -12), slice(12, -12))
    assert np.abs(fused - s3)[interior].max() < 1e-3


def test_unsupported_function_falls_back_to_the_whole_input():
    E = ExprMap([sympy.Mod(Y + 3, 16), X], (Y, X))  # no interval rule for Mod
    x = np.random.default_rng(10).standard_normal((32, 8))
    image = tf.lazy(x, chunks=8).transform(E, order=1, output_chunks=8)
    assert "[footprint: whole input]" in image.explain()
    deps = _resample_dependencies(image)
    assert all(len(d) == 4 for d in deps.values())
    pts = np.indices(x.shape).reshape(2, -1).astype(float)
    ref = ndi.map_coordinates(x, [np.mod(pts[0] + 3, 16), pts[1]], order=1).reshape(x.shape)
    np.testing.assert_allclose(image.compute(), ref, atol=1e-12)


# -- interval arithmetic -------------------------------------------------------------------------

_UNARY = [sympy.sin, sympy.cos, sympy.exp, sympy.atan, sympy.tanh, sympy.Abs, sympy.sqrt]
_UNARY += [lambda e: sympy.log(1 + e**2), lambda e: e**2, lambda e: e**3, sympy.cosh]
_UNARY += [lambda e: 1 / (2 + e**2), lambda e: sympy.Max(e, 0.5), sympy.floor, sympy.erf]
_UNARY += [lambda e: e**2.0, lambda e: e**-3, lambda e: (1 + e**2) ** 0.75, sympy.sign]


@st.composite
def expressions(draw, depth=3):
    if depth == 0 or draw(st.booleans()):
        leaf = draw(st.sampled_from(["y", "x", "c"]))
        if leaf == "c":
            return sympy.Float(draw(st.floats(-3, 3, allow_nan=False)))
        return Y if leaf == "y" else X
    kind = draw(st.sampled_from(["unary", "add", "mul"]))
    if kind == "unary":
        f = draw(st.sampled_from(_UNARY))
        arg = draw(expressions(depth=depth - 1))
        return f(sympy.Abs(arg)) if f is sympy.sqrt else f(arg)
    a, b = draw(expressions(depth=depth - 1)), draw(expressions(depth=depth - 1))
    return a + b if kind == "add" else a * b


@examples(0.3)
@given(
    expr=expressions(),
    lo=st.tuples(st.floats(-8, 8), st.floats(-8, 8)),
    width=st.tuples(st.floats(0, 6), st.floats(0, 6)),
)
def test_interval_arithmetic_encloses_every_value(expr, lo, width):
    from transfuse.planner.interval import interval_eval

    assume(not expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo))
    lo = np.array(lo)
    hi = lo + np.array(width)
    env = {Y: (lo[:1], hi[:1]), X: (lo[1:], hi[1:])}
    b_lo, b_hi = interval_eval(expr, env)
    f = ExprMap([expr, X], (Y, X))
    rng = np.random.default_rng(0)
    pts = np.concatenate(
        [
            rng.uniform(lo, hi, (400, 2)),
            np.array(list(itertools.product(*zip(lo, hi, strict=True)))),
        ]
    )
    with np.errstate(all="ignore"):
        vals = f(pts)[:, 0]
    vals = vals[np.isfinite(vals)]
    assert np.all(vals >= b_lo[0]) and np.all(vals <= b_hi[0]), (expr, b_lo, b_hi)


def test_chain_map_pickles():
    import pickle

    stages = compile_map(mixed_chain(), 2).stages
    box = ((0, 5), (2, 9))
    again = pickle.loads(pickle.dumps(stages))
    np.testing.assert_array_equal(coordinates_of(again, box), coordinates_of(stages, box))
    assert [s.token for s in again] == [s.token for s in stages]
