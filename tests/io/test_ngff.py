"""OME-NGFF coordinateTransformations: examples re-typed from the NGFF specification."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import transfuse.transforms as tt
from transfuse import Affine, Compose, Permute, Rotate, Scale, Shear, Transform, Translate, symbols
from transfuse.io.ngff import FormatError, from_ngff, to_ngff


def forward(node, p):
    """Evaluate an NGFF forward transformation on one point, straight from the spec's text."""
    p = np.asarray(p, dtype=np.float64)
    kind = node["type"]
    if kind == "identity":
        return p
    if kind == "scale":
        return np.asarray(node["scale"]) * p
    if kind == "translation":
        return p + np.asarray(node["translation"])
    if kind == "mapAxis":  # output axis i takes input axis m[i]
        return p[np.asarray(node["mapAxis"])]
    if kind == "rotation":
        return np.asarray(node["rotation"]) @ p
    if kind == "affine":
        a = np.asarray(node["affine"])
        return a[:, :-1] @ p + a[:, -1]
    if kind == "sequence":  # f0 first, then f1, ...
        for child in node["transformations"]:
            p = forward(child, p)
        return p
    raise AssertionError(kind)


def roundtrips(T, node, n, count=5):
    """``T`` pulls every forward-mapped point back to where it came from."""
    for p in np.random.default_rng(3).uniform(-10, 10, size=(count, n)):
        np.testing.assert_allclose(T(forward(node, p)[None])[0], p, atol=1e-12)


# -- 0.4 / 0.5 ---------------------------------------------------------------------------------
def test_04_multiscales_example():
    # the 0.4 spec's multiscales example, level "1": 1 µm voxels, then 0.1 ms time steps
    dataset = [{"type": "scale", "scale": [1.0, 1.0, 1.0, 1.0, 1.0]}]
    level0 = [{"type": "scale", "scale": [1.0, 1.0, 0.5, 0.5, 0.5]}]
    shared = [{"type": "scale", "scale": [0.1, 1.0, 1.0, 1.0, 1.0]}]
    T1 = from_ngff(dataset + shared)
    np.testing.assert_allclose(T1.matrix()[:5, :5], np.diag([10.0, 1, 1, 1, 1]))
    T0 = from_ngff(level0 + shared)
    np.testing.assert_allclose(T0.matrix()[:5, :5], np.diag([10.0, 1, 2, 2, 2]))
    # physical point (t=0.3 ms, c=1, z=y=x=1 µm) is index (3, 1, 2, 2, 2) of level 0
    np.testing.assert_allclose(T0([[0.3, 1, 1, 1, 1]]), [[3, 1, 2, 2, 2]])


def test_04_scale_then_translation_order():
    ct = [
        {"type": "scale", "scale": [2.0, 4.0]},
        {"type": "translation", "translation": [10.0, -1.0]},
    ]
    T = from_ngff(ct)
    # forward: x = 2 i + 10, y = 4 j - 1  =>  index (3, 5) sits at (16, 19)
    np.testing.assert_allclose(T([[16.0, 19.0]]), [[3.0, 5.0]])
    assert isinstance(T, Compose)
    assert T.parts == (Scale((0.5, 0.25)), Translate((-10.0, 1.0)))


def test_to_ngff_04():
    T = from_ngff(
        [{"type": "scale", "scale": [0.5, 2.0]}, {"type": "translation", "translation": [1, 2]}]
    )
    assert to_ngff(T, version="0.5") == [
        {"type": "scale", "scale": [0.5, 2.0]},
        {"type": "translation", "translation": [1.0, 2.0]},
    ]
    assert to_ngff(Scale((4.0, 0.5)), version="0.4") == [{"type": "scale", "scale": [0.25, 2.0]}]
    with pytest.raises(ValueError, match="per-axis scale"):
        to_ngff(Rotate(30, ndim=2), version="0.4")


# -- 0.6: the specification's examples -----------------------------------------------------------
CS_2D = [
    {"name": "in", "axes": [{"name": "j"}, {"name": "i"}]},
    {"name": "out", "axes": [{"name": "y"}, {"name": "x"}]},
]


