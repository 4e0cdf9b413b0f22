"""Elementary affine transforms against hand-built matrices and scipy.ndimage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import random_image
from tests.strategies import examples
from transfuse import (
    Affine,
    Flip,
    Identity,
    Permute,
    Rotate,
    Scale,
    Shear,
    Translate,
    split_affine_matrix,
)

SETTINGS = examples(0.25)
angles = st.floats(-720, 720, allow_nan=False, allow_infinity=False)
coords = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


def hand_rotation(angle_deg, axes, ndim, center=None):
    """Homogeneous pull matrix of a rotation, built from cos/sin: c[i] = cos*o[i] - sin*o[j]."""
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    i, j = (ax % ndim for ax in axes)
    m = np.eye(ndim + 1)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    if center is not None:
        ctr = np.asarray(center, dtype=float)
        m[:ndim, ndim] = ctr - m[:ndim, :ndim] @ ctr
    return m


def scipy_rotate_matrix(angle_deg):
    """The 2x2 matrix scipy.ndimage.rotate uses (axes sorted), written out by hand."""
    t = np.deg2rad(angle_deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, s], [-s, c]])


# -- Identity / Translate / Scale / Shear --------------------------------------------------


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_identity_matrix_and_points(ndim):
    np.testing.assert_array_equal(Identity().matrix(ndim), np.eye(ndim + 1))
    np.testing.assert_array_equal(Identity(ndim).matrix(), np.eye(ndim + 1))
    p = np.random.default_rng(1).standard_normal((5, ndim))
    np.testing.assert_array_equal(Identity()(p), p)
    assert Identity().inverse() == Identity()


@SETTINGS
@given(st.lists(coords, min_size=1, max_size=4), st.lists(coords, min_size=1, max_size=4))
def test_translate_points(vector, point):
    point = (point * 4)[: len(vector)]
    out = Translate(vector)(np.array([point]))
    np.testing.assert_allclose(out[0], [p + v for p, v in zip(point, vector, strict=True)])
    m = Translate(vector).matrix()
    n = len(vector)
    assert m.shape == (n + 1, n + 1) and m.dtype == np.float64
    np.testing.assert_array_equal(m[:n, n], vector)
    np.testing.assert_array_equal(m[:n, :n], np.eye(n))


def test_translate_matches_scipy_shift():
    # pull convention: output(o) = input(o + v), which is scipy.ndimage.shift by -v
    x = random_image((9, 11))
    v = (1.25, -2.5)
    got = ndi.affine_transform(x, Translate(v).matrix(), order=1)
    want = ndi.shift(x, [-c for c in v], order=1)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_scale_vector_and_uniform():
    p = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    np.testing.assert_allclose(Scale((2, 3, -1))(p), p * np.array([2, 3, -1]))
    np.testing.assert_allclose(Scale(2.5)(p), p * 2.5)
    np.testing.assert_array_equal(Scale(2.5).matrix(2), np.diag([2.5, 2.5, 1.0]))
    assert Scale(2.5).ndim is None
    assert Scale((1, 2)).ndim == 2


def test_shear_points():
    p = np.array([[1.0, 2.0, 3.0], [4.0, -5.0, 6.0]])
    got = Shear(0.5, axes=(2, 0))(p)
    want = p.copy()
    want[:, 2] += 0.5 * p[:, 0]
    np.testing.assert_allclose(got, want)
    got = Shear(-2.0)(p[:, :2])
    want = p[:, :2].copy()
    want[:, 0] += -2.0 * p[:, 1]
    np.testing.assert_allclose(got, want)


# -- Rotate ---------------------------------------------------------------------------------


@SETTINGS
@given(angles, st.sampled_from([(0, 1), (1, 0)]))
def test_rotate_2d_matches_cos_sin(angle, axes):
    np.testing.assert_allclose(
        Rotate(angle, axes=axes).matrix(2), hand_rotation(angle, axes, 2), atol=1e-12
    )


@SETTINGS
@given(angles, st.sampled_from(list(itertools.permutations(range(3), 2))))
def test_rotate_3d_planes_match_cos_sin(angle, axes):
    np.testing.assert_allclose(
        Rotate(angle, axes=axes).matrix(3), hand_rotation(angle, axes, 3), atol=1e-12
    )
    np.testing.assert_allclose(
        Rotate(angle, axes=axes, ndim=3).matrix(), hand_rotation(angle, axes, 3), atol=1e-12
    )


@SETTINGS
@given(angles, st.tuples(coords, coords, coords), st.sampled_from([(0, 1), (2, 1), (0, -1)]))
def test_rotate_about_center(angle, center, axes):
    r = Rotate(angle, axes=axes, center=center)
    assert r.ndim == 3
    np.testing.assert_allclose(r.matrix(), hand_rotation(angle, axes, 3, center), atol=1e-9)
    np.testing.assert_allclose(r(np.array([center])), [center], atol=1e-9)


@pytest.mark.parametrize("k", range(-4, 5))
def test_rotate_multiples_of_90_are_exact(k):
    m = Rotate(90 * k).matrix(2)
    c = [1, 0, -1, 0][k % 4]
    s = [0, 1, 0, -1][k % 4]
    np.testing.assert_array_equal(m, np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=float))


@SETTINGS
@given(angles)
def test_rotate_axes_1_0_is_scipy_rotate_matrix(angle):
    m = Rotate(angle, axes=(1, 0)).matrix(2)
    np.testing.assert_allclose(m[:2, :2], scipy_rotate_matrix(angle), atol=1e-12)
    np.testing.assert_array_equal(m[:2, 2], [0, 0])


@pytest.mark.parametrize("angle", [17.0, -63.5, 90.0, 200.0])
def test_rotate_image_matches_scipy_rotate_2d(angle):
    x = random_image((12, 15), seed=3)
    center = tuple((s - 1) / 2 for s in x.shape)
    got = ndi.affine_transform(x, Rotate(angle, axes=(1, 0), center=center).matrix(), order=1)
    want = ndi.rotate(x, angle, reshape=False, order=1)
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("scipy_axes", [(0, 1), (0, 2), (1, 2), (2, 0)])
def test_rotate_image_matches_scipy_rotate_3d(scipy_axes):
    # scipy sorts the axes; its rotate(angle, axes=(i, j)) with i < j is Rotate(angle, (j, i))
    x = random_image((7, 8, 9), seed=4)
    angle = 33.0
    i, j = sorted(scipy_axes)
    center = tuple((s - 1) / 2 for s in x.shape)
    t = Rotate(angle, axes=(j, i), center=center)
    got = ndi.affine_transform(x, t.matrix(), order=1)
    want = ndi.rotate(x, angle, axes=scipy_axes, reshape=False, order=1)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_rotate_swapping_axes_reverses_sense():
    np.testing.assert_allclose(
        Rotate(25.0, axes=(1, 0)).matrix(2), Rotate(-25.0, axes=(0, 1)).matrix(2), atol=1e-15
    )


# -- Flip / Permute -------------------------------------------------------------------------


@pytest.mark.parametrize("axes", [0, 1, 2, (0, 2), (0, 1, 2)])
def test_flip_matches_np_flip(axes):
    x = random_image((4, 5, 6), seed=5)
    ax = (axes,) if isinstance(axes, int) else axes
    center = tuple((x.shape[a] - 1) / 2 for a in ax)
    t = Flip(axes, center=center)
    got = ndi.affine_transform(x, t.matrix(3), order=0)
    np.testing.assert_array_equal(got, np.flip(x, axis=axes))


def test_flip_points_and_involution():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(Flip((0, 2), center=(1.0, -1.0))(p), [[1.0, 2.0, -5.0]])
    f = Flip(1, center=2.5)
    assert f.inverse() == f
    np.testing.assert_allclose(f(f(p)), p)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_permute_matches_np_transpose(order):
    x = random_image((3, 4, 5), seed=6)
    want = np.transpose(x, order)
    t = Permute(order)
    got = ndi.affine_transform(x, t.matrix(), output_shape=want.shape, order=0)
    np.testing.assert_array_equal(got, want)
    # point form: output index o reads input index t(o)
    for o in itertools.product(*(range(s) for s in want.shape)):
        src = t(np.array(o, dtype=float))
        assert x[tuple(int(v) for v in src)] == want[o]
    assert (t @ t.inverse()).matrix().tolist() == np.eye(4).tolist()


# -- Affine: every matrix form scipy accepts --------------------------------------------------


def _forms(n, rng):
    lin = np.eye(n) + 0.3 * rng.standard_normal((n, n))
    lin[-1, -1] += 0.5  # bottom row is never [0, ..., 0, 1]
    off = rng.standard_normal(n)
    homog = np.eye(n + 1)
    homog[:n, :n], homog[:n, n] = lin, off
    diag = 1 + 0.3 * rng.standard_normal(n)
    return [
        ("diagonal", diag, 0.0),
        ("diagonal+offset", diag, off),
        ("diagonal+scalar offset", diag, 1.5),
        ("linear", lin, 0.0),
        ("linear+offset", lin, off),
        ("linear+scalar offset", lin, -0.75),
        ("offset-column", homog[:n], 0.0),
        ("homogeneous", homog, 0.0),
    ]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_affine_forms_resample_like_scipy(n):
    rng = np.random.default_rng(10 + n)
    x = rng.standard_normal((6, 7, 5)[:n])
    for label, m, off in _forms(n, rng):
        want = ndi.affine_transform(x, m, offset=off, order=1)
        t = Affine(m, offset=off)
        assert t.ndim == n, label
        got = ndi.affine_transform(x, t.matrix(), order=1)
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=label)


def test_affine_form_contents():
    lin = np.array([[1.0, 2.0], [3.0, 4.0]])
    off = np.array([5.0, 6.0])
    want = np.array([[1.0, 2.0, 5.0], [3.0, 4.0, 6.0], [0.0, 0.0, 1.0]])
    assert np.array_equal(Affine(lin, off).matrix(), want)
    assert np.array_equal(Affine(want).matrix(), want)
    assert np.array_equal(Affine(want[:2]).matrix(), want)
    assert np.array_equal(Affine([2, 3], offset=1).matrix(), [[2, 0, 1], [0, 3, 1], [0, 0, 1]])
    assert Affine(lin, off) == Affine(want) == Affine(want[:2]) == Affine(want.tolist())


def test_affine_points_and_inverse():
    rng = np.random.default_rng(2)
    lin = np.eye(3) * 2 + 0.2 * rng.standard_normal((3, 3))
    off = rng.standard_normal(3)
    p = rng.standard_normal((10, 3))
    t = Affine(lin, off)
    np.testing.assert_allclose(t(p), np.einsum("ij,kj->ki", lin, p) + off)
    np.testing.assert_allclose(t.inverse()(t(p)), p, atol=1e-12)
    np.testing.assert_allclose(t.inverse().matrix()[:3, :3], np.linalg.inv(lin), atol=1e-12)


def test_split_affine_matrix_ndim_disambiguates():
    m = np.eye(3)
    lin, off = split_affine_matrix(m)
    assert len(lin) == 2 and off == (0.0, 0.0)
    lin, off = split_affine_matrix(m, ndim=3)
    assert len(lin) == 3 and off == (0.0, 0.0, 0.0)


# -- inverses of every elementary type -----------------------------------------------------

ELEMENTARY = [
    Translate((1.5, -2.0, 0.25)),
    Scale((2.0, -0.5, 4.0)),
    Scale(3.0),
    Rotate(37.0, axes=(2, 0)),
    Rotate(-80.0, axes=(0, 1), center=(1.0, 2.0, 3.0)),
    Shear(0.7, axes=(1, 2)),
    Flip((0, 2), center=(1.0, 2.0)),
    Permute((2, 0, 1)),
    Affine(np.array([[2.0, 0.1, 0.0, 1.0], [0.0, 1.0, 0.3, 2.0], [0.5, 0.0, 1.0, 3.0]])),
    Identity(),
]


@pytest.mark.parametrize("t", ELEMENTARY, ids=lambda t: type(t).__name__)
def test_inverse_undoes(t):
    p = np.random.default_rng(7).standard_normal((20, 3)) * 5
    inv = t.inverse()
    np.testing.assert_allclose(inv(t(p)), p, atol=1e-12)
    np.testing.assert_allclose(t(inv(p)), p, atol=1e-12)
    m = t.matrix(3) @ inv.matrix(3)
    np.testing.assert_allclose(m, np.eye(4), atol=1e-12)


@pytest.mark.parametrize("t", ELEMENTARY, ids=lambda t: type(t).__name__)
def test_points_broadcast_over_leading_axes(t):
    p = np.random.default_rng(8).standard_normal((2, 3, 4, 3))
    flat = t(p.reshape(-1, 3)).reshape(p.shape)
    np.testing.assert_allclose(t(p), flat, atol=1e-12)
    single = np.stack([t(q) for q in p.reshape(-1, 3)]).reshape(p.shape)
    np.testing.assert_allclose(flat, single, atol=1e-12)
