"""Property suite: chunked results equal scipy.ndimage's whole-array results.

The reference is always scipy.ndimage called on the whole numpy array with the same
arguments. Tolerances (see :func:`assert_parity`):

* orders 0 and 1: bit for bit (every dtype);
* orders 2-5, float64 output: ``1e-8 * max(|input|, |cval|)``;
* float32 output: the same plus one float32 spacing of the reference value (a ~1e-15
  difference in float64 may round to the neighbouring float32);
* integer output: equal, except that a value scipy computed within the tolerance of a
  rounding tie (``k + 0.5``) may land on either side.

Every family draws: ndim 1-3, axes of 1 to ~20 samples, any input and output chunking
(including 1-3 sample chunks, smaller than the spline support), all eight modes, orders
0-5, prefilter on and off, cval != 0, offsets far outside the array and output shapes
different from the input's. Example counts come from the hypothesis profile
(``tests/executors/conftest.py``; ``TRANSFUSE_HYPOTHESIS=large`` for the long run).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import transfuse
from transfuse import Affine, Flip, Permute, Rotate, Scale, Shear, Translate
from transfuse.planner.options import ResampleOptions

MODES = list(transfuse.MODES)  # every scipy.ndimage mode name


def _examples(factor: float) -> settings:
    """Settings scaling the loaded profile's example count (keeps the profile's other
    settings, so ``TRANSFUSE_HYPOTHESIS=large`` scales every family)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


def compute(img):
    return img.compute(scheduler="synchronous")


# -- tolerance --------------------------------------------------------------------------------
def assert_parity(got, ref, *, x, cval, order, ref_float=None):
    """Assert ``got`` equals scipy's ``ref`` within the suite's tolerance (module docstring).

    ``ref_float`` is scipy's result computed in float64 (needed for integer outputs of
    orders >= 2, to locate rounding ties).
    """
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    if order <= 1:
        np.testing.assert_array_equal(got, ref, strict=True)
        return
    scale = max(float(np.max(np.abs(x.astype(np.float64)))), abs(float(cval)))
    tol = 1e-8 * scale
    kind = ref.dtype.kind
    if kind == "f":
        atol = tol
        if ref.dtype == np.float32:
            atol = tol + np.spacing(np.abs(ref))
        err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        bad = ~(err <= atol)
        assert not bad.any(), (
            f"max error {err.max():.3g} > tolerance {np.max(atol):.3g} "
            f"({int(bad.sum())} of {bad.size} points)"
        )
        return
    assert ref_float is not None
    differ = got != ref
    if differ.any():
        frac = ref_float - np.floor(ref_float)
        near_tie = np.abs(frac - 0.5) <= tol
        off_by_one = np.abs(got.astype(np.int64) - ref.astype(np.int64)) <= 1
        bad = differ & ~(near_tie & off_by_one)
        assert not bad.any(), (
            f"{int(bad.sum())} integer outputs differ away from rounding ties: "
            f"got {got[bad][:5]}, scipy {ref[bad][:5]}, float {ref_float[bad][:5]}"
        )


# -- strategies -------------------------------------------------------------------------------
def partition(n: int):
    """Chunk sizes splitting ``n``: regular sizes or arbitrary cut points."""
    regular = st.integers(1, n).map(lambda c: tuple([c] * (n // c) + ([n % c] if n % c else [])))
    if n == 1:
        return regular
    cuts = st.sets(st.integers(1, n - 1), max_size=min(n - 1, 6)).map(
        lambda s: tuple(np.diff([0, *sorted(s), n]).tolist())
    )
    return st.one_of(regular, cuts)


def _max_side(ndim: int) -> int:
    return {1: 20, 2: 12, 3: 6}[ndim]


@st.composite
def shapes(draw, ndim, max_side=None):
    max_side = _max_side(ndim) if max_side is None else max_side
    # short axes (1-6 samples) are drawn as often as longer ones
    side = st.one_of(st.integers(1, 6), st.integers(1, max_side))
    return tuple(draw(side) for _ in range(ndim))


@st.composite
def chunkings(draw, shape):
    return tuple(draw(partition(n)) for n in shape)


def make_data(kind: str, shape, seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if kind == "constant":
            return np.full(shape, rng.integers(info.min, info.max, endpoint=True), dtype=dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if kind == "normal":
        x = rng.standard_normal(shape)
    elif kind == "uniform":
        x = rng.uniform(-1e3, 1e3, shape)
    elif kind == "integers":  # integer-valued floats: order-0/1 ties are common
        x = rng.integers(-4, 5, shape).astype(np.float64)
    else:
        x = np.full(shape, rng.standard_normal())
    return x.astype(dtype)


DATA_KINDS = st.sampled_from(["normal", "normal", "uniform", "integers", "constant"])

#: coordinates far outside the array: offsets of 1e3-1e6 samples (with a fraction)
FAR = st.sampled_from([1e3, -1e3, 1e4 + 0.25, -3e5 - 0.5, 1e6 + 0.3, -1e6 - 0.7])
OFFSET = st.one_of(
    st.floats(-15, 15, allow_nan=False).map(lambda v: round(v, 2)),
    st.floats(-15, 15, allow_nan=False),
    st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0]),
    FAR,
)
ENTRY = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, -0.5]),
    st.floats(-2.5, 2.5, allow_nan=False).map(lambda v: round(v, 3)),
    st.floats(-2.5, 2.5, allow_nan=False),
)
NONZERO = st.one_of(
    st.sampled_from([1.0, -1.0, 0.5, 2.0, 0.3, -1.7, 1e-3]),
    st.floats(0.05, 3.0),
    st.floats(-3.0, -0.05),
)
CVAL = st.one_of(st.just(0.0), st.sampled_from([1.5, -2.25, 7.0]), st.floats(-10, 10))