def test_identity_example():
    node = {"type": "identity", "input": {"name": "in"}, "output": {"name": "out"}}
    T = from_ngff(node, CS_2D)
    np.testing.assert_array_equal(T.matrix(), np.eye(3))
    assert T.ndim == 2


def test_translation_example():
    node = {"type": "translation", "input": "in", "output": "out", "translation": [9, -1.42]}
    T = from_ngff(node, CS_2D)
    assert T == Translate((-9.0, 1.42))
    roundtrips(T, node, 2)


def test_scale_example():
    node = {"type": "scale", "scale": [2, 3.12], "input": "in", "output": "out"}
    T = from_ngff(node, CS_2D)
    np.testing.assert_allclose(T.matrix(), np.diag([0.5, 1 / 3.12, 1]))
    roundtrips(T, node, 2)


def test_affine_example():
    node = {"type": "affine", "affine": [[1, 2, 3], [4, 5, 6]], "input": "in", "output": "out"}
    T = from_ngff(node, CS_2D)
    forward_h = np.array([[1, 2, 3], [4, 5, 6], [0, 0, 1]], dtype=float)
    np.testing.assert_allclose(T.matrix() @ forward_h, np.eye(3), atol=1e-12)
    roundtrips(T, node, 2)


def test_affine_variants():
    rows = [[2.0, 0.0, 1.0], [0.0, 4.0, -2.0]]
    want = from_ngff({"type": "affine", "affine": rows}).matrix()
    full = {"type": "affine", "affine": [*rows, [0, 0, 1]]}
    np.testing.assert_array_equal(from_ngff(full).matrix(), want)
    flat = {"type": "affine", "affine": [2.0, 0.0, 1.0, 0.0, 4.0, -2.0]}  # a 0.5-dev draft
    np.testing.assert_array_equal(from_ngff(flat).matrix(), want)
    stored = {"type": "affine", "path": "ct/affine"}
    np.testing.assert_array_equal(from_ngff(stored, arrays={"ct/affine": rows}).matrix(), want)
    np.testing.assert_array_equal(from_ngff(stored, arrays=lambda p: np.array(rows)).matrix(), want)
    with pytest.raises(FormatError, match="pass arrays="):
        from_ngff(stored)


