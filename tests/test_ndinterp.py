"""transfuse.ndinterp against scipy.ndimage, and its compatibility with dask_image.ndinterp.

Every mode x order x prefilter of ``affine_transform``, ``map_coordinates`` and ``rotate`` is
checked by the parity matrix, ``tests/test_parity_matrix.py``; this module checks the rest
(matrix forms, 3-D, dtypes, array types, the spline filters, the dask_image signatures and the
errors).
"""

from __future__ import annotations

import inspect
import sys
import types

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

from tests.helpers import random_image
from tests.strategies import MODES, ORDERS
from transfuse import ndinterp

FUNCS = ["affine_transform", "map_coordinates", "rotate", "spline_filter", "spline_filter1d"]

X2 = random_image((19, 23), seed=20260501, kind="unit")
X3 = random_image((9, 10, 11), seed=20260502, kind="unit")
# Generic values: no coordinate lands within rounding of an order-0 tie.
MATRIX = np.array([[0.8137, 0.3121], [-0.2713, 1.1297]])
OFFSET = np.array([-2.713, 3.371])


def rel_err(actual, expected):
    scale = max(float(np.abs(expected).max()), 1e-300)
    return float(np.abs(np.asarray(actual) - expected).max()) / scale


# -- affine_transform ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([0.7, 1.3]),  # diagonal (scipy's zoom/shift arithmetic)
        MATRIX,
        np.hstack([MATRIX, OFFSET[:, None]]),  # (n, n+1)
        np.vstack([np.hstack([MATRIX, OFFSET[:, None]]), [0, 0, 1]]),  # homogeneous
    ],
    ids=["diagonal", "square", "n_by_n+1", "homogeneous"],
)
@pytest.mark.parametrize("chunks", [(19, 23), (5, 4), (10, 23)])
def test_affine_transform_matrix_forms_and_chunkings(matrix, chunks):
    x = da.from_array(X2, chunks=chunks)
    offset = OFFSET if matrix.ndim == 1 or matrix.shape[1] == 2 else 0.0
    for order in (1, 3):
        y = ndinterp.affine_transform(x, matrix, offset, order=order, mode="mirror")
        ref = ndi.affine_transform(X2, matrix, offset, order=order, mode="mirror")
        np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["constant", "nearest", "wrap", "reflect"])
def test_affine_transform_3d(mode):
    rot = np.array([[0.96, -0.2, 0.1], [0.21, 0.97, -0.05], [-0.08, 0.06, 1.02]])
    y = ndinterp.affine_transform(
        da.from_array(X3, chunks=4), rot, [0.5, -1.2, 0.3], order=3, mode=mode
    )
    ref = ndi.affine_transform(X3, rot, [0.5, -1.2, 0.3], order=3, mode=mode)
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
@pytest.mark.parametrize("order", [0, 1, 3])
def test_affine_transform_dtypes(dtype, order):
    x = (X2 * 200 - (50 if dtype == np.int16 else 0)).astype(dtype)
    y = ndinterp.affine_transform(da.from_array(x, chunks=8), MATRIX, OFFSET, order=order)
    ref = ndi.affine_transform(x, MATRIX, OFFSET, order=order)
    assert y.dtype == ref.dtype == dtype
    out = y.compute()
    assert out.dtype == dtype
    tol = 0 if np.dtype(dtype).kind in "iu" else 1e-5
    np.testing.assert_allclose(out.astype(float), ref.astype(float), rtol=0, atol=tol)
    y32 = ndinterp.affine_transform(x, MATRIX, OFFSET, order=order, output=np.float64)
    ref32 = ndi.affine_transform(x, MATRIX, OFFSET, order=order, output=np.float64)
    assert y32.dtype == np.float64
    np.testing.assert_allclose(y32.compute(), ref32, rtol=0, atol=1e-10)


def test_affine_transform_inputs_numpy_list_dask_give_the_same():
    ref = ndi.affine_transform(X2, MATRIX, OFFSET, order=1)
    for image in (X2, X2.tolist(), da.from_array(X2, chunks=6)):
        y = ndinterp.affine_transform(image, MATRIX, OFFSET)
        assert isinstance(y, da.Array)
        np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-12)