@st.composite
def linear_parts(draw, ndim):
    """An (ndim, ndim) matrix: general, near identity, a signed permutation, or diagonal."""
    kind = draw(st.sampled_from(["general", "near_identity", "permutation", "diagonal"]))
    if kind == "general":
        return np.array([[draw(ENTRY) for _ in range(ndim)] for _ in range(ndim)])
    if kind == "near_identity":
        eps = st.floats(-0.3, 0.3, allow_nan=False)
        return np.eye(ndim) + np.array([[draw(eps) for _ in range(ndim)] for _ in range(ndim)])
    if kind == "permutation":
        perm = draw(st.permutations(range(ndim)))
        m = np.zeros((ndim, ndim))
        for i, j in enumerate(perm):
            m[i, j] = draw(NONZERO)
        return m
    return np.diag([draw(NONZERO) for _ in range(ndim)])


@st.composite
def options(draw):
    return dict(
        order=draw(st.integers(0, 5)),
        mode=draw(st.sampled_from(MODES)),
        cval=draw(CVAL),
        prefilter=draw(st.booleans()),
    )


@st.composite
def matrix_forms(draw, ndim):
    """``(matrix, offset)`` in one of the forms scipy accepts, with scipy's meaning."""
    form = draw(st.sampled_from(["diag", "square", "n_n1", "homogeneous"]))
    offset = np.array([draw(OFFSET) for _ in range(ndim)])
    if form == "diag":
        diag = np.array([draw(NONZERO) for _ in range(ndim)])
        scalar_offset = draw(st.booleans())
        return diag, (float(offset[0]) if scalar_offset else offset)
    lin = draw(linear_parts(ndim))
    if form == "square":
        return lin, offset
    m = np.concatenate([lin, offset[:, None]], axis=1)
    if form == "n_n1":
        return m, 0.0
    return np.concatenate([m, [[0.0] * ndim + [1.0]]], axis=0), 0.0