def test_rotation_example():
    node = {"type": "rotation", "rotation": [[0, -1], [1, 0]], "input": "in", "output": "out"}
    T = from_ngff(node, CS_2D)
    # x = -j, y = i  pulls back exactly with the transpose
    np.testing.assert_array_equal(T.matrix(), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    roundtrips(T, node, 2)


def test_spec_matrix_example_zyx():
    # "transforming the point [z,y,x]=[1,2,3] with [[0,1,0],[-1,0,0],[0,0,-1]] gives [2,-1,-3]"
    node = {"type": "affine", "affine": [[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, -1, 0]]}
    np.testing.assert_allclose(from_ngff(node)([[2.0, -1.0, -3.0]]), [[1.0, 2.0, 3.0]])


def test_sequence_example():
    node = {
        "type": "sequence",
        "input": {"name": "in"},
        "output": {"name": "out"},
        "transformations": [
            {"type": "translation", "translation": [0.1, 0.9]},
            {"type": "scale", "scale": [2, 3]},
        ],
    }
    T = from_ngff(node, CS_2D)
    # x = (i + 0.1) * 2, y = (j + 0.9) * 3: index (0, 0) is at (0.2, 2.7)
    np.testing.assert_allclose(T([[0.2, 2.7]]), [[0.0, 0.0]], atol=1e-15)
    roundtrips(T, node, 2)


def test_map_axis_examples():
    cs = [
        {"name": "in", "axes": [{"name": "j"}, {"name": "i"}]},
        {"name": "out1", "axes": [{"name": "y"}, {"name": "x"}]},
        {"name": "out2", "axes": [{"name": "y"}, {"name": "x"}]},
    ]
    same = {"type": "mapAxis", "mapAxis": {"x": "i", "y": "j"}, "input": "in", "output": "out1"}
    perm = {"type": "mapAxis", "mapAxis": {"y": "i", "x": "j"}, "input": "in", "output": "out2"}
    np.testing.assert_array_equal(from_ngff(same, cs).matrix(), np.eye(3))
    # "permutation" defines x = j, y = i: output (y, x) = (5, 7) comes from (j, i) = (7, 5)
    np.testing.assert_array_equal(from_ngff(perm, cs)([[5.0, 7.0]]), [[7.0, 5.0]])
    with pytest.raises(FormatError, match="coordinate_systems"):
        from_ngff(perm)


def test_map_axis_list_form():
    node = {"type": "mapAxis", "mapAxis": [2, 0, 1]}
    T = from_ngff(node)
    assert T == Permute((2, 0, 1))
    # out[i] = in[m[i]]: in (1, 2, 3) -> out (3, 1, 2)
    np.testing.assert_array_equal(T([[3.0, 1.0, 2.0]]), [[1.0, 2.0, 3.0]])
    roundtrips(T, node, 3)


def test_map_axis_projections_are_refused():
    # the spec's "projection down" / "projection up" examples
    with pytest.raises(FormatError, match="not a permutation"):
        from_ngff({"type": "mapAxis", "mapAxis": [1]})
    with pytest.raises(FormatError, match="not a permutation"):
        from_ngff({"type": "mapAxis", "mapAxis": [1, 1, 0]})


def test_inverse_of_and_bijection():
    inner = {"type": "scale", "scale": [2.0, 4.0]}
    # inverseOf: the stored map already points output -> input, so it is the pull map
    assert from_ngff({"type": "inverseOf", "transformation": inner}) == Scale((2.0, 4.0))
    # bijection: the pull map is its 'inverse' member as given (checked against 'forward')
    bij = {
        "type": "bijection",
        "forward": inner,
        "inverse": {"type": "scale", "scale": [0.5, 0.25]},
        "input": "in",
        "output": "out",
    }
    assert from_ngff(bij, CS_2D) == Scale((0.5, 0.25))
    # nested: the inverse of a bijection is its forward member
    assert from_ngff({"type": "inverseOf", "transformation": bij}) == Scale((2.0, 4.0))


def test_by_dimension_example():
    node = {
        "type": "byDimension",
        "input": {"name": "in"},
        "output": {"name": "out"},
        "transformations": [
            {
                "transformation": {"type": "translation", "translation": [-1.0]},
                "input_axes": [1],
                "output_axes": [1],
            },
            {
                "transformation": {"type": "scale", "scale": [2.0]},
                "input_axes": [0],
                "output_axes": [0],
            },
        ],
    }
    T = from_ngff(node, CS_2D)
    # y = 2 j, x = i - 1
    np.testing.assert_allclose(T([[6.0, 4.0]]), [[3.0, 5.0]])
    named = {**node, "transformations": [
        {**node["transformations"][0], "input_axes": ["i"], "output_axes": ["x"]},
        {**node["transformations"][1], "input_axes": ["j"], "output_axes": ["y"]},
    ]}  # fmt: skip
    np.testing.assert_allclose(from_ngff(named, CS_2D).matrix(), T.matrix())


def test_by_dimension_invalid_example():
    node = {
        "type": "byDimension",
        "input": "in",
        "output": "out",
        "transformations": [
            {
                "transformation": {"type": "translation", "translation": [-1.0]},
                "input_axes": [1],
                "output_axes": [1],
            },
            {
                "transformation": {"type": "scale", "scale": [2.0]},
                "input_axes": [1],
                "output_axes": [1],
            },
        ],
    }
    with pytest.raises(FormatError, match="exactly one child"):
        from_ngff(node, CS_2D)


BIJECTION = {
    "type": "bijection",
    "forward": {"type": "coordinates", "path": "forward_coordinates"},
    "inverse": {"type": "coordinates", "path": "inverse_coordinates"},
    "input": {"name": "src"},
    "output": {"name": "tgt"},
}
HAS_COORDINATE_MAP = hasattr(tt, "CoordinateMap")
HAS_DISPLACEMENT_FIELD = hasattr(tt, "DisplacementField")


@pytest.mark.skipif(HAS_COORDINATE_MAP, reason="transfuse has CoordinateMap")
def test_coordinates_without_the_node():
    with pytest.raises(FormatError, match=r"transformation\.inverse: .*CoordinateMap") as info:
        from_ngff(BIJECTION)
    assert not isinstance(info.value, NotImplementedError)


@pytest.mark.skipif(not HAS_COORDINATE_MAP, reason="transfuse has no CoordinateMap yet")
def test_coordinates_bijection_example(rng):
    fwd = rng.uniform(0, 5, size=(2, 4, 5))  # vector axis first (the 0.6 layout), grid (y, x)
    inv = rng.uniform(0, 5, size=(2, 6, 7))
    arrays = {"forward_coordinates": fwd, "inverse_coordinates": inv}
    T = from_ngff(BIJECTION, arrays=arrays)
    # the pull map is the 'inverse' field: at target grid point (i, j) read source inv[:, i, j]
    assert isinstance(T, tt.CoordinateMap)
    np.testing.assert_array_equal(T.coords, inv)
    assert (
        from_ngff({"type": "inverseOf", "transformation": BIJECTION}, arrays=arrays).coords[1, 3, 4]
        == fwd[1, 3, 4]
    )
    # vector axis last, when the caller says so
    last = {k: np.moveaxis(v, 0, -1) for k, v in arrays.items()}
    np.testing.assert_array_equal(from_ngff(BIJECTION, arrays=last, vector_axis=-1).coords, inv)
    # the default layout contradicted by the shape: the message names vector_axis
    with pytest.raises(FormatError, match=r"forward: .*shape \(4, 5, 2\): vector_axis=0 holds 4"):
        from_ngff(BIJECTION, arrays=last)
    # bijection.forward is read too: a malformed forward member is an error
    with pytest.raises(FormatError, match=r"transformation\.forward: no array"):
        from_ngff(BIJECTION, arrays={"inverse_coordinates": inv})


@pytest.mark.skipif(not HAS_COORDINATE_MAP, reason="transfuse has no CoordinateMap yet")
def test_coordinates_1d_example():
    # the spec's 1-D example: the array [-9, 9, 0] gives x = -9, 9, 0 at i = 0, 1, 2
    node = {"type": "coordinates", "path": "i2xCoordinates", "interpolation": "nearest"}
    arrays = {"i2xCoordinates": np.array([[-9.0, 9.0, 0.0]])}
    T = from_ngff({"type": "inverseOf", "transformation": node}, arrays=arrays)
    np.testing.assert_array_equal(T.coords, [[-9.0, 9.0, 0.0]])
    column = {"i2xCoordinates": np.array([[-9.0], [9.0], [0.0]])}
    T = from_ngff({"type": "inverseOf", "transformation": node}, arrays=column, vector_axis=-1)
    np.testing.assert_array_equal(T.coords, [[-9.0, 9.0, 0.0]])
    with pytest.raises(FormatError, match="vector_axis=0"):
        from_ngff({"type": "inverseOf", "transformation": node}, arrays=column)
    # a bare forward field points input -> output and has no closed-form pull map
    with pytest.raises(FormatError, match="inverseOf"):
        from_ngff(node, arrays=arrays)
    with pytest.raises(FormatError, match="pass arrays="):
        from_ngff({"type": "inverseOf", "transformation": node})
    with pytest.raises(FormatError, match="N\\+1 dimensions"):
        from_ngff({"type": "inverseOf", "transformation": node}, arrays={"i2xCoordinates": [1.0]})


def test_bijection_forward_is_validated():
    good = {
        "type": "bijection",
        "forward": {"type": "scale", "scale": [2.0, 4.0]},
        "inverse": {"type": "scale", "scale": [0.5, 0.25]},
    }
    np.testing.assert_allclose(from_ngff(good).matrix(), np.diag([0.5, 0.25, 1.0]))
    bad = {**good, "inverse": {"type": "scale", "scale": [0.5, 0.5]}}
    with pytest.raises(FormatError, match="forward and bijection.inverse are not inverses"):
        from_ngff(bad)
    with pytest.raises(FormatError, match=r"transformation\.forward: scale="):
        from_ngff({**good, "forward": {"type": "scale", "scale": "x"}})
    with pytest.raises(FormatError, match="forward' and 'inverse'"):
        from_ngff({"type": "bijection", "inverse": good["inverse"]})


def test_by_dimension_inside_a_sequence_inherits_the_systems():
    systems = [
        {"name": "in", "axes": [{"name": "y"}, {"name": "x"}]},
        {"name": "out", "axes": [{"name": "y"}, {"name": "x"}]},
    ]
    by_dim = {
        "type": "byDimension",
        "transformations": [
            {
                "transformation": {"type": "scale", "scale": [2.0]},
                "input_axes": ["x"],
                "output_axes": ["x"],
            },
            {
                "transformation": {"type": "translation", "translation": [3.0]},
                "input_axes": ["y"],
                "output_axes": ["y"],
            },
        ],
    }
    seq = {
        "type": "sequence",
        "input": {"name": "in"},
        "output": {"name": "out"},
        "transformations": [by_dim, {"type": "translation", "translation": [1.0, 1.0]}],
    }
    T = from_ngff(seq, systems)
    # forward: y -> y + 3 + 1, x -> 2x + 1; the pull map undoes it
    np.testing.assert_allclose(T([[4.0, 1.0]]), [[0.0, 0.0]])
    with pytest.raises(FormatError, match="not in the coordinate system"):
        from_ngff({**seq, "input": {"name": "nowhere"}, "output": {"name": "nowhere"}}, systems)


@pytest.mark.skipif(HAS_DISPLACEMENT_FIELD, reason="transfuse has DisplacementField")
def test_displacements_without_the_node():
    node = {"type": "inverseOf", "transformation": {"type": "displacements", "path": "d"}}
    with pytest.raises(FormatError, match="DisplacementField"):
        from_ngff(node, arrays={"d": np.zeros((3, 1))})


@pytest.mark.skipif(not HAS_DISPLACEMENT_FIELD, reason="transfuse has no DisplacementField yet")
def test_displacements_with_the_node(rng):
    field = rng.normal(size=(2, 4, 5))
    node = {"type": "inverseOf", "transformation": {"type": "displacements", "path": "d"}}
    T = from_ngff(node, arrays={"d": field})
    assert isinstance(T, tt.DisplacementField)
    with pytest.raises(FormatError, match="inverseOf"):
        from_ngff(node["transformation"], arrays={"d": field})


# a field stored as the spec lays it out: its own coordinate system (vector axis typed
# "displacement", first) and its own grid (scale and translation of its dataset)
FIELD_META = {
    "coordinateSystems": [
        {
            "name": "field",
            "axes": [
                {"name": "d", "type": "displacement"},
                {"name": "y", "type": "space"},
                {"name": "x", "type": "space"},
            ],
        }
    ],
    "datasets": [
        {
            "path": "0",
            "coordinateTransformations": [
                {
                    "type": "sequence",
                    "transformations": [
                        {"type": "scale", "scale": [1.0, 4.0, 2.5]},
                        {"type": "translation", "translation": [0.0, -3.0, 10.0]},
                    ],
                }
            ],
        }
    ],
}


def test_displacement_field_uses_its_own_grid(rng):
    from scipy import ndimage

    u = rng.normal(size=(2, 6, 7))
    node = {"type": "inverseOf", "transformation": {"type": "displacements", "path": "d"}}
    T = from_ngff(node, arrays={"d": (u, FIELD_META)})
    pts = rng.uniform([-3.0, 10.0], [17.0, 25.0], size=(20, 2))
    at = ((pts - [-3.0, 10.0]) / [4.0, 2.5]).T
    want = pts + np.stack([ndimage.map_coordinates(c, at, order=1, mode="nearest") for c in u], 1)
    np.testing.assert_allclose(T(pts), want, atol=1e-12)
    # the field's axis types decide the vector axis: the same field, vector last
    axes = FIELD_META["coordinateSystems"][0]["axes"]
    meta_last = {
        "coordinateSystems": [{"name": "field", "axes": [axes[1], axes[2], axes[0]]}],
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [4.0, 2.5, 1.0]},
                    {"type": "translation", "translation": [-3.0, 10.0, 0.0]},
                ],
            }
        ],
    }
    last = np.moveaxis(u, 0, -1)
    T_last = from_ngff(node, arrays={"d": (last, meta_last)})
    np.testing.assert_allclose(T_last(pts), want, atol=1e-12)
    with pytest.raises(FormatError, match=r"vector_axis=0 but the field's own axes put"):
        from_ngff(node, arrays={"d": (last, meta_last)}, vector_axis=0)
    # cubic interpolation is read from the node
    cubic = {
        "type": "inverseOf",
        "transformation": {**node["transformation"], "interpolation": "cubic"},
    }
    assert from_ngff(cubic, arrays={"d": (u, FIELD_META)}).order == 3
    with pytest.raises(FormatError, match="interpolation="):
        bad = {
            "type": "inverseOf",
            "transformation": {**node["transformation"], "interpolation": 3},
        }
        from_ngff(bad, arrays={"d": u})


