"""Chains of stages computed block by block in compiled stages
(:mod:`transfuse.executors.kernels_chain`): no coordinate array of the chunk, the
coordinates the reference's (:mod:`transfuse.executors.stages` with scipy.ndimage) bit
for bit where they use the same operations, expressions compiled by numba only after the
source check and cached on disk by content.

Contract checked here: image orders 0 and 1 bit-exact against the ``"scipy"`` backend for
chains of affine maps, displacement fields of every order and arithmetic expressions;
expressions with transcendental functions (numba calls the C library, numpy its own
vectorised code, an ulp apart at times) within 1e-10 x max|input|.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import sympy

import transfuse as tf
from transfuse.executors import kernels_chain as chain
from transfuse.executors import stages as stage_eval
from transfuse.planner.physical import ExprStage

pytestmark = pytest.mark.skipif(not chain.AVAILABLE, reason="numba is not installed")

MODES = ["constant", "nearest", "mirror", "reflect", "grid-mirror", "wrap", "grid-wrap"]
MODES += ["grid-constant"]

RNG = np.random.default_rng(21)
VOLUME = RNG.standard_normal((14, 15, 13))
G = np.indices((6, 6, 6)).astype(float)
U3 = np.stack([np.sin(G[1] / 2), np.cos(G[2] / 3), 0.5 * np.sin(G[0] / 2)])


class NoCoordinateArrays:
    """Within ``with``: fails if a chunk builds a coordinate array; counts the chunks the
    compiled stages ran."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.chunks = 0

    def __enter__(self):
        def refuse(*args, **kwargs):
            raise AssertionError("a coordinate array of the chunk was built")

        real = chain.ChainProgram.interpolate

        def spy(program, *args):
            self.chunks += 1
            return real(program, *args)

        self.context = self.monkeypatch.context()
        mp = self.context.__enter__()
        mp.setattr(stage_eval, "coordinates", refuse)
        mp.setattr(chain.ChainProgram, "interpolate", spy)
        return self

    def __exit__(self, *exc):
        self.context.__exit__(*exc)


@pytest.fixture
def no_coordinate_arrays(monkeypatch):
    return NoCoordinateArrays(monkeypatch)


def on(executor, lazy):
    with dask.config.set({"transfuse.executor": executor}):
        return lazy.compute(scheduler="synchronous")


def _barrel():
    z, y, x = tf.symbols("z y x")
    return tf.ExprMap([z, 7 + (y - 7) * (1 + 0.004 * (x - 6) ** 2), x + 0.1 * z], (z, y, x))


def _field(values, order, mode="nearest", **kw):
    cval = 0.5 if "constant" in mode else 0.0
    return tf.DisplacementField(values, spacing=3.0, order=order, mode=mode, cval=cval, **kw)


def _rotate():
    return tf.Rotate(8, axes=(1, 2), center=(7, 7, 6))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1, 3])
def test_affine_field_expression_chain_is_bit_exact(order, mode, no_coordinate_arrays):
    """Field orders 1 and 3 (tap by tap, scipy's sum), every image mode: the reference's
    coordinates, so orders 0 and 1 are bit-exact; order 3 equal within 1e-10 (the
    chunked prefilter)."""
    for field_order in (1, 3):
        T = _rotate() @ _field(U3, field_order, mode) @ _barrel()
        lazy = tf.lazy(VOLUME, chunks=(5, 6, 7)).transform(T, order=order, mode=mode, cval=0.3)
        ref = on("scipy", lazy)
        with no_coordinate_arrays:
            got = on("cpu", lazy)
        if order <= 1:
            np.testing.assert_array_equal(got, ref)
        else:
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(VOLUME).max())
    assert no_coordinate_arrays.chunks > 0