@st.composite
def cases(draw, max_ndim=3):
    ndim = draw(st.integers(1, max_ndim))
    shape = draw(shapes(ndim))
    out_shape = draw(st.one_of(st.just(shape), shapes(ndim)))
    return dict(
        ndim=ndim,
        shape=shape,
        chunks=draw(chunkings(shape)),
        out_shape=out_shape,
        out_chunks=draw(chunkings(out_shape)),
        data=draw(DATA_KINDS),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# -- families ---------------------------------------------------------------------------------
@_examples(3)
@given(case=cases(), mat=st.data(), opts=options())
def test_affine_transform_matches_scipy(case, mat, opts):
    """``.affine_transform`` with every matrix form, offsets (far ones too), output shapes."""
    matrix, offset = mat.draw(matrix_forms(case["ndim"]))
    x = make_data(case["data"], case["shape"], case["seed"])
    ref = ndi.affine_transform(x, matrix, offset, output_shape=case["out_shape"], **opts)
    img = transfuse.lazy(x, case["chunks"]).affine_transform(
        matrix,
        offset,
        output_shape=case["out_shape"],
        output_chunks=case["out_chunks"],
        **opts,
    )
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


def _random_step(draw, ndim, shape):
    kinds = ["translate", "scale", "affine", "flip"]
    if ndim >= 2:
        kinds += ["rotate", "shear", "permute"]
    kind = draw(st.sampled_from(kinds))
    if kind == "translate":
        return Translate(tuple(draw(OFFSET) for _ in range(ndim)))
    if kind == "scale":
        return Scale(tuple(draw(NONZERO) for _ in range(ndim)))
    if kind == "affine":
        return Affine(draw(linear_parts(ndim)), [draw(OFFSET) for _ in range(ndim)], ndim=ndim)
    if kind == "flip":
        axis = draw(st.integers(0, ndim - 1))
        return Flip((axis,), center=(shape[axis] - 1) / 2, ndim=ndim)
    axes = tuple(draw(st.permutations(range(ndim)))[:2])
    if kind == "rotate":
        angle = draw(st.one_of(st.sampled_from([90.0, -90.0, 180.0, 45.0]), st.floats(-360, 360)))
        center = tuple(draw(st.floats(-3, 12)) for _ in range(ndim))
        return Rotate(
            angle, axes=axes, center=draw(st.one_of(st.none(), st.just(center))), ndim=ndim
        )
    if kind == "shear":
        return Shear(draw(st.floats(-1.5, 1.5)), axes=axes, ndim=ndim)
    return Permute(tuple(draw(st.permutations(range(ndim)))))


@_examples(2)
@given(case=cases(), data=st.data(), opts=options())
def test_fused_chain_matches_one_scipy_affine_transform(case, data, opts):
    """``lazy(x).transform(A).transform(B)...`` with shared options equals ONE
    ``scipy.ndimage.affine_transform`` with ``(A @ B @ ...).matrix()``; intermediate output
    shapes do not crop."""
    ndim, shape = case["ndim"], case["shape"]
    steps = [_random_step(data.draw, ndim, shape) for _ in range(data.draw(st.integers(1, 4)))]
    x = make_data(case["data"], shape, case["seed"])
    img = transfuse.lazy(x, case["chunks"])
    for i, t in enumerate(steps):
        last = i == len(steps) - 1
        img = img.transform(
            t,
            output_shape=case["out_shape"] if last else data.draw(shapes(ndim)),
            output_chunks=case["out_chunks"] if last else None,
            **opts,
        )
    composed = steps[0]
    for t in steps[1:]:
        composed = composed @ t
    ref = ndi.affine_transform(x, composed.matrix(ndim), output_shape=case["out_shape"], **opts)
    assert len(img.plan().passes) == 1
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


@_examples(1)
@given(case=cases(), data=st.data(), opts1=options(), opts2=options())
def test_unfused_passes_match_sequential_scipy(case, data, opts1, opts2):
    """Steps with different options are resampled one after the other: each pass equals
    scipy applied to the previous pass's (chunked) result, with that pass's options."""
    # options that differ only in spelling (reflect / grid-mirror) fuse into one pass
    assume(ResampleOptions(**opts1) != ResampleOptions(**opts2))
    ndim, shape = case["ndim"], case["shape"]
    t1 = Affine(data.draw(linear_parts(ndim)), [data.draw(OFFSET) for _ in range(ndim)], ndim=ndim)
    t2 = _random_step(data.draw, ndim, case["out_shape"])
    mid_shape = case["out_shape"]
    out_shape = data.draw(shapes(ndim))
    x = make_data(case["data"], shape, case["seed"])
    first = transfuse.lazy(x, case["chunks"]).transform(
        t1, output_shape=mid_shape, output_chunks=case["out_chunks"], **opts1
    )
    both = first.transform(t2, output_shape=out_shape, output_chunks=3, **opts2)
    assert len(both.plan().passes) == 2
    mid = compute(first)
    ref_mid = ndi.affine_transform(x, t1.matrix(ndim), output_shape=mid_shape, **opts1)
    assert_parity(mid, ref_mid, x=x, cval=opts1["cval"], order=opts1["order"])
    ref = ndi.affine_transform(mid, t2.matrix(ndim), output_shape=out_shape, **opts2)
    assert_parity(compute(both), ref, x=mid, cval=opts2["cval"], order=opts2["order"])


@_examples(2)
@given(
    case=cases(),
    mat=st.data(),
    opts=options(),
    dtype=st.sampled_from([np.uint8, np.int16, np.float32, np.float64]),
    output=st.sampled_from([None, np.uint8, np.int16, np.float32, np.float64]),
)
def test_dtypes_match_scipy(case, mat, opts, dtype, output):
    """uint8/int16/float32 inputs keep their dtype (integers round half away from zero and
    saturate); ``output=`` is honoured."""
    matrix, offset = mat.draw(matrix_forms(case["ndim"]))
    x = make_data(case["data"], case["shape"], case["seed"], dtype)
    if np.dtype(dtype).kind == "f":
        x = (x * (100 if case["data"] == "normal" else 1)).astype(dtype)
    kw = dict(output_shape=case["out_shape"], **opts)
    ref = ndi.affine_transform(x, matrix, offset, output=output, **kw)
    ref_float = ndi.affine_transform(x, matrix, offset, output=np.float64, **kw)
    img = transfuse.lazy(x, case["chunks"]).affine_transform(
        matrix, offset, output=output, output_chunks=case["out_chunks"], **kw
    )
    assert img.dtype == ref.dtype
    assert_parity(
        compute(img), ref, x=x, cval=opts["cval"], order=opts["order"], ref_float=ref_float
    )


@_examples(2)
@given(data=st.data(), opts=options())
def test_long_axes_chunked_prefilter(data, opts):
    """Axes long enough that the prefilter runs chunk by chunk with halos (and halos that
    fold past the array ends), against scipy's whole-array filter."""
    ndim = data.draw(st.integers(1, 2))
    long_n = data.draw(st.integers(40, 260))
    shape = (
        (long_n,)
        if ndim == 1
        else tuple(data.draw(st.permutations([long_n, data.draw(st.integers(1, 4))])))
    )
    chunks = tuple(
        data.draw(st.one_of(st.integers(1, 40), st.integers(n // 3 + 1, n))) if n > 4 else n
        for n in shape
    )
    matrix, offset = data.draw(matrix_forms(ndim))
    out_shape = tuple(data.draw(st.sampled_from([n, max(1, n // 2), n + 7])) for n in shape)
    x = make_data(data.draw(DATA_KINDS), shape, data.draw(st.integers(0, 2**32 - 1)))
    ref = ndi.affine_transform(x, matrix, offset, output_shape=out_shape, **opts)
    img = transfuse.lazy(x, chunks).affine_transform(
        matrix, offset, output_shape=out_shape, output_chunks=data.draw(st.integers(1, 64)), **opts
    )
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


# -- the image methods against the scipy function of the same name ------------------------------
@_examples(1)
@given(case=cases(), data=st.data(), opts=options())
def test_shift_matches_scipy(case, data, opts):
    ndim = case["ndim"]
    shift = data.draw(st.one_of(OFFSET, st.lists(OFFSET, min_size=ndim, max_size=ndim)))
    x = make_data(case["data"], case["shape"], case["seed"])
    ref = ndi.shift(x, shift, **opts)
    img = transfuse.lazy(x, case["chunks"]).shift(shift, output_chunks=case["chunks"], **opts)
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


@pytest.mark.filterwarnings("ignore:It is recommended to use mode")
@_examples(1)
@given(case=cases(), data=st.data(), opts=options())
def test_zoom_matches_scipy(case, data, opts):
    ndim, shape = case["ndim"], case["shape"]
    factor = st.one_of(st.sampled_from([1.0, 2.0, 0.5, 1.5, 3.0]), st.floats(0.2, 3.0))
    zoom = data.draw(st.one_of(factor, st.lists(factor, min_size=ndim, max_size=ndim)))
    # scipy returns an empty array where round(n * zoom) is 0; transfuse refuses it when
    # the pipeline is built (by design)
    assume(all(round(n * z) >= 1 for n, z in zip(shape, np.broadcast_to(zoom, ndim), strict=True)))
    grid_mode = data.draw(st.booleans())
    if grid_mode and opts["mode"] == "constant":
        opts["mode"] = "grid-constant"  # what scipy switches to (with a warning)
    x = make_data(case["data"], shape, case["seed"])
    ref = ndi.zoom(x, zoom, grid_mode=grid_mode, **opts)
    img = transfuse.lazy(x, case["chunks"]).zoom(
        zoom, grid_mode=grid_mode, output_chunks=data.draw(st.integers(1, 8)), **opts
    )
    assert img.shape == ref.shape
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


def test_zoom_grid_mode_bit_exact():
    """Regression: scipy's grid-mode zoom computes ``(o + 0.5) * zoom - 0.5`` per axis; a
    matrix product ``o * zoom + (0.5 * zoom - 0.5)`` rounds differently (~1e-16 at order 1
    in about 60% of these cases)."""
    rng = np.random.default_rng(0)
    bad = 0
    for _ in range(50):
        n, z = int(rng.integers(2, 15)), float(rng.uniform(0.2, 3))
        x = rng.standard_normal(n)
        kw = dict(order=1, mode="mirror", grid_mode=True)
        ref = ndi.zoom(x, z, **kw)
        bad += not np.array_equal(compute(transfuse.lazy(x).zoom(z, **kw)), ref)
    assert bad == 0


@_examples(1)
@given(data=st.data(), opts=options())
def test_rotate_matches_scipy(data, opts):
    ndim = data.draw(st.integers(2, 3))
    shape = data.draw(shapes(ndim))
    chunks = data.draw(chunkings(shape))
    axes = tuple(data.draw(st.permutations(range(ndim)))[:2])
    axes = tuple(a - ndim if data.draw(st.booleans()) else a for a in axes)
    angle = data.draw(
        st.one_of(st.sampled_from([0.0, 90.0, -90.0, 180.0, 270.0, 45.0]), st.floats(-400, 400))
    )
    reshape = data.draw(st.booleans())
    x = make_data(data.draw(DATA_KINDS), shape, data.draw(st.integers(0, 2**32 - 1)))
    ref = ndi.rotate(x, angle, axes=axes, reshape=reshape, **opts)
    img = transfuse.lazy(x, chunks).rotate(
        angle, axes=axes, reshape=reshape, output_chunks=data.draw(st.integers(1, 8)), **opts
    )
    assert img.shape == ref.shape
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


@pytest.mark.parametrize(("prefilter", "mode"), [(False, "nearest"), (True, "reflect")])
def test_rotate_3d_normal_axis(prefilter, mode):
    """Regression: scipy.ndimage.rotate loops over 2-D planes; interpolating along the axis
    normal to the plane would differ where the spline does not reproduce the samples at
    integer positions (no prefilter; scipy's ``reflect`` prefilter on short axes), by up to
    ~1e-2 at order 5. transfuse rotates slice by slice too."""
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    kw = dict(axes=(0, 1), reshape=False, order=3, prefilter=prefilter, mode=mode)
    ref = ndi.rotate(x, 30.0, **kw)
    got = compute(transfuse.lazy(x, 2).rotate(30.0, **kw))
    assert_parity(got, ref, x=x, cval=0.0, order=3)


@_examples(1)
@given(case=cases(), mat=st.data(), opts=options())
def test_transform_method_matches_scipy_homogeneous(case, mat, opts):
    """``.transform(T)`` equals ``scipy.ndimage.affine_transform(x, T.matrix())``."""
    ndim = case["ndim"]
    t = Affine(mat.draw(linear_parts(ndim)), [mat.draw(OFFSET) for _ in range(ndim)], ndim=ndim)
    x = make_data(case["data"], case["shape"], case["seed"])
    ref = ndi.affine_transform(x, t.matrix(), output_shape=case["out_shape"], **opts)
    img = transfuse.lazy(x, case["chunks"]).transform(
        t, output_shape=case["out_shape"], output_chunks=case["out_chunks"], **opts
    )
    assert_parity(compute(img), ref, x=x, cval=opts["cval"], order=opts["order"])


# -- a deterministic sweep of every mode x order x prefilter (no shrinking needed) ----------
@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("order", range(6))
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_order_prefilter(mode, order, prefilter):
    """Every combination at least once, on a case with folds, far points and 1-sample
    chunks (hypothesis may not draw each of the 96 combinations in the ci profile)."""
    rng = np.random.default_rng(hash((mode, order, prefilter)) % 2**32)
    x = rng.standard_normal((7, 5))
    matrix = np.array([[0.9, -0.4], [0.35, 1.2]])
    for offset in ([-3.3, 2.7], [1e6 + 0.3, -2.0], [0.5, -1e3]):
        kw = dict(order=order, mode=mode, cval=1.75, prefilter=prefilter, output_shape=(9, 6))
        ref = ndi.affine_transform(x, matrix, offset, **kw)
        for chunks, out_chunks in (((1, 2), (2, 1)), ((3, 5), (4, 3)), ((7, 5), (9, 6))):
            img = transfuse.lazy(x, chunks).affine_transform(
                matrix, offset, output_chunks=out_chunks, **kw
            )
            assert_parity(compute(img), ref, x=x, cval=1.75, order=order)


def test_ragged_output_chunks_accepted():
    """dask-style explicit chunks with a different block count per axis."""
    x = np.arange(6.0).reshape(2, 3)
    img = transfuse.lazy(x).affine_transform(np.eye(2), output_chunks=((2,), (1, 2)), order=1)
    np.testing.assert_array_equal(compute(img), x)