def test_affine_transform_complex_input():
    z = X2 + 1j * X2[::-1]
    y = ndinterp.affine_transform(da.from_array(z, chunks=7), MATRIX, OFFSET, order=3, cval=1 - 2j)
    ref = ndi.affine_transform(z, MATRIX, OFFSET, order=3, cval=1 - 2j)
    assert y.dtype == ref.dtype
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


# -- rotate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (2, 0), (-1, -3)])
def test_rotate_3d_axes(axes):
    y = ndinterp.rotate(da.from_array(X3, chunks=5), -71, axes=axes, order=3, mode="wrap")
    ref = ndi.rotate(X3, -71, axes=axes, order=3, mode="wrap")
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


def test_rotate_default_chunks_and_order():
    x = da.from_array(X2, chunks=(6, 9))
    y = ndinterp.rotate(x, 20)
    assert max(y.chunks[0]) == 6 and max(y.chunks[1]) == 9
    np.testing.assert_allclose(y.compute(), ndi.rotate(X2, 20, order=1), rtol=0, atol=1e-12)


# -- map_coordinates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "out_shape, chunks", [((200,), (2, 45)), ((6, 7, 8), (2, 4, 3, 5)), ((1,), (2, 1))]
)
def test_map_coordinates_output_rank_differs_from_input(out_shape, chunks, rng):
    coords = rng.uniform(-2, 24, (2, *out_shape))
    c = da.from_array(coords, chunks=chunks)
    y = ndinterp.map_coordinates(da.from_array(X2, chunks=8), c, order=3, mode="grid-constant")
    ref = ndi.map_coordinates(X2, coords, order=3, mode="grid-constant")
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


def test_map_coordinates_one_dimensional_input(rng):
    x = rng.random(40)
    coords = rng.uniform(-5, 45, (1, 6, 7))
    y = ndinterp.map_coordinates(da.from_array(x, chunks=9), coords, mode="mirror")
    np.testing.assert_allclose(
        y.compute(), ndi.map_coordinates(x, coords, mode="mirror"), rtol=0, atol=1e-10
    )


def test_map_coordinates_numpy_inputs_and_dtype(rng):
    x = (X2 * 255).astype(np.uint8)
    coords = rng.uniform(0, 18, (2, 50))
    y = ndinterp.map_coordinates(x, coords, order=1)
    ref = ndi.map_coordinates(x, coords, order=1)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y.compute(), ref)


def test_map_coordinates_complex_input(rng):
    z = X2 - 2j * X2.T[:19, :19].mean()
    coords = rng.uniform(-3, 25, (2, 40))
    y = ndinterp.map_coordinates(z, coords, order=3, mode="wrap", cval=2j)
    ref = ndi.map_coordinates(z, coords, order=3, mode="wrap", cval=2j)
    assert y.dtype == ref.dtype
    np.testing.assert_allclose(y.compute(), ref, rtol=0, atol=1e-10)


def test_map_coordinates_empty_coordinates():
    y = ndinterp.map_coordinates(X2, np.zeros((2, 0)))
    assert y.shape == (0,) and y.compute().shape == (0,)


# -- spline filters ------------------------------------------------------------------------------


SPLINE_CHUNKS = [(19, 23), (7, 6), (4, 23)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("chunks", SPLINE_CHUNKS)
def test_spline_filter_matches_scipy(mode, order, chunks):
    y = ndinterp.spline_filter(da.from_array(X2, chunks=chunks), order, mode=mode)
    ref = ndi.spline_filter(X2, order, mode=mode)
    assert y.dtype == np.float64 and y.chunks == da.from_array(X2, chunks=chunks).chunks
    assert rel_err(y.compute(), ref) < 1e-8


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_spline_filter1d_matches_scipy(mode, order, axis):
    x = da.from_array(X2, chunks=(7, 6))
    y = ndinterp.spline_filter1d(x, order, axis=axis, mode=mode)
    ref = ndi.spline_filter1d(X2, order, axis=axis, mode=mode)
    assert rel_err(y.compute(), ref) < 1e-8


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [2, 5])
def test_spline_filters_long_axis_with_halos(mode, order, rng):
    # axis longer than four halos: chunks are filtered with halos, not whole
    x = rng.random((3, 400))
    xd = da.from_array(x, chunks=(2, 37))
    y1 = ndinterp.spline_filter1d(xd, order, mode=mode)
    assert rel_err(y1.compute(), ndi.spline_filter1d(x, order, mode=mode)) < 1e-8
    y = ndinterp.spline_filter(xd, order, mode=mode)
    assert rel_err(y.compute(), ndi.spline_filter(x, order, mode=mode)) < 1e-8