def test_coordinate_field_on_its_own_grid(rng):
    from scipy import ndimage

    c = rng.normal(size=(2, 6, 7)) * 5
    meta = {
        "axes": [{"name": "c", "type": "coordinate"}, {"name": "y"}, {"name": "x"}],
        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0, 3.0]}],
    }
    node = {"type": "inverseOf", "transformation": {"type": "coordinates", "path": "c"}}
    T = from_ngff(node, arrays={"c": (c, meta)})
    pts = rng.uniform(0, [10.0, 18.0], size=(15, 2))
    at = (pts / [2.0, 3.0]).T
    want = np.stack([ndimage.map_coordinates(v, at, order=1, mode="nearest") for v in c], 1)
    np.testing.assert_allclose(T(pts), want, atol=1e-9)


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ct", "match"),
    [
        ({"type": "warp"}, r"transformation: unknown transformation type 'warp'"),
        ({"scale": [1]}, "string 'type'"),
        ([{"type": "scale", "scale": [0, 1]}], r"transformations\[0\]: scale=.* has a zero"),
        ([{"type": "scale", "scale": "big"}], r"transformations\[0\]: scale="),
        ([{"type": "scale", "scale": [1, float("nan")]}], "non-finite"),
        ([{"type": "translation"}], r"needs the field 'translation'"),
        ({"type": "rotation", "rotation": [[1, 1], [0, 1]]}, "not orthonormal"),
        ({"type": "rotation", "rotation": [[1, 0], [0, -1]]}, "determinant 1"),
        ({"type": "affine", "affine": [[1, 2, 3]]}, "maps 2-D to 1-D"),
        ({"type": "affine", "affine": [[1, 2, 3], [2, 4, 0]]}, "singular"),
        ({"type": "sequence", "transformations": []}, "non-empty list"),
        (
            {
                "type": "sequence",
                "transformations": [
                    {"type": "scale", "scale": [1, 2]},
                    {"type": "scale", "scale": [1, 2, 3]},
                ],
            },
            r"^transformation: cannot compose",
        ),
        ({"type": "inverseOf"}, "needs 'transformation'"),
        ({"type": "bijection", "forward": {"type": "identity"}}, "needs 'forward' and 'inverse'"),
        ([], "non-empty list"),
        ("scale", "non-empty list"),
    ],
)
def test_malformed(ct, match):
    with pytest.raises(FormatError, match=match) as info:
        from_ngff(ct)
    assert isinstance(info.value, ValueError)


