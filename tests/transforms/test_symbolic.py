"""Symbolic parameters: exact sympy matrices, binding, exact trigonometric composition."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

import transfuse
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
    symbols,
)

SETTINGS = examples(0.25)
a, b, c = symbols("a b c")
value = st.floats(-100, 100, allow_nan=False, allow_infinity=False)
nonzero = st.floats(0.25, 4).flatmap(lambda f: st.sampled_from([f, -f]))


def is_zero_matrix(m) -> bool:
    return sympy.simplify(m) == sympy.zeros(*m.shape)


def hand_rotation(theta, i, j, ndim):
    rad = sympy.pi * theta / 180
    m = sympy.eye(ndim + 1)
    m[i, i], m[i, j], m[j, i], m[j, j] = (
        sympy.cos(rad),
        -sympy.sin(rad),
        sympy.sin(rad),
        sympy.cos(rad),
    )
    return m


def test_symbols_are_real_and_exported():
    x = transfuse.symbols("x")
    assert x.is_real
    assert transfuse.symbols("y", positive=True).is_positive
    assert isinstance(symbols("p q"), tuple)


def test_matrix_type_follows_parameters():
    assert isinstance(Rotate(a).matrix(2), sympy.MatrixBase)
    assert isinstance(Translate((a, 1)).matrix(), sympy.MatrixBase)
    assert isinstance((Translate((1, 2)) @ Scale(b)).matrix(), sympy.MatrixBase)
    m = (Translate((1, 2)) @ Scale(2)).matrix()
    assert isinstance(m, np.ndarray) and m.dtype == np.float64


def test_symbolic_entries_by_hand():
    m = (Translate((a, 1)) @ Scale((b, 2))).matrix()
    want = sympy.Matrix([[b, 0, a], [0, 2, 1], [0, 0, 1]])
    assert is_zero_matrix(m - want)
    assert is_zero_matrix(
        Shear(c, axes=(1, 0)).matrix(2) - sympy.Matrix([[1, 0, 0], [c, 1, 0], [0, 0, 1]])
    )
    assert is_zero_matrix(Rotate(a).matrix(2) - hand_rotation(a, 0, 1, 2))
    center = sympy.Matrix([b, c])
    r = Rotate(a, center=(b, c)).matrix()
    lin = hand_rotation(a, 0, 1, 2)[:2, :2]
    assert is_zero_matrix(r[:2, :2] - lin)
    assert is_zero_matrix(r[:2, 2] - (center - lin * center))


def test_free_symbols():
    t = Rotate(a, center=(b, 1)) @ Scale(2) @ Translate((1, c))
    assert t.free_symbols == frozenset({a, b, c})
    assert Rotate(30).free_symbols == frozenset()
    assert Affine([[a, 0], [0, 2]], offset=(0, b)).free_symbols == {a, b}
    assert t.bind(a=1, c=2).free_symbols == frozenset({b})


@pytest.mark.parametrize(
    "ndim,axes",
    [(2, (0, 1)), (2, (1, 0))] + [(3, ax) for ax in itertools.permutations(range(3), 2)],
)
def test_rotations_in_one_plane_add_exactly(ndim, axes):
    m = (Rotate(a, axes=axes) @ Rotate(b, axes=axes)).matrix(ndim)
    assert is_zero_matrix(m - Rotate(a + b, axes=axes).matrix(ndim))
    assert is_zero_matrix(m - hand_rotation(a + b, *axes, ndim))


def test_rotations_about_a_center_add_exactly():
    ctr = (b, c)
    d = symbols("d")
    m = (Rotate(a, center=ctr) @ Rotate(d, center=ctr)).matrix()
    assert is_zero_matrix(m - Rotate(a + d, center=ctr).matrix())


def test_rotations_in_different_planes_do_not_add():
    m = (Rotate(a, axes=(0, 1)) @ Rotate(b, axes=(1, 2))).matrix(3)
    assert not is_zero_matrix(m - Rotate(a + b, axes=(0, 1)).matrix(3))


def test_symbolic_inverse_is_exact():
    t = Rotate(a, center=(1, b)) @ Scale((c, 2)) @ Shear(a) @ Translate((b, 1)) @ Permute((1, 0))
    t = t @ Flip(1, center=c) @ Affine(sympy.Matrix([[1, a], [0, 2]]), offset=(b, 0))
    assert is_zero_matrix((t @ t.inverse()).matrix() - sympy.eye(3))


SYMBOLIC_CHAIN = (
    Rotate(a, axes=(2, 0), center=(b, 0, 1))
    @ Scale((c, 1, 2))
    @ Translate((b, a, 1))
    @ Shear(b / 10, axes=(1, 2))
    @ Flip(0, center=a)
    @ Affine(sympy.Matrix([[c, 0, 0], [0, 1, a / 100], [0, 0, 2]]), offset=(b, 0, 0))
)


@functools.cache
def symbolic_chain_matrix():
    return sympy.lambdify((a, b, c), SYMBOLIC_CHAIN.matrix(), "numpy")


@SETTINGS
@given(value, value, nonzero, value)
def test_bound_chain_equals_numeric_chain(va, vb, vc, vd):
    sym = SYMBOLIC_CHAIN
    num = (
        Rotate(va, axes=(2, 0), center=(vb, 0, 1))
        @ Scale((vc, 1, 2))
        @ Translate((vb, va, 1))
        @ Shear(vb / 10, axes=(1, 2))
        @ Flip(0, center=va)
        @ Affine(np.array([[vc, 0, 0], [0, 1, va / 100], [0, 0, 2]]), offset=(vb, 0, 0))
    )
    bound = sym.bind(a=va, b=vb, c=vc)
    assert bound.free_symbols == frozenset()
    m = bound.matrix()
    assert isinstance(m, np.ndarray)
    np.testing.assert_allclose(m, num.matrix(), rtol=1e-12, atol=1e-9)
    # the exact matrix, evaluated afterwards, agrees as well
    exact = symbolic_chain_matrix()(va, vb, vc)
    np.testing.assert_allclose(np.array(exact, dtype=float), m, rtol=1e-9, atol=1e-9)
    # the numeric chain and the bound chain map points alike
    p = np.array([[vd, 1.0, -2.0]])
    np.testing.assert_allclose(bound(p), num(p), rtol=1e-12, atol=1e-9)
    # binding one symbol at a time gives the same as binding all at once
    assert sym.bind(a=va).bind(b=vb).bind(c=vc) == bound


@SETTINGS
@given(value)
def test_bound_elementary_equals_numeric(v):
    assert Rotate(a).bind(a=v) == Rotate(v)
    assert Rotate(a).bind(a=v).key == Rotate(v).key
    assert Translate((a, 1)).bind(a=v) == Translate((v, 1))
    assert Scale(a).bind(a=v) == Scale(v)
    assert Shear(a, axes=(1, 0)).bind(a=v) == Shear(v, axes=(1, 0))
    assert Flip(0, center=a).bind(a=v) == Flip(0, center=v)
    assert Affine([[a, 0], [0, 2]]).bind(a=v) == Affine([[v, 0], [0, 2]])
    assert (Identity() @ Rotate(a)).bind(a=v) == Identity() @ Rotate(v)


def test_bind_with_numpy_and_int_values():
    assert Rotate(a).bind(a=np.float64(30)) == Rotate(30)
    assert Rotate(a).bind(a=np.int64(30)) == Rotate(30)
    assert Translate((a, b)).bind(a=1, b=np.array(2.0)) == Translate((1, 2))


def test_symbolic_equality_and_keys():
    assert Rotate(a) == Rotate(a)
    assert hash(Rotate(a)) == hash(Rotate(a))
    assert Rotate(a).key == Rotate(a).key
    assert Rotate(a).key != Rotate(b).key
    assert Rotate(a).key != Rotate(2 * a).key
    assert Rotate(a) != Rotate(30)
    # same name, different assumptions: different symbols
    other = sympy.Symbol("a")
    assert Rotate(other) != Rotate(a)
    assert Rotate(other).key != Rotate(a).key


def test_unbound_symbols_cannot_map_points():
    with pytest.raises(ValueError, match="a"):
        Rotate(a)(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="unbound"):
        (Translate((1, 2)) @ Scale(b))(np.zeros((1, 2)))


def test_homogeneous_sympy_matrix_is_read_as_homogeneous():
    # sympy's Integer(0) does not compare equal to 0.0; the bottom row must still be found
    m = sympy.Matrix([[a, 0, 1], [0, 1, 2], [0, 0, 1]])
    t = Affine(m)
    assert t.ndim == 2
    assert is_zero_matrix(t.matrix() - m)
    assert t == Affine(sympy.Matrix([[a, 0, 1], [0, 1, 2]]))
    num = Affine(m.subs(a, 2))
    assert num.ndim == 2
    np.testing.assert_array_equal(num.matrix(), [[2, 0, 1], [0, 1, 2], [0, 0, 1]])


def test_singular_symbolic_inverse_raises():
    with pytest.raises(ValueError, match="singular"):
        Affine(sympy.Matrix([[a, 2 * a], [1, 2]])).inverse()