def test_spline_filter_depth_override_is_used(rng):
    x = rng.random(400)
    ref = ndi.spline_filter1d(x, 3, mode="mirror")
    shallow = ndinterp.spline_filter1d(da.from_array(x, chunks=50), 3, depth=2).compute()
    exact = ndinterp.spline_filter1d(da.from_array(x, chunks=50), 3).compute()
    assert rel_err(exact, ref) < 1e-10
    # a 2-sample halo leaves an error of about pole**2 (0.07) near chunk borders
    assert 1e-4 < rel_err(shallow, ref) < 0.2
    shallow_nd = ndinterp.spline_filter(da.from_array(x, chunks=50), 3, depth=(2,)).compute()
    assert 1e-4 < rel_err(shallow_nd, ndi.spline_filter(x, 3)) < 0.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["mirror", "wrap", "nearest"])
def test_spline_filter_output_dtype(dtype, mode):
    x = da.from_array(X3, chunks=4)
    y = ndinterp.spline_filter(x, 3, output=dtype, mode=mode)
    ref = ndi.spline_filter(X3, 3, output=dtype, mode=mode)
    assert y.dtype == dtype and y.compute().dtype == dtype
    assert rel_err(y.compute(), ref) < (1e-6 if dtype == np.float32 else 1e-8)
    y1 = ndinterp.spline_filter1d(x, 3, axis=1, output=dtype, mode=mode)
    ref1 = ndi.spline_filter1d(X3, 3, axis=1, output=dtype, mode=mode)
    assert y1.dtype == dtype
    assert rel_err(y1.compute(), ref1) < (1e-6 if dtype == np.float32 else 1e-8)


def test_spline_filter_output_chunks_and_complex():
    z = X2 + 1j * X2[::-1]
    y = ndinterp.spline_filter(
        da.from_array(z, chunks=7), 3, output=np.complex128, output_chunks=10
    )
    assert y.chunks == ((10, 9), (10, 10, 3))
    assert rel_err(y.compute(), ndi.spline_filter(z, 3, output=np.complex128)) < 1e-8


# -- array types ---------------------------------------------------------------------------------


class _FakeCupyArray(np.ndarray):
    """Stands for cupy.ndarray: only its module name is looked at."""


_FakeCupyArray.__module__ = "cupy"


def _fake_cupy():
    # dask registers its cupy dispatch lazily when it meets a "cupy" type: give it what it
    # reads (registrations for the fake type only, harmless to other tests)
    mod = types.ModuleType("cupy")
    mod.ndarray = _FakeCupyArray
    for fname in ("take", "tensordot", "einsum"):
        setattr(mod, fname, getattr(np, fname))
    mod.concatenate = lambda arrays, axis=0: np.concatenate(arrays, axis).view(_FakeCupyArray)
    mod.asnumpy = lambda a: np.asarray(a).view(np.ndarray)
    mod.asarray = lambda a: np.asarray(a).view(_FakeCupyArray)
    mod.empty = lambda shape, dtype=float: np.empty(shape, dtype).view(_FakeCupyArray)
    return mod


def test_cupy_inputs_default_to_the_gpu_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    xg = da.from_array(X2, chunks=7).map_blocks(
        lambda b: b.view(_FakeCupyArray), meta=np.empty((0, 0)).view(_FakeCupyArray)
    )
    seen = []
    monkeypatch.setattr(ndinterp, "get_executor", lambda name=None: seen.append(name))
    for call in (
        lambda: ndinterp._backend(None, xg),
        lambda: ndinterp._backend(None, X2.view(_FakeCupyArray)),
        lambda: ndinterp._backend("cpu", xg),
        lambda: ndinterp._backend(None, X2),
    ):
        call()
    assert seen == ["gpu", "gpu", "cpu", None]