@pytest.mark.parametrize("field_order", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("mode", MODES)
def test_field_orders_and_modes_2d(field_order, mode):
    """Every field order and mode of a 2-D field after a matrix affine (sampled as an
    affine map of the local index) and after a separable one (sampled point by point)."""
    x = RNG.random((30, 33))
    g = np.indices((12, 13)).astype(float)
    u = np.stack([1.5 * np.sin(g[1] / 3), np.cos(g[0] / 2)])
    f = tf.DisplacementField(u, spacing=2.5, order=field_order, mode=mode, cval=0.25)
    for T in (tf.Rotate(5, center=(15, 16)) @ f @ tf.Scale(1.02), f @ tf.Scale(1.02)):
        lazy = tf.lazy(x, chunks=11).transform(T, order=1, mode=mode)
        np.testing.assert_array_equal(on("cpu", lazy), on("scipy", lazy))


def test_chain_coordinates_equal_the_reference_bit_for_bit():
    """ChainProgram.coordinates against stages.coordinates(..., scipy.ndimage) on a box,
    in blocks of an odd size (blocks straddle rows)."""
    T = _field(U3, 3) @ tf.Affine(np.diag([1.01, 0.99, 1.0, 1.0])) @ _barrel()
    lazy = tf.lazy(VOLUME, chunks=20).transform(_rotate() @ T, order=1)
    stages = tf.plan(lazy).passes[0].stages
    box = ((1, 9), (2, 13), (0, 13))
    ref = stage_eval.coordinates(stages, box, ndi).reshape(3, -1)
    prog = chain.program(stages, box)
    assert prog is not None
    got = np.empty_like(ref)
    for lo in range(0, prog.npoints, 37):
        m = min(37, prog.npoints - lo)
        p = np.empty((3, m))
        assert prog.coordinates(lo, p)
        got[:, lo : lo + m] = p
    np.testing.assert_array_equal(got, ref)


def test_blocks_smaller_than_a_chunk(monkeypatch):
    T = _rotate() @ _field(U3, 3) @ _barrel()
    lazy = tf.lazy(VOLUME, chunks=(7, 8, 13)).transform(T, order=1)
    ref = on("scipy", lazy)
    monkeypatch.setattr(chain, "BLOCK", 50)
    np.testing.assert_array_equal(on("cpu", lazy), ref)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "grid-constant"])
def test_chunked_dask_field(mode, no_coordinate_arrays):
    """Each task reads a window of the field's coefficients (its ``start`` shifts them)."""
    field = _field(da.from_array(U3, chunks=(3, 4, 3, 5)), 3, mode)
    T = _rotate() @ field @ tf.Scale(1.01)
    lazy = tf.lazy(VOLUME, chunks=6).transform(T, order=1)
    ref = on("scipy", lazy)
    with no_coordinate_arrays:
        got = on("cpu", lazy)
    np.testing.assert_array_equal(got, ref)
    assert no_coordinate_arrays.chunks > 0


def test_transcendental_expressions_within_1e_10():
    z, y, x = tf.symbols("z y x")
    wave = tf.ExprMap([z + 0.5 * sympy.sin(x / 3), y + 0.3 * sympy.exp(-z / 9), x], (z, y, x))
    T = _rotate() @ _field(U3, 1) @ wave
    for order in (0, 1):
        lazy = tf.lazy(VOLUME, chunks=7).transform(T, order=order, mode="mirror")
        got, ref = on("cpu", lazy), on("scipy", lazy)
        if order == 0:  # a coordinate an ulp apart may round to the other sample at a tie
            assert np.mean(got == ref) > 0.999
        else:
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(VOLUME).max())


def test_chains_of_1_and_2_axes_and_views():
    x1 = RNG.random(40)
    f1 = tf.DisplacementField(np.sin(np.arange(12.0))[None], spacing=3.5, order=3)
    s = tf.symbols("s")
    T1 = tf.Scale(1.1) @ f1 @ tf.ExprMap([s + 0.01 * s**2], (s,))
    lazy1 = tf.lazy(x1, chunks=9).transform(T1, order=1, mode="reflect")
    np.testing.assert_array_equal(on("cpu", lazy1), on("scipy", lazy1))
    T = _rotate() @ _field(U3, 3) @ _barrel()
    img = tf.lazy(VOLUME, chunks=6).transform(T, order=1)
    for key in ((slice(1, 12, 2), 4), (3,), (slice(None, None, -1), slice(2, 9))):
        np.testing.assert_array_equal(on("cpu", img[key]), on("scipy", img[key]))


def test_max_displacement_still_refused():
    for values in (U3 * 3, da.from_array(U3 * 3, chunks=(3, 3, 3, 3))):
        T = _rotate() @ _field(values, 1, max_displacement=1.0) @ _barrel()
        with pytest.raises(ValueError, match="max_displacement"):
            on("cpu", tf.lazy(VOLUME, chunks=7).transform(T, order=1))


def test_non_finite_coordinates_raise():
    bad = tf.ExprMap(["z", "y", "sqrt(x - 10)"], "z y x")
    lazy = tf.lazy(VOLUME, chunks=7).transform(_rotate() @ _field(U3, 1) @ bad, order=1)
    with pytest.raises(ValueError, match="non-finite"):
        on("cpu", lazy)