def test_dimension_checked_against_coordinate_systems():
    node = {"type": "scale", "scale": [1, 2, 3], "input": "in", "output": "out"}
    with pytest.raises(FormatError, match="input coordinate system 'in' has 2 axes"):
        from_ngff(node, CS_2D)


def test_nested_error_positions():
    node = {
        "type": "sequence",
        "transformations": [{"type": "identity"}, {"type": "scale", "scale": [0, 1]}],
    }
    with pytest.raises(FormatError, match=r"^transformation\.transformations\[1\]: scale"):
        from_ngff(node)


# -- writing -------------------------------------------------------------------------------------
def test_to_ngff_sequence_types_and_semantics():
    T = (
        Translate((1.0, 2.0, 3.0))
        @ Scale((2.0, 0.5, 4.0))
        @ Permute((2, 0, 1))
        @ Rotate(90, axes=(0, 1), ndim=3)
        @ Rotate(30, axes=(1, 2), ndim=3)
        @ Shear(0.25, axes=(0, 2), ndim=3)
    )
    node = to_ngff(T, input="array", output="physical")
    assert node["type"] == "sequence"
    assert (node["input"], node["output"]) == ({"name": "array"}, {"name": "physical"})
    assert to_ngff(T, input={"path": "0"})["input"] == {"path": "0"}
    with pytest.raises(ValueError, match="input=3 must be"):
        to_ngff(T, input=3)
    kinds = [child["type"] for child in node["transformations"]]
    assert kinds == ["translation", "scale", "mapAxis", "rotation", "rotation", "affine"]
    assert node["transformations"][0]["translation"] == [-1.0, -2.0, -3.0]
    assert node["transformations"][2]["mapAxis"] == [2, 0, 1]
    roundtrips(T, node, 3)
    np.testing.assert_allclose(from_ngff(node).matrix(), T.matrix(), atol=1e-12)