def test_cupy_backed_inputs_on_a_host_backend_return_cupy(monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    xg = da.from_array(X2, chunks=7).map_blocks(
        lambda b: b.view(_FakeCupyArray), meta=np.empty((0, 0)).view(_FakeCupyArray)
    )
    y = ndinterp.affine_transform(xg, MATRIX, OFFSET, order=3, executor="cpu")
    assert type(y._meta).__module__ == "cupy"
    out = y.compute()
    assert type(out).__module__ == "cupy"
    ref = ndi.affine_transform(X2, MATRIX, OFFSET, order=3)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=0, atol=1e-10)
    coords = rng.uniform(0, 18, (2, 30)).view(_FakeCupyArray)
    ym = ndinterp.map_coordinates(X2.view(_FakeCupyArray), coords, order=1, executor="cpu")
    np.testing.assert_allclose(
        np.asarray(ym.compute()), ndi.map_coordinates(X2, np.asarray(coords), order=1), atol=1e-12
    )


def test_real_cupy_if_available():
    cp = pytest.importorskip("cupy")
    try:
        xg = da.from_array(cp.asarray(X2), chunks=7)
    except Exception as exc:  # pragma: no cover - no GPU
        pytest.skip(f"cupy without a usable device: {exc}")
    y = ndinterp.rotate(xg, 30, order=3)
    out = y.compute()
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(out), ndi.rotate(X2, 30, order=3), atol=1e-10)


# -- compatibility with dask_image ---------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCS)
def test_signature_matches_dask_image(name):
    dask_image = pytest.importorskip("dask_image.ndinterp")
    theirs = inspect.signature(getattr(dask_image, name)).parameters
    ours = inspect.signature(getattr(ndinterp, name)).parameters
    # one addition, keyword-only: the backend (executors issue)
    assert [p for p in ours if p != "executor"] == list(theirs)
    if "executor" in ours:
        assert ours["executor"].kind is inspect.Parameter.KEYWORD_ONLY
    for pname, p in theirs.items():
        q = ours[pname]
        assert q.kind == p.kind, pname
        if name == "map_coordinates" and pname == "prefilter":
            assert (p.default, q.default) == (False, True)  # scipy's default: exact here
        else:
            assert q.default == p.default, pname


def test_the_calls_that_work_on_dask_image_work_here(rng):
    dask_image = pytest.importorskip("dask_image.ndinterp")
    x = da.from_array(X2, chunks=8)
    c = rng.uniform(0, 18, (2, 40))
    coords = da.from_array(c, chunks=(2, 20))
    calls = [
        ("affine_transform", (x, MATRIX), {}, lambda: ndi.affine_transform(X2, MATRIX, order=1)),
        (
            "affine_transform",
            (x, MATRIX, OFFSET, (15, 16), 1, (8, 8)),
            {"mode": "nearest"},
            lambda: ndi.affine_transform(X2, MATRIX, OFFSET, (15, 16), order=1, mode="nearest"),
        ),
        (
            "affine_transform",
            (x,),
            {"matrix": MATRIX, "offset": 1.5, "cval": 2.0},
            lambda: ndi.affine_transform(X2, MATRIX, 1.5, order=1, cval=2.0),
        ),
        ("rotate", (x, 15), {}, lambda: ndi.rotate(X2, 15, order=1)),
        (
            "rotate",
            (x, 15, (0, 1), False, (6, 6)),
            {"order": 0, "cval": 3.0},
            lambda: ndi.rotate(X2, 15, (0, 1), False, order=0, cval=3.0),
        ),
        ("map_coordinates", (x, coords), {"order": 1}, lambda: ndi.map_coordinates(X2, c, order=1)),
        (
            "map_coordinates",
            (x, coords, 3, "nearest", 0.0, False),
            {},
            lambda: ndi.map_coordinates(X2, c, order=3, mode="nearest", prefilter=False),
        ),
        ("spline_filter", (x,), {}, lambda: ndi.spline_filter(X2)),
        (
            "spline_filter",
            (x, 3, np.float64, "mirror"),
            {"depth": 6},
            lambda: ndi.spline_filter(X2, 3, np.float64, "mirror"),
        ),
        (
            "spline_filter1d",
            (x, 2, 0),
            {"output": np.float64, "mode": "reflect"},
            lambda: ndi.spline_filter1d(X2, 2, 0, output=np.float64, mode="reflect"),
        ),
    ]
    for name, args, kwargs, reference in calls:
        theirs = getattr(dask_image, name)(*args, **kwargs)
        ours = getattr(ndinterp, name)(*args, **kwargs)
        assert isinstance(ours, da.Array)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
        tol = 1e-4 if kwargs.get("depth") else 1e-10  # depth=6 leaves 0.268**6 ~ 4e-4
        np.testing.assert_allclose(ours.compute(), reference(), rtol=0, atol=tol, err_msg=name)