def test_an_expression_numba_cannot_compile_goes_through_numpy():
    z, y, x = tf.symbols("z y x")
    special = tf.ExprMap([z, y + 0.5 * sympy.erf(x / 5), x], (z, y, x))
    T = _rotate() @ _field(U3, 1) @ special
    lazy = tf.lazy(VOLUME, chunks=7).transform(T, order=1)
    with dask.config.set({"transfuse.executor": "cpu"}):
        text = lazy.explain()
    assert "an expression numba cannot compile" in text
    np.testing.assert_array_equal(on("cpu", lazy), on("scipy", lazy))


def test_sources_failing_the_check_are_never_written_or_compiled(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for source in (
        "import os\ndef expression_map(x0):\n    return (x0,)",
        "def expression_map(x0):\n    return (x0.__class__,)",
        "def expression_map(x0):\n    return (open(x0),)",
        "def other(x0):\n    return (x0,)",
    ):
        stage = ExprStage(source, "expression_map", 1, 1, (), "bad")
        assert chain.compiled_expression(stage) is None
    assert not list(tmp_path.rglob("*.py"))


def test_expressions_are_cached_on_disk_by_content(tmp_path, monkeypatch):
    """The same source with other constants is the same module; a new process loads it
    from numba's cache instead of compiling."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    src = "def expression_map(x0, x1, c0):\n    return (x0 * c0 + x1, x1 - c0)"
    a = ExprStage(src, "expression_map", 2, 2, (0.5,), "a")
    b = ExprStage(src, "expression_map", 2, 2, (2.0,), "b")
    fa, fb = chain.compiled_expression(a), chain.compiled_expression(b)
    assert fa is fb and fa is not None
    assert len(list(tmp_path.rglob("transfuse_expr_*.py"))) == 1
    p = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    assert fa(p, np.array([0.5])) == 0
    np.testing.assert_array_equal(p[:2], [[3.5, 5.0], [2.5, 3.5]])
    code = textwrap.dedent(
        f"""
        import numpy as np
        from transfuse.executors import kernels_chain as chain
        from transfuse.planner.physical import ExprStage
        f = chain.compiled_expression(ExprStage({src!r}, "expression_map", 2, 2, (1.0,), ""))
        print(sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()))
        """
    )
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "0"], out


def test_concurrent_first_calls_compile_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    src = "def expression_map(x0, c0):\n    return (x0 * c0 - 1.0,)"
    got = []

    def work():
        got.append(chain.compiled_expression(ExprStage(src, "expression_map", 1, 1, (3.0,), "")))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and got[0] is not None and all(f is got[0] for f in got)
    assert len(got[0].signatures) == 1


def test_one_specialisation_per_stage_kernel():
    """float32 and float64 fields and images, 1-D to 3-D chains: one compiled signature
    for each stage kernel (the field's coefficients are read as float64)."""
    x = RNG.random((12, 12, 12))
    for dtype in (np.float32, np.float64):
        T = _rotate() @ _field(U3.astype(dtype), 3) @ tf.Scale(1.01) @ _barrel()
        for img in (x, x.astype(np.float32)):
            on("cpu", tf.lazy(img, chunks=6).transform(T, order=1))
    test_chains_of_1_and_2_axes_and_views()
    for kernel in (chain._FIRST_AFFINE, chain._AFFINE_POINTS, chain._FIELD_BLOCK):
        assert len(kernel.signatures) <= 1


def test_a_cache_directory_others_can_write_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "transfuse"
    shared.mkdir()
    shared.chmod(0o777)
    path = chain.expression_cache_dir()
    assert not path.startswith(str(tmp_path))
    shared.chmod(0o755)
    assert chain.expression_cache_dir().startswith(str(shared))


def test_a_coordinate_array_first_stage(no_coordinate_arrays):
    """A CoordinateMap's block read point by point, then a field, an expression, an affine."""
    x = RNG.random((30, 33))
    c = np.indices((20, 25)).astype(float) * 1.3 + 0.7
    g = np.indices((12, 13)).astype(float)
    u = np.stack([1.5 * np.sin(g[1] / 3), np.cos(g[0] / 2)])
    field = tf.DisplacementField(u, spacing=2.5, order=3, mode="reflect")
    y, w = tf.symbols("y x")
    expr = tf.ExprMap([y + 0.1 * w, w - 0.05 * y * y / 30], (y, w))
    for T in (field @ tf.CoordinateMap(c), tf.Rotate(3) @ expr @ field @ tf.CoordinateMap(c)):
        lazy = tf.lazy(x, chunks=11).transform(T, order=1, mode="mirror")
        ref = on("scipy", lazy)
        with no_coordinate_arrays:
            got = on("cpu", lazy)
        np.testing.assert_array_equal(got, ref)
    assert no_coordinate_arrays.chunks > 0