def test_to_ngff_single_and_affine_forms():
    assert to_ngff(Translate((1.0, -2.0))) == {"type": "translation", "translation": [-1.0, 2.0]}
    T = Rotate(30, ndim=2, center=(1.0, 2.0)) @ Scale((2.0, 3.0))
    node = to_ngff(T, form="affine", output="out")
    assert node["type"] == "affine" and node["output"] == {"name": "out"} and "input" not in node
    assert np.shape(node["affine"]) == (2, 3)
    roundtrips(T, node, 2)
    np.testing.assert_allclose(from_ngff(node).matrix(), T.matrix(), atol=1e-12)
    assert to_ngff(tt.Identity(), ndim=2) == {"type": "identity"}


@dataclasses.dataclass(frozen=True)
class _Warp(Transform):
    """A stand-in non-affine transform."""


def test_to_ngff_errors():
    with pytest.raises(ValueError, match="not an affine"):
        to_ngff(_Warp())
    with pytest.raises(ValueError, match="free symbols"):
        to_ngff(Rotate(symbols("a"), ndim=2))
    with pytest.raises(ValueError, match="ndim"):
        to_ngff(Scale(2.0))
    with pytest.raises(ValueError, match="version"):
        to_ngff(Scale((2.0, 2.0)), version="0.3")
    with pytest.raises(ValueError, match="form"):
        to_ngff(Scale((2.0, 2.0)), form="matrix")
    with pytest.raises(ValueError, match="singular"):
        to_ngff(Affine([[1.0, 2.0], [2.0, 4.0]]), form="affine")


