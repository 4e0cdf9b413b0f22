"""Coordinate systems as a graph (issue 11, item 5): a 3-image, 2-registration OME-NGFF 0.6
scene resamples every image into every system, each checked against scipy.ndimage with the
matrix composed by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from transfuse import DisplacementField, Grid, Scale, Translate
from transfuse.io.errors import FormatError
from transfuse.systems import CoordinateSystems

AXES = [{"name": n, "type": "space", "unit": "micrometer"} for n in ("z", "y", "x")]
R = Rotation.from_rotvec([0.1, -0.15, 0.2]).as_matrix()
T_MS = np.array([1.5, -2.0, 0.5])  # moving -> scanner: p -> R p + t
S_SA = np.array([1.1, 0.9, 1.2])  # scanner -> atlas: p -> s p + u (a bijection)
U_SA = np.array([-3.0, 2.0, 1.0])

SCENE = {
    "ome": {
        "version": "0.6",
        "scene": {
            "coordinateSystems": [
                {"name": "moving", "axes": AXES},
                {"name": "scanner", "axes": AXES},
                {"name": "atlas", "axes": AXES},
            ],
            "coordinateTransformations": [
                {
                    "type": "sequence",
                    "input": {"name": "moving"},
                    "output": {"name": "scanner"},
                    "transformations": [
                        {"type": "rotation", "rotation": R.tolist()},
                        {"type": "translation", "translation": T_MS.tolist()},
                    ],
                },
                {
                    "type": "bijection",
                    "input": {"name": "scanner"},
                    "output": {"name": "atlas"},
                    "forward": {
                        "type": "byDimension",
                        "transformations": [
                            {
                                "transformation": {
                                    "type": "affine",
                                    "affine": [[S_SA[i], U_SA[i]]],
                                },
                                "input_axes": [ax],
                                "output_axes": [ax],
                            }
                            for i, ax in enumerate(["z", "y", "x"])
                        ],
                    },
                    "inverse": {
                        "type": "sequence",
                        "transformations": [
                            {"type": "translation", "translation": (-U_SA).tolist()},
                            {"type": "scale", "scale": (1 / S_SA).tolist()},
                        ],
                    },
                },
            ],
        },
    }
}


def _homogeneous(linear, offset):
    m = np.eye(4)
    m[:3, :3] = linear
    m[:3, 3] = offset
    return m


FORWARD = {  # by hand: the map from the first system's points to the second's
    ("moving", "scanner"): _homogeneous(R, T_MS),
    ("scanner", "atlas"): _homogeneous(np.diag(S_SA), U_SA),
}
FORWARD[("moving", "atlas")] = FORWARD[("scanner", "atlas")] @ FORWARD[("moving", "scanner")]
for (a, b), m in list(FORWARD.items()):
    FORWARD[(b, a)] = np.linalg.inv(m)
for s in ("moving", "scanner", "atlas"):
    FORWARD[(s, s)] = np.eye(4)

RNG = np.random.default_rng(11)
IMAGES = {
    "mri": ("moving", Grid((12, 14, 13), spacing=(2.0, 1.0, 1.1), origin=(-4.0, -3.0, -5.0))),
    "ct": ("scanner", Grid((13, 12, 12), spacing=(1.5, 1.2, 1.0), origin=(-2.0, -6.0, -4.0))),
    "template": (
        "atlas",
        Grid((11, 12, 14), spacing=1.3, origin=(-6.0, -3.0, -4.0), direction=R.T),
    ),
}
DATA = {name: RNG.random(grid.shape) for name, (_, grid) in IMAGES.items()}
ONTO = Grid((9, 10, 11), spacing=(1.4, 1.3, 1.2), origin=(-3.0, -2.0, -2.5))


def _scene():
    images = {name: (DATA[name], system, grid) for name, (system, grid) in IMAGES.items()}
    return CoordinateSystems.from_ngff(SCENE, images=images)


def test_scene_builds_both_directions_of_exact_edges():
    cs = _scene()
    assert cs.systems == ["atlas", "moving", "scanner"]
    assert set(cs.graph.edges) == {
        ("moving", "scanner"),
        ("scanner", "moving"),
        ("scanner", "atlas"),
        ("atlas", "scanner"),
    }
    assert cs.path("moving", "atlas") == ["moving", "scanner", "atlas"]
    pts = RNG.uniform(-5, 5, size=(7, 3))
    for (a, b), m in FORWARD.items():
        want = pts @ m[:3, :3].T + m[:3, 3]
        np.testing.assert_allclose(cs.transform(a, b)(pts), want, atol=1e-12)


@pytest.mark.parametrize(
    ("image", "into"), list(itertools.product(sorted(IMAGES), ["moving", "scanner", "atlas"]))
)
@pytest.mark.parametrize("order", [0, 1])
def test_every_image_into_every_system(image, into, order):
    cs = _scene()
    system, grid = IMAGES[image]
    out = cs.resample(image, into=into, onto=ONTO, order=order)
    assert out.grid == ONTO
    # by hand: output index -> into point -> image system point -> image index
    m = np.linalg.inv(grid.physical_matrix()) @ FORWARD[(into, system)] @ ONTO.physical_matrix()
    want = ndimage.affine_transform(DATA[image], m, output_shape=ONTO.shape, order=order)
    np.testing.assert_allclose(out.compute(), want, atol=1e-9)
    assert len(out.plan().passes) == 1


def test_own_system_without_onto_is_the_image():
    cs = _scene()
    np.testing.assert_allclose(cs.resample("ct", into="scanner", order=1).compute(), DATA["ct"])
    with pytest.raises(ValueError, match="onto= is needed: 'ct' lives in 'scanner'"):
        cs.resample("ct", into="atlas")


def test_missing_links_are_named():
    cs = _scene()
    cs.add_system("histology")
    with pytest.raises(ValueError, match=r"no path from 'moving' to 'histology': 'moving' "):
        cs.transform("moving", "histology")
    with pytest.raises(KeyError, match=r"dst='nowhere' is not a coordinate system here"):
        cs.transform("moving", "nowhere")
    with pytest.raises(KeyError, match=r"image='brain' is not an image here"):
        cs.resample("brain", into="atlas", onto=ONTO)


def test_a_field_links_one_way_only():
    """A displacement field has no exact inverse: only the stored direction is an edge."""
    cs = CoordinateSystems()
    u = np.zeros((2, 4, 4))
    u[0] = 0.5
    cs.add_transform("fixed", "moving", DisplacementField(u))
    cs.add_transform("moving", "scanner", Translate((1.0, 1.0)))
    np.testing.assert_allclose(cs.transform("fixed", "scanner")([[0.0, 0.0]]), [[1.5, 1.0]])
    with pytest.raises(
        ValueError,
        match=r"no path from 'scanner' to 'fixed': 'scanner' "
        r"connects to \{'moving'\}; nothing links into 'fixed'",
    ):
        cs.transform("scanner", "fixed")


def test_a_given_inverse_makes_a_field_two_way():
    u = np.zeros((2, 4, 4))
    cs = CoordinateSystems()
    cs.add_transform("a", "b", DisplacementField(u + 1.0), inverse=DisplacementField(u - 1.0))
    np.testing.assert_allclose(cs.transform("b", "a")([[2.0, 2.0]]), [[1.0, 1.0]])


def test_ngff_field_scene_is_one_way():
    scene = {
        "coordinateSystems": [
            {"name": "fixed", "axes": AXES[1:]},
            {"name": "moving", "axes": AXES[1:]},
        ],
        "coordinateTransformations": [
            {
                "type": "inverseOf",
                "input": {"name": "moving"},
                "output": {"name": "fixed"},
                "transformation": {"type": "displacements", "path": "warp"},
            }
        ],
    }
    cs = CoordinateSystems.from_ngff(scene, arrays={"warp": np.zeros((2, 3, 3))})
    assert set(cs.graph.edges) == {("fixed", "moving")}


@pytest.mark.parametrize(
    ("scene", "match"),
    [
        ({"coordinateTransformations": []}, "non-empty list"),
        (
            {
                "coordinateSystems": [{"name": "a", "axes": [{"type": "space"}]}],
                "coordinateTransformations": [{"type": "identity", "input": "a", "output": "b"}],
            },
            "every axis needs a 'name'",
        ),
        (
            {"coordinateTransformations": [{"type": "scale", "scale": [1.0], "output": "b"}]},
            r"coordinateTransformations\[0\]\.input: must name",
        ),
        (
            {
                "coordinateTransformations": [
                    {"type": "scale", "scale": "x", "input": "a", "output": "b"}
                ]
            },
            "scale=",
        ),
        (3, "must be an object"),
    ],
)
def test_malformed_scenes_raise_format_errors(scene, match):
    with pytest.raises(FormatError, match=match):
        CoordinateSystems.from_ngff(scene)


def test_build_time_errors():
    cs = CoordinateSystems()
    with pytest.raises(ValueError, match="src and dst are both 'a'"):
        cs.add_transform("a", "a", Scale(2.0))
    with pytest.raises(TypeError, match="(?s)transform=.* is not a transfuse Transform"):
        cs.add_transform("a", "b", np.eye(3))
    with pytest.raises(ValueError, match=r"grid.shape=\(3, 3\) differs"):
        cs.add_image("x", np.zeros((4, 4)), "a", Grid((3, 3)))