# -- errors when the graph is built ---------------------------------------------------------------


@pytest.mark.parametrize(
    "matrix",
    [[1, 2, 3], np.ones((4, 4)), np.ones((2, 4)), np.ones((3, 2)), np.ones((2, 2, 2)), []],
    ids=["1d-wrong-length", "4x4", "2x4", "3x2", "3d", "empty"],
)
def test_malformed_matrix_raises_like_scipy(matrix):
    with pytest.raises(RuntimeError):
        ndi.affine_transform(X2, np.asarray(matrix))
    with pytest.raises(ValueError) as info:
        ndinterp.affine_transform(da.from_array(X2, chunks=5), matrix)
    assert isinstance(info.value, RuntimeError)  # caught by code written for scipy too


def test_bad_homogeneous_row_and_offsets_raise_valueerror():
    bad_row = [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="bottom row"):
        ndinterp.affine_transform(X2, bad_row)
    for offset in ([1, 2, 3], [[1, 2]], "a", np.nan):
        with pytest.raises(ValueError):
            ndinterp.affine_transform(X2, MATRIX, offset)


@pytest.mark.parametrize("order", [-1, 6, 7, 2.5, "3", True])
@pytest.mark.parametrize("name", FUNCS)
def test_bad_order_raises_when_built(name, order):
    calls = {
        "affine_transform": lambda: ndinterp.affine_transform(X2, MATRIX, order=order),
        "map_coordinates": lambda: ndinterp.map_coordinates(X2, np.zeros((2, 3)), order=order),
        "rotate": lambda: ndinterp.rotate(X2, 10, order=order),
        "spline_filter": lambda: ndinterp.spline_filter(X2, order),
        "spline_filter1d": lambda: ndinterp.spline_filter1d(X2, order),
    }
    with pytest.raises(ValueError, match="order") as info:
        calls[name]()
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("name", FUNCS)
def test_bad_mode_raises_when_built(name):
    calls = {
        "affine_transform": lambda: ndinterp.affine_transform(X2, MATRIX, mode="edge"),
        "map_coordinates": lambda: ndinterp.map_coordinates(X2, np.zeros((2, 3)), mode="edge"),
        "rotate": lambda: ndinterp.rotate(X2, 10, mode="edge"),
        "spline_filter": lambda: ndinterp.spline_filter(X2, mode="edge"),
        "spline_filter1d": lambda: ndinterp.spline_filter1d(X2, mode="edge"),
    }
    with pytest.raises(RuntimeError, match="mode"):
        calls[name]()


def test_other_argument_errors():
    with pytest.raises(TypeError, match="unexpected keyword"):
        ndinterp.affine_transform(X2, MATRIX, interpolation="linear")
    with pytest.raises(TypeError, match="unexpected keyword"):
        ndinterp.rotate(X2, 10, offset=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        ndinterp.spline_filter(X2, cval=1)
    with pytest.raises(ValueError, match="output"):
        ndinterp.affine_transform(X2, MATRIX, output=np.empty_like(X2))
    with pytest.raises(RuntimeError, match="coordinate"):
        ndinterp.map_coordinates(X2, np.zeros((3, 4)))
    with pytest.raises(RuntimeError, match="rank"):
        ndinterp.map_coordinates(X2, np.zeros(2))
    with pytest.raises(TypeError, match="[Cc]omplex"):
        ndinterp.map_coordinates(X2, np.zeros((2, 3), complex))
    with pytest.raises(ValueError, match="NaN"):
        ndinterp.map_coordinates(X2, da.from_array(np.full((2, 3), np.nan)))
    with pytest.raises(ValueError, match="axis"):
        ndinterp.spline_filter1d(X2, axis=2)
    with pytest.raises(ValueError, match="depth"):
        ndinterp.spline_filter(X2, depth=-1)
    with pytest.raises(ValueError, match="axes"):
        ndinterp.rotate(X2, 10, axes=(0, 0))
    with pytest.raises(ValueError, match="cval"):
        ndinterp.affine_transform(X2, MATRIX, cval=np.inf)
    with pytest.raises(ValueError, match="output_chunks"):
        ndinterp.affine_transform(X2, MATRIX, output_chunks=(0, 5))
