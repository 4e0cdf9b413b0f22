"""Hypothesis strategies shared by the test modules, and :func:`examples`.

Import as ``from tests.strategies import ...``. Example counts always come from the profile
``tests/conftest.py`` loads (``TRANSFUSE_HYPOTHESIS=ci|dev|large``): a test that needs more
or fewer examples than the profile's ``max_examples`` decorates itself with
``@examples(factor)`` rather than writing a literal ``max_examples=``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

import transfuse
from transfuse import Affine, Flip, Permute, Rotate, Scale, Shear, Translate

#: every scipy.ndimage mode name
MODES = tuple(transfuse.MODES)
#: every spline order scipy.ndimage accepts
ORDERS = tuple(range(6))


def examples(factor: float = 1.0, **overrides) -> settings:
    """Settings with ``factor`` times the loaded profile's ``max_examples`` (at least 1).

    Every other setting is the profile's (``derandomize`` in CI, ``deadline=None``, the
    suppressed health checks), unless given in ``overrides`` (e.g. a ``deadline`` that is part
    of what a test checks). ``TRANSFUSE_HYPOTHESIS=large`` therefore scales every test.
    """
    count = max(1, round(settings.default.max_examples * factor))
    return settings(settings.default, max_examples=count, **overrides)


# -- shapes and chunkings -------------------------------------------------------------------------
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
    """An ``ndim``-D shape; short axes (1-6 samples) are drawn as often as longer ones."""
    max_side = _max_side(ndim) if max_side is None else max_side
    side = st.one_of(st.integers(1, 6), st.integers(1, max_side))
    return tuple(draw(side) for _ in range(ndim))


@st.composite
def chunkings(draw, shape):
    """dask-style explicit chunks of ``shape`` (1-sample chunks included)."""
    return tuple(draw(partition(n)) for n in shape)


# -- data, numbers, options -----------------------------------------------------------------------
#: the ``kind`` of :func:`tests.helpers.random_image` (normal data twice as often)
DATA_KINDS = st.sampled_from(["normal", "normal", "uniform", "integers", "constant"])
SEEDS = st.integers(0, 2**32 - 1)

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
def options(draw):
    """Interpolation keywords: ``order``, ``mode``, ``cval``, ``prefilter`` (all of them)."""
    return dict(
        order=draw(st.integers(0, 5)),
        mode=draw(st.sampled_from(MODES)),
        cval=draw(CVAL),
        prefilter=draw(st.booleans()),
    )


# -- matrices and transform nodes -----------------------------------------------------------------
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
def affine_nodes(draw, ndim, shape):
    """One affine transform node of any elementary type (``shape``: the array it reads, for
    the centre of a flip). Matrices may be singular or far from the identity."""
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


# -- whole cases ----------------------------------------------------------------------------------
@st.composite
def cases(draw, max_ndim=3):
    """An input and an output geometry: ``ndim``, ``shape``, ``chunks``, ``out_shape``,
    ``out_chunks``, and ``data``/``seed`` for :func:`tests.helpers.random_image`."""
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
        seed=draw(SEEDS),
    )