def test_round_trip_random_affine(rng):
    T = Affine(rng.normal(size=(3, 4)) + 3 * np.eye(3, 4))
    for form in ("sequence", "affine"):
        back = from_ngff(to_ngff(T, form=form))
        np.testing.assert_allclose(back.matrix(), T.matrix(), atol=1e-12)


# -- hostile documents (issue 9, item 18) -------------------------------------------------------
def _nested(depth):
    node = {"type": "identity"}
    for _ in range(depth):
        node = {"type": "inverseOf", "transformation": node}
    return node


def _cycle():
    node = {"type": "inverseOf"}
    node["transformation"] = node
    return node


HOSTILE = {
    "string numbers": ([{"type": "scale", "scale": ["1", "2"]}], "scale="),
    "string translation": ({"type": "translation", "translation": ["1e3"]}, "translation="),
    "bool numbers": ({"type": "scale", "scale": [True, 2]}, "scale="),
    "string matrix": ({"type": "affine", "affine": [["1", 0, 0], [0, 1, 0]]}, "affine="),
    "ragged affine": ({"type": "affine", "affine": [[1, 0, 0], [0, 1]]}, "differ in length"),
    "ragged rotation": ({"type": "rotation", "rotation": [[1, 0], [0]]}, "differ in length"),
    "huge mapAxis": ({"type": "mapAxis", "mapAxis": [0, 10**30]}, "mapAxis="),
    "negative mapAxis": ({"type": "mapAxis", "mapAxis": [-1, 0]}, "mapAxis="),
    "huge int": ({"type": "scale", "scale": [10**400, 1]}, "scale"),
    "deep nesting": (_nested(10_000), "nested deeper than 64"),
    "a cycle": (_cycle(), "nested deeper than 64"),
    "long type": ({"type": "x" * 10**6}, "unknown transformation type"),
    "long key list": ({"type": "scale", "scale": ["y" * 10**6]}, "scale="),
    "huge byDimension axis": (
        {
            "type": "byDimension",
            "transformations": [
                {"type": "scale", "scale": [2], "input_axes": [0], "output_axes": [10**12]}
            ],
        },
        "axis",
    ),
    "too many dimensions": ({"type": "scale", "scale": [1.0] * 1000}, "at most 33"),
    "non-string path": ({"type": "scale", "path": ["a"]}, "path must be a string"),
}


