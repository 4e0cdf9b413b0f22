"""Composition, inversion of chains, structural equality, hashing and keys."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import examples
from transfuse import (
    Affine,
    Compose,
    Flip,
    Identity,
    Permute,
    Rotate,
    Scale,
    Shear,
    Translate,
)

SETTINGS = examples(0.25)
small = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
factor = st.floats(0.5, 2.0).flatmap(lambda f: st.sampled_from([f, -f]))
angle = st.floats(-360, 360, allow_nan=False, allow_infinity=False)


@st.composite
def elementary(draw, n):
    """A random invertible, well-conditioned numeric affine transform of dimension n."""
    kind = draw(
        st.sampled_from(
            ["identity", "translate", "scale", "uscale", "rotate", "shear", "affine", "flip"]
            + ["permute"]
        )
    )
    vec = st.lists(small, min_size=n, max_size=n)
    if kind == "identity":
        return Identity()
    if kind == "translate":
        return Translate(draw(vec))
    if kind == "scale":
        return Scale(draw(st.lists(factor, min_size=n, max_size=n)))
    if kind == "uscale":
        return Scale(draw(factor))
    if kind == "rotate":
        axes = draw(st.sampled_from(list(itertools.permutations(range(n), 2))))
        center = draw(st.none() | vec)
        return Rotate(draw(angle), axes=axes, center=center)
    if kind == "shear":
        axes = draw(st.sampled_from(list(itertools.permutations(range(n), 2))))
        return Shear(draw(st.floats(-1, 1)), axes=axes)
    if kind == "affine":
        noise = draw(st.lists(st.floats(-0.3, 0.3), min_size=n * n, max_size=n * n))
        lin = 2 * np.eye(n) + np.reshape(noise, (n, n))
        return Affine(lin, offset=draw(vec))
    if kind == "flip":
        axes = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        return Flip(
            tuple(axes), center=draw(st.lists(small, min_size=len(axes), max_size=len(axes)))
        )
    return Permute(draw(st.permutations(range(n))))


@st.composite
def chain(draw, n=None, min_size=1, max_size=4):
    """(n, list of transforms, points of shape (k, n))."""
    if n is None:
        n = draw(st.sampled_from([2, 3]))
    parts = draw(st.lists(elementary(n), min_size=min_size, max_size=max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    points = np.random.default_rng(seed).uniform(-10, 10, size=(7, n))
    return n, parts, points


def compose_all(parts):
    out = parts[0]
    for p in parts[1:]:
        out = out @ p
    return out


def brute_force(parts, points):
    """Apply the chain point by point: the last transform first."""
    out = []
    for q in points:
        for t in reversed(parts):
            q = t(q)
        out.append(q)
    return np.array(out)


def hand_matrix(t, n):
    """Homogeneous matrix of a transform, found by mapping the origin and unit vectors."""
    basis = np.vstack([np.zeros(n), np.eye(n)])
    img = t(basis)
    m = np.eye(n + 1)
    m[:n, n] = img[0]
    m[:n, :n] = (img[1:] - img[0]).T
    return m


# -- the composition rule ------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_matmul_is_function_composition(data):
    n, parts_a, p = data.draw(chain())
    parts_b = data.draw(st.lists(elementary(n), min_size=1, max_size=3))
    A, B = compose_all(parts_a), compose_all(parts_b)
    np.testing.assert_allclose((A @ B)(p), A(B(p)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose((A @ B)(p), brute_force(parts_a + parts_b, p), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(chain(min_size=3, max_size=5))
def test_chain_equals_brute_force_and_matrix_product(c):
    n, parts, p = c
    t = compose_all(parts)
    np.testing.assert_allclose(t(p), brute_force(parts, p), rtol=1e-9, atol=1e-9)
    product = np.eye(n + 1)
    for part in parts:
        product = product @ hand_matrix(part, n)
    np.testing.assert_allclose(t.matrix(n), product, rtol=1e-9, atol=1e-9)
    # the matrix maps points as scipy would: c = M[:n, :n] o + M[:n, n]
    m = t.matrix(n)
    np.testing.assert_allclose(
        t(p), np.array([m[:n, :n] @ q + m[:n, n] for q in p]), rtol=1e-9, atol=1e-9
    )


@SETTINGS
@given(st.data())
def test_associativity(data):
    n = data.draw(st.sampled_from([2, 3]))
    a, b, c = (data.draw(elementary(n)) for _ in range(3))
    left, right = (a @ b) @ c, a @ (b @ c)
    assert left == right
    assert hash(left) == hash(right)
    assert left.key == right.key
    assert left.parts == (a, b, c)
    np.testing.assert_allclose(
        ((a @ b) @ c).matrix(n), (a.matrix(n) @ b.matrix(n)) @ c.matrix(n), atol=1e-9
    )
    np.testing.assert_allclose(left.matrix(n), right.matrix(n), atol=1e-12)


@SETTINGS
@given(chain(min_size=1, max_size=5))
def test_chain_times_inverse_is_identity(c):
    n, parts, p = c
    t = compose_all(parts)
    inv = t.inverse()
    np.testing.assert_allclose((t @ inv).matrix(n), np.eye(n + 1), atol=1e-8)
    np.testing.assert_allclose((inv @ t).matrix(n), np.eye(n + 1), atol=1e-8)
    np.testing.assert_allclose(inv(t(p)), p, atol=1e-8)
    np.testing.assert_allclose(inv.matrix(n), np.linalg.inv(t.matrix(n)), atol=1e-8)


def test_order_matters_and_follows_pull_convention():
    # resampling with A, then the result with B, is one resampling with A @ B
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8))
    a = Permute((1, 0))
    b = Translate((3, -2)) @ Flip(1, center=3.5)
    assert not np.allclose((a @ b).matrix(), (b @ a).matrix())
    kw = {"order": 0, "mode": "grid-wrap"}
    two_steps = ndi.affine_transform(ndi.affine_transform(x, a.matrix(), **kw), b.matrix(), **kw)
    one_step = ndi.affine_transform(x, (a @ b).matrix(), **kw)
    np.testing.assert_array_equal(two_steps, one_step)
    other = ndi.affine_transform(x, (b @ a).matrix(), **kw)
    assert not np.array_equal(two_steps, other)


def test_compose_structure():
    t = Translate((1, 2)) @ Identity() @ Scale(2) @ Rotate(30)
    assert isinstance(t, Compose)
    assert t.ndim == 2
    assert t.is_affine
    assert len(t.parts) == 4
    assert t.inverse().parts[0] == Rotate(30).inverse()
    np.testing.assert_allclose(
        t.matrix(), Translate((1, 2)).matrix() @ np.diag([2.0, 2, 1]) @ Rotate(30).matrix(2)
    )
    assert (Scale(2) @ Rotate(30)).ndim is None
    np.testing.assert_allclose(
        (Scale(2) @ Rotate(90)).matrix(2), [[0, -2, 0], [2, 0, 0], [0, 0, 1]]
    )


# -- equality, hashing, keys ----------------------------------------------------------------


def same_built_differently():
    arr = np.array
    return [
        (
            Translate((1, 2)),
            Translate([1.0, 2.0]),
            Translate(arr([1, 2])),
            Translate(arr([1.0, 2])),
        ),
        (Scale(2), Scale(2.0), Scale(np.float64(2)), Scale(arr(2))),
        (Scale((2, 3)), Scale(arr([2.0, 3.0])), Scale((np.int64(2), np.float32(3)))),
        (Rotate(30), Rotate(30.0), Rotate(np.float64(30)), Rotate(30, axes=[0, 1])),
        (Rotate(30, center=(1, 2)), Rotate(30.0, center=arr([1.0, 2.0]), ndim=2)),
        (Rotate(30, axes=(0, -1), ndim=3), Rotate(30, axes=(0, 2), ndim=3)),
        (Shear(1), Shear(1.0, axes=arr([0, 1]))),
        (Flip(0), Flip((0,), center=0), Flip([0], center=[0.0])),
        (Permute((1, 0)), Permute([1, 0]), Permute(arr([1, 0]))),
        (
            Affine([[1, 2], [3, 4]], offset=1),
            Affine(arr([[1.0, 2, 1], [3, 4, 1]])),
            Affine(arr([[1, 2, 1], [3, 4, 1], [0, 0, 1]])),
            Affine(arr([[1.0, 2.0], [3.0, 4.0]]), offset=arr([1.0, 1.0])),
        ),
        (Translate((0.0,)), Translate((-0.0,)), Translate((0.0,)).inverse()),
        (Rotate(0.0), Rotate(-0.0), Rotate(0).inverse()),
        (Translate((1, 2)) @ Scale(2), Translate((1.0, 2.0)) @ Scale(2.0)),
        (Identity(), Identity(None)),
    ]


@pytest.mark.parametrize("group", same_built_differently(), ids=lambda g: repr(g[0]))
def test_equal_when_built_from_ints_floats_arrays(group):
    first = group[0]
    for other in group[1:]:
        assert other == first
        assert hash(other) == hash(first)
        assert other.key == first.key
    assert len(set(group)) == 1


def test_different_types_with_same_matrix_differ():
    group = [
        Identity(2),
        Scale((1, 1)),
        Translate((0, 0)),
        Rotate(0, ndim=2),
        Shear(0, ndim=2),
        Permute((0, 1)),
        Affine([1, 1]),
    ]
    # square and ending in [0, 0, 1]: read as homogeneous, the same 2-D Affine
    assert Affine(np.eye(3)) == Affine([1, 1])
    for t in group:
        np.testing.assert_array_equal(t.matrix(2), np.eye(3))
    assert len({t.key for t in group}) == len(group)
    assert len(set(group)) == len(group)


@SETTINGS
@given(st.data())
def test_different_parameters_give_different_keys(data):
    n = data.draw(st.sampled_from([2, 3]))
    a = data.draw(elementary(n))
    b = data.draw(elementary(n))
    assert (a == b) == (a.key == b.key)
    if a == b:
        assert hash(a) == hash(b)
    for p in (a, b):
        params = p.params()
        for name, value in params.items():
            if isinstance(value, float):
                changed = p.replace(**{name: np.nextafter(value, np.inf)})
                assert changed != p and changed.key != p.key
            elif isinstance(value, tuple) and value and isinstance(value[0], float):
                bumped = (value[0] + 1.0,) + value[1:]
                changed = p.replace(**{name: bumped})
                assert changed != p and changed.key != p.key


def test_key_covers_every_parameter():
    base = Rotate(30, axes=(0, 1), center=(1, 2))
    variants = [
        Rotate(31, axes=(0, 1), center=(1, 2)),
        Rotate(30, axes=(1, 0), center=(1, 2)),
        Rotate(30, axes=(0, 1), center=(1, 2.5)),
        Rotate(30, axes=(0, 1)),
        Rotate(30, axes=(0, 1), ndim=2),
    ]
    keys = {base.key} | {v.key for v in variants}
    assert len(keys) == 1 + len(variants)
    a, b = Translate((1, 2)), Scale((2, 3))
    assert (a @ b).key != (b @ a).key
    assert (a @ b).key != a.key
    assert Affine([[1, 2], [3, 4]]).key != Affine([[1, 2], [3, 4]], offset=(0, 1e-300)).key


def test_key_is_stable_text():
    k = Translate((1, 2)).key
    assert isinstance(k, str) and len(k) >= 16
    assert Translate((1, 2)).key == k  # a fresh object, the same key
