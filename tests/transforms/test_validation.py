"""Errors at build time, naming the parameter; immutability; inputs left untouched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy

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
    split_affine_matrix,
    symbols,
)

a, b = symbols("a b")
BAD_NUMBERS = [np.nan, np.inf, -np.inf, float("nan"), np.float32("nan")]


# -- matrix shapes and contents ---------------------------------------------------------------


@pytest.mark.parametrize(
    "matrix",
    [
        np.zeros((2, 3, 4)),
        np.zeros((3, 2)),
        np.zeros((2, 4)),
        np.zeros((0,)),
        np.zeros((0, 0)),
        np.zeros((1, 0)),
        5.0,
        np.array(5.0),
        [[1, 2], [3]],
        np.array([["a", "b"], ["c", "d"]]),
        np.ones((2, 2), dtype=complex),
    ],
    ids=lambda m: repr(np.shape(m)) if not isinstance(m, list) else "ragged",
)
def test_affine_bad_matrix_shape(matrix):
    with pytest.raises(ValueError, match="matrix"):
        Affine(matrix)


@pytest.mark.parametrize("bad", BAD_NUMBERS)
@pytest.mark.parametrize("form", ["diagonal", "linear", "offset-column", "homogeneous"])
def test_affine_non_finite_matrix(bad, form):
    m = {
        "diagonal": np.ones(2),
        "linear": np.array([[1.0, 2.0], [3.0, 4.0]]),
        "offset-column": np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 2.0]]),
        "homogeneous": np.eye(3),
    }[form]
    m = m.copy()
    m.flat[1] = bad
    with pytest.raises(ValueError, match=r"matrix\["):
        Affine(m)


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_affine_non_finite_offset(bad):
    with pytest.raises(ValueError, match=r"offset"):
        Affine([[1, 2], [3, 4]], offset=(0.0, bad))
    with pytest.raises(ValueError, match=r"offset"):
        Affine([[1, 2], [3, 4]], offset=bad)


def test_affine_bad_offset_shape():
    with pytest.raises(ValueError, match="offset"):
        Affine([[1, 2], [3, 4]], offset=(1, 2, 3))
    with pytest.raises(ValueError, match="offset"):
        Affine([[1, 2], [3, 4]], offset=np.zeros((2, 1)))
    # with an offset column, a separate offset is ambiguous
    with pytest.raises(ValueError, match="offset"):
        Affine([[1, 0, 1], [0, 1, 1]], offset=1)
    with pytest.raises(ValueError, match="offset"):
        Affine(np.eye(3), offset=(1, 2))


def test_bad_homogeneous_bottom_row():
    m = np.eye(3)
    m[2, 0] = 0.5
    with pytest.raises(ValueError, match="bottom row"):
        split_affine_matrix(m, ndim=2)
    m = np.eye(3)
    m[2, 2] = 2.0
    with pytest.raises(ValueError, match="bottom row"):
        split_affine_matrix(m, ndim=2)
    with pytest.raises(ValueError, match="bottom row"):
        split_affine_matrix(sympy.Matrix([[a, 0, 0], [0, 1, 0], [0, b, 1]]), ndim=2)
    # a wrong ndim is a shape error
    with pytest.raises(ValueError, match="shape"):
        split_affine_matrix(np.eye(3), ndim=4)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: Translate((1.0, v)), "vector"),
        (lambda v: Scale((1.0, v)), "factors"),
        (lambda v: Scale(v), "factors"),
        (lambda v: Rotate(v), "angle"),
        (lambda v: Rotate(30, center=(0, v)), "center"),
        (lambda v: Shear(v), "factor"),
        (lambda v: Flip(0, center=v), "center"),
        (lambda v: Flip((0, 1), center=(1, v)), "center"),
    ],
)
@pytest.mark.parametrize("bad", [*BAD_NUMBERS, sympy.oo, sympy.nan, sympy.zoo, sympy.I])
def test_non_finite_parameters(make, name, bad):
    with pytest.raises(ValueError, match=name):
        make(bad)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: Translate(()), "vector"),
        (lambda: Translate(5), "vector"),
        (lambda: Translate([[1, 2]]), "vector"),
        (lambda: Translate(np.zeros((2, 2))), "vector"),
        (lambda: Translate(("x", 1)), "vector"),
        (lambda: Translate((True, 1)), "vector"),
        (lambda: Scale(np.ones((2, 2))), "factors"),
        (lambda: Scale("2"), "factors"),
        (lambda: Rotate("30"), "angle"),
        (lambda: Rotate(1j), "angle"),
        (lambda: Rotate(30, center=(1, 2), ndim=3), "center"),
        (lambda: Flip((0, 1), center=(1, 2, 3)), "center"),
    ],
)
def test_bad_vectors_and_scalars(make, name):
    with pytest.raises(ValueError, match=name):
        make()


# -- axes, orders, dimensions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rotate(30, axes=(0, 1.0)),
        lambda: Rotate(30, axes=(0, 1.5)),
        lambda: Rotate(30, axes=("0", 1)),
        lambda: Rotate(30, axes=(True, 0)),
        lambda: Rotate(30, axes=(0, 0)),
        lambda: Rotate(30, axes=(0, 1, 2)),
        lambda: Rotate(30, axes=(0,)),
        lambda: Rotate(30, axes=(0, 3), ndim=3),
        lambda: Rotate(30, axes=(0, -4), ndim=3),
        lambda: Rotate(30, axes=(0, -1)),  # negative axes need the dimension
        lambda: Rotate(30, axes=(1, -2), ndim=3),  # -2 is axis 1 again
        lambda: Rotate(30, axes=(0, -3), ndim=3),
        lambda: Shear(0.5, axes=(1, 1)),
        lambda: Shear(0.5, axes=(0, 1.0)),
        lambda: Shear(0.5, axes=(0, -2), ndim=2),
        lambda: Shear(0.5, axes=(0, 2), ndim=2),
        lambda: Flip((0, 0)),
        lambda: Flip((0, 1.0)),
        lambda: Flip(()),
        lambda: Flip((0, -3), ndim=3),
        lambda: Flip((0, 3), ndim=3),
        lambda: Flip(-1),
    ],
)
def test_bad_axes(make):
    with pytest.raises(ValueError, match="axes"):
        make()


@pytest.mark.parametrize(
    "order", [(0, 0), (1, 2), (0, 2, 3), (0, 1.0), (0, -1), (), (True, False), ("0", "1")]
)
def test_permute_needs_a_permutation(order):
    with pytest.raises(ValueError, match="order"):
        Permute(order)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Identity(0),
        lambda: Identity(2.0),
        lambda: Rotate(30, ndim=1),
        lambda: Rotate(30, ndim=2.0),
        lambda: Shear(1, ndim=1),
        lambda: Flip(0, ndim=0),
        lambda: Flip(0, ndim=2.5),
    ],
)
def test_bad_ndim(make):
    with pytest.raises(ValueError, match="ndim"):
        make()


def test_matrix_dimension_checks():
    with pytest.raises(ValueError, match="ndim"):
        Identity().matrix()
    with pytest.raises(ValueError, match="ndim"):
        (Scale(2) @ Rotate(30)).matrix()
    with pytest.raises(ValueError, match="ndim"):
        Translate((1, 2)).matrix(3)
    with pytest.raises(ValueError, match="axes"):
        Rotate(30, axes=(0, 2)).matrix(2)
    with pytest.raises(ValueError, match="axes"):
        Rotate(30).matrix(1)
    with pytest.raises(ValueError, match="ndim"):
        Translate((1, 2))(np.zeros((4, 3)))


@pytest.mark.parametrize(
    "left,right",
    [
        (Translate((1, 2)), Translate((1, 2, 3))),
        (Rotate(30, ndim=3), Scale((1, 2))),
        (Rotate(30, center=(1, 2)), Permute((0, 1, 2))),
        (Identity(2), Affine(np.ones(3))),
        (Flip(0, ndim=4), Shear(1, ndim=3)),
    ],
)
def test_compose_conflicting_ndim(left, right):
    with pytest.raises(ValueError, match="ndim"):
        left @ right
    with pytest.raises(ValueError, match="ndim"):
        Scale(2) @ right @ Identity() @ left


def test_compose_rejects_non_transforms():
    with pytest.raises(ValueError, match="transforms"):
        Compose((Translate((1, 2)), np.eye(3)))
    with pytest.raises(ValueError, match="transforms"):
        Compose(())
    with pytest.raises(TypeError):
        Translate((1, 2)) @ [[1, 0], [0, 1]]
    with pytest.raises((TypeError, ValueError)):  # numpy's matmul answers for ndarrays
        Translate((1, 2)) @ np.eye(3)


# -- singular inverses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t,name",
    [
        (Scale((1, 0)), "factors"),
        (Scale(0), "factors"),
        (Scale((2, -0.0, 1)), "factors"),
        (Scale((a, 0)), "factors"),
        (Affine([[1, 2], [2, 4]]), "singular"),
        (Affine(np.zeros(3)), "singular"),
        (Affine([[1, 0, 0], [0, 1, 0], [1, 1, 0]], offset=1), "singular"),
        (Affine(sympy.Matrix([[a, a], [1, 1]])), "singular"),
        (Translate((1, 2)) @ Scale((0, 1)), "factors"),
        (Rotate(30) @ Affine([[1, 1], [1, 1]]), "singular"),
    ],
)
def test_singular_inverse(t, name):
    with pytest.raises(ValueError, match=name):
        t.inverse()


# -- bind -------------------------------------------------------------------------------------


def test_bind_unknown_name():
    with pytest.raises(ValueError, match="c"):
        Rotate(a).bind(c=1)
    with pytest.raises(ValueError, match="b"):
        (Rotate(a) @ Translate((1, 2))).bind(a=1, b=2)
    with pytest.raises(ValueError, match="a"):
        Rotate(30).bind(a=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1j, sympy.I])
def test_bind_to_a_bad_value(bad):
    with pytest.raises(ValueError):
        Rotate(a).bind(a=bad)
    with pytest.raises(ValueError):
        Translate((a, 1)).bind(a=bad)


def test_bind_does_not_change_the_original():
    t = Rotate(a) @ Translate((b, 1))
    t.bind(a=1, b=2)
    assert t.free_symbols == {a, b}


# -- immutability and untouched inputs ------------------------------------------------------------

ALL = [
    Identity(),
    Translate((1, 2)),
    Scale((2, 3)),
    Scale(2),
    Rotate(30, center=(1, 2)),
    Shear(0.5),
    Affine([[1, 2], [3, 4]]),
    Flip(0),
    Permute((1, 0)),
    Translate((1, 2)) @ Rotate(a),
]


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_frozen(t):
    for field in dataclasses.fields(t):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(t, field.name, getattr(t, field.name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.some_new_attribute = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        del t.key


def test_fields_are_immutable_values():
    for t in ALL:
        for value in t.params().values():
            assert isinstance(value, tuple | float | int | type(None) | sympy.Basic | Compose)


def test_numpy_inputs_not_modified_nor_aliased():
    rng = np.random.default_rng(0)
    arrays = {
        "matrix": rng.standard_normal((3, 3)) + 3 * np.eye(3),
        "offset": rng.standard_normal(3),
        "vector": rng.standard_normal(3),
        "factors": rng.uniform(1, 2, 3),
        "center": rng.standard_normal(3),
        "axes": np.array([2, 0]),
        "order": np.array([2, 0, 1]),
        "points": rng.standard_normal((5, 3)),
    }
    copies = {k: v.copy() for k, v in arrays.items()}
    ts = [
        Affine(arrays["matrix"], offset=arrays["offset"]),
        Translate(arrays["vector"]),
        Scale(arrays["factors"]),
        Rotate(30, axes=arrays["axes"], center=arrays["center"]),
        Flip(arrays["axes"], center=arrays["center"][:2], ndim=3),
        Permute(arrays["order"]),
        Shear(0.5, axes=arrays["axes"]),
    ]
    chain = ts[0]
    for t in ts[1:]:
        chain = chain @ t
    before = chain.matrix()
    keys = [t.key for t in ts]
    chain(arrays["points"])
    chain.inverse()(arrays["points"])
    for t in ts:
        t(arrays["points"])
        t.inverse()
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], copies[k], err_msg=k)
    # changing the caller's arrays afterwards does not change the transforms
    for v in arrays.values():
        v *= 2
    np.testing.assert_array_equal(chain.matrix(), before)
    rebuilt = [
        Affine(copies["matrix"], offset=copies["offset"]),
        Translate(copies["vector"]),
        Scale(copies["factors"]),
        Rotate(30, axes=copies["axes"], center=copies["center"]),
        Flip(copies["axes"], center=copies["center"][:2], ndim=3),
        Permute(copies["order"]),
        Shear(0.5, axes=copies["axes"]),
    ]
    assert [t.key for t in rebuilt] == keys
    assert rebuilt == ts


def test_returned_matrix_is_a_fresh_copy():
    t = Translate((1, 2))
    m = t.matrix()
    m[0, 2] = 100
    np.testing.assert_array_equal(t.matrix()[:2, 2], [1, 2])


# -- issue 9, item 18 ------------------------------------------------------------------------
@pytest.mark.parametrize("ndim", [np.int64(2), np.int32(3), np.uint8(2)])
def test_numpy_integers_as_ndim(ndim):
    from transfuse import Flip, Identity, Shear

    for t in (Rotate(30, ndim=ndim), Shear(0.5, ndim=ndim), Flip(0, ndim=ndim)):
        assert type(t.ndim) is int and t.ndim == int(ndim)
        assert t.key == type(t)(**{**t.params(), "ndim": int(ndim)}).key
    assert Identity(ndim).ndim == int(ndim)
    assert Affine(np.eye(int(ndim)), ndim=ndim).ndim == int(ndim)


@pytest.mark.parametrize("ndim", [2.0, "2", True, np.bool_(True), 0, -1, 1])
def test_bad_ndim_refused(ndim):
    with pytest.raises(ValueError, match="ndim"):
        Rotate(30, ndim=ndim)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Translate("1"),
        lambda: Translate(("1", "2")),
        lambda: Translate(np.array(["1", "2"])),
        lambda: Scale("2"),
        lambda: Rotate("30"),
        lambda: Rotate(30, center=("1", "1")),
        lambda: Affine([["1", "0"], ["0", "1"]]),
    ],
)
def test_strings_are_not_numbers(build):
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize("axes", [True, (False, True), (0, True), np.array([True, False])])
def test_bools_are_not_axes(axes):
    from transfuse import Flip

    with pytest.raises(ValueError, match="axes"):
        Rotate(30, axes=axes)
    with pytest.raises(ValueError, match="axes"):
        Flip(axes)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((2, 4, 4), complex),
        np.zeros((2, 4, 4), np.complex64),
        np.array([[[1j]], [[0]]], dtype=object),
        np.full((2, 3, 3), "1"),
    ],
    ids=["complex128", "complex64", "object-complex", "strings"],
)
def test_complex_and_text_fields_are_refused(array):
    import warnings

    from transfuse import CoordinateMap, DisplacementField

    before = array.copy()
    for cls, name in ((DisplacementField, "field"), (CoordinateMap, "coords")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=f"{name} must be an array of real numbers"):
                cls(array)
    np.testing.assert_array_equal(array, before)