@pytest.mark.parametrize("ct, match", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_documents_are_format_errors(ct, match):
    with pytest.raises(FormatError, match=match) as info:
        from_ngff(ct, arrays={"a": np.ones(2)})
    assert len(str(info.value)) < 500


@pytest.mark.parametrize(
    "systems",
    [
        [{"name": "a", "axes": 5}],
        [{"name": ["a"], "axes": ["x"]}],
        [{"name": "a", "axes": [{"name": 3}]}],
        [{"name": "a", "axes": ["x"] * 1000}],
    ],
)
def test_bad_coordinate_systems_are_format_errors(systems):
    with pytest.raises(FormatError, match="coordinate system"):
        from_ngff({"type": "identity", "input": "a", "output": "a"}, systems)


def test_numeric_arrays_at_paths_are_still_read():
    T = from_ngff({"type": "scale", "path": "s"}, arrays={"s": np.array([2, 4], np.int32)})
    np.testing.assert_allclose(T.matrix(), Scale((0.5, 0.25)).matrix())
    with pytest.raises(FormatError, match="must hold numbers"):
        from_ngff({"type": "scale", "path": "s"}, arrays={"s": np.array(["2", "4"])})


# -- grids (issue 11, item 1: the NGFF functions take and return grids) ------------------------
@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3),
    st.lists(st.floats(-100.0, 100.0), min_size=3, max_size=3),
    st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
)
def test_grids_round_trip_through_ngff(spacing, origin, rotvec):
    from scipy.spatial.transform import Rotation

    from transfuse import Grid
    from transfuse.io.ngff import grid_from_ngff, grid_to_ngff

    g = Grid((5, 6, 7), spacing, origin, units="micrometer")
    for version in ("0.4", "0.6"):
        meta = grid_to_ngff(g, version)
        back = grid_from_ngff(g.shape, meta["coordinateTransformations"], meta["axes"])
        assert _same_space(back, g, 1e-12) and back.units == g.units and back.axes == g.axes
    r = g.replace(direction=Rotation.from_rotvec(rotvec).as_matrix())
    meta = grid_to_ngff(r, "0.6", input={"path": "0"}, output="physical")
    assert meta["coordinateTransformations"]["output"] == {"name": "physical"}
    back = grid_from_ngff(r.shape, meta["coordinateTransformations"], meta["axes"])
    assert _same_space(back, r, 1e-9)
    if not r.is_axis_aligned():
        with pytest.raises(ValueError, match="only a per-axis scale"):
            grid_to_ngff(r, "0.5")


def test_grid_from_ngff_errors():
    from transfuse.io.ngff import grid_from_ngff

    with pytest.raises(FormatError, match="distinct string 'name'"):
        grid_from_ngff((3, 3), [{"type": "scale", "scale": [1.0, 1.0]}], [{"name": "y"}, {}])
    with pytest.raises(FormatError, match="axes must be a list of 2"):
        grid_from_ngff((3, 3), [{"type": "scale", "scale": [1.0, 1.0]}], [{"name": "y"}])
    with pytest.raises(FormatError, match="must not be empty"):
        grid_from_ngff((3, 3), [])


def _same_space(a, b, tol):
    """Same shape and index->physical map, to ``tol`` (axis names and units aside)."""
    return a.shape == b.shape and np.allclose(
        a.physical_matrix(), b.physical_matrix(), rtol=tol, atol=tol * 100
    )
