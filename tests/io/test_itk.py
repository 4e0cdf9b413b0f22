"""ITK text transform files: files typed by hand from ITK's documented parameter layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from transfuse import Affine, Rotate, Scale, Shear, Transform, Translate, symbols
from transfuse.io.itk import FormatError, index_to_physical, read_itk, write_itk

RNG = np.random.default_rng(7)


def tfm(tmp_path, body: str, name="t.tfm") -> str:
    path = tmp_path / name
    path.write_text("#Insight Transform File V1.0\n" + body)
    return str(path)


def one(kind, params, fixed) -> str:
    fmt = " ".join(repr(float(v)) for v in params)
    fix = " ".join(repr(float(v)) for v in fixed)
    return f"#Transform 0\nTransform: {kind}\nParameters: {fmt}\nFixedParameters: {fix}\n"


# The grids used below, written out independently of index_to_physical.
GRID_OUT = dict(
    spacing=(0.7, 1.3, 2.0),
    origin=(-4.0, 10.0, 3.5),
    direction=Rotation.from_rotvec([0.2, -0.4, 0.1]).as_matrix(),
)
GRID_IN = dict(
    input_spacing=(1.1, 0.4, 0.9),
    input_origin=(2.0, -1.0, 0.0),
    input_direction=Rotation.from_rotvec([-0.3, 0.0, 0.5]).as_matrix(),
)


def expected_pull(physical_map, points, grid_out, grid_in):
    """Map numpy-order output indices through an ITK physical map by hand."""
    out = []
    for q in points:
        x = np.asarray(grid_out["origin"]) + grid_out["direction"] @ (
            np.asarray(grid_out["spacing"]) * q[::-1]
        )
        y = physical_map(x)
        k = np.linalg.solve(
            grid_in["input_direction"] * np.asarray(grid_in["input_spacing"]),
            y - np.asarray(grid_in["input_origin"]),
        )
        out.append(k[::-1])
    return np.array(out)


POINTS3 = RNG.uniform(-5, 30, size=(6, 3))


@pytest.mark.parametrize("zyx", [False, True])
def test_euler3d_with_grids(tmp_path, zyx):
    ax, ay, az = 0.3, -0.7, 1.1
    t = np.array([1.0, -2.0, 3.0])
    c = np.array([0.5, 4.0, -1.5])
    # ITK: default rotation applies Y, then X, then Z; ComputeZYX applies X, then Y, then Z
    # (lower-case scipy sequences are extrinsic: the first letter is applied first)
    seq, angles = ("xyz", [ax, ay, az]) if zyx else ("yxz", [ay, ax, az])
    r = Rotation.from_euler(seq, angles).as_matrix()
    fixed = [*c, 1.0] if zyx else list(c)
    path = tfm(tmp_path, one("Euler3DTransform_double_3_3", [ax, ay, az, *t], fixed))

    T = read_itk(path, **GRID_OUT, **GRID_IN)

    want = expected_pull(lambda x: r @ (x - c) + c + t, POINTS3, GRID_OUT, GRID_IN)
    np.testing.assert_allclose(T(POINTS3), want, atol=1e-10)


def test_euler3d_flag_zero_and_three_fixed_are_the_default_order(tmp_path):
    p = [0.3, -0.7, 1.1, 0, 0, 0]
    a = read_itk(tfm(tmp_path, one("Euler3DTransform_double_3_3", p, [0, 0, 0]), "a.tfm"))
    b = read_itk(tfm(tmp_path, one("Euler3DTransform_double_3_3", p, [0, 0, 0, 0]), "b.tfm"))
    c = read_itk(tfm(tmp_path, one("Euler3DTransform_double_3_3", p, [0, 0, 0, 1]), "c.tfm"))
    np.testing.assert_array_equal(a.matrix(), b.matrix())
    assert not np.allclose(a.matrix(), c.matrix())


def test_no_grid_only_reverses_the_axes(tmp_path):
    T = read_itk(tfm(tmp_path, one("TranslationTransform_double_3_3", [1, 2, 3], [])))
    np.testing.assert_array_equal(T.matrix(), Translate((3.0, 2.0, 1.0)).matrix())
    A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0]])
    path = tfm(tmp_path, one("AffineTransform_double_3_3", [*A.ravel(), 0, 0, 0], [0, 0, 0]), "a")
    np.testing.assert_array_equal(read_itk(path).matrix()[:3, :3], A[::-1, ::-1])


def test_euler2d_and_similarity2d(tmp_path, rng):
    angle, scale = 0.6, 1.7
    t, c = np.array([1.5, -2.0]), np.array([3.0, 4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    grid = dict(spacing=(0.5, 2.0), origin=(1.0, -1.0))
    pts = rng.uniform(0, 10, size=(5, 2))

    def by_hand(lin):
        out = []
        for q in pts:
            x = np.asarray(grid["origin"]) + np.asarray(grid["spacing"]) * q[::-1]
            y = lin @ (x - c) + c + t
            out.append(((y - grid["origin"]) / grid["spacing"])[::-1])
        return np.array(out)

    e = read_itk(tfm(tmp_path, one("Euler2DTransform_double_2_2", [angle, *t], c), "e"), **grid)
    np.testing.assert_allclose(e(pts), by_hand(rot), atol=1e-12)
    s = tfm(tmp_path, one("Similarity2DTransform_double_2_2", [scale, angle, *t], c), "s")
    np.testing.assert_allclose(read_itk(s, **grid)(pts), by_hand(scale * rot), atol=1e-12)


def test_versor_rigid_and_similarity3d(tmp_path):
    axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    theta, scale = 0.8, 0.6
    versor = axis * np.sin(theta / 2)  # vector part of the unit quaternion
    r = Rotation.from_rotvec(axis * theta).as_matrix()
    t, c = np.array([1.0, 2.0, -3.0]), np.array([4.0, 0.0, 1.0])

    v = read_itk(tfm(tmp_path, one("VersorRigid3DTransform_double_3_3", [*versor, *t], c), "v"))
    s = read_itk(
        tfm(tmp_path, one("Similarity3DTransform_double_3_3", [*versor, *t, scale], c), "s")
    )
    grid = dict(spacing=(1, 1, 1), origin=(0, 0, 0), direction=np.eye(3))
    unit_in = dict(input_spacing=(1, 1, 1), input_origin=(0, 0, 0), input_direction=np.eye(3))
    want_v = expected_pull(lambda x: r @ (x - c) + c + t, POINTS3, grid, unit_in)
    want_s = expected_pull(lambda x: scale * r @ (x - c) + c + t, POINTS3, grid, unit_in)
    np.testing.assert_allclose(v(POINTS3), want_v, atol=1e-10)
    np.testing.assert_allclose(s(POINTS3), want_s, atol=1e-10)


def test_affine_center_scale_identity(tmp_path):
    A = np.array([[1.1, 0.2, 0.0], [-0.1, 0.9, 0.3], [0.05, 0.0, 1.2]])
    t, c = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 5.0, 2.0])
    a = read_itk(tfm(tmp_path, one("AffineTransform_double_3_3", [*A.ravel(), *t], c), "a"))
    grid = dict(spacing=(1, 1, 1), origin=(0, 0, 0), direction=np.eye(3))
    unit_in = dict(input_spacing=(1, 1, 1), input_origin=(0, 0, 0), input_direction=np.eye(3))
    want = expected_pull(lambda x: A @ (x - c) + c + t, POINTS3, grid, unit_in)
    np.testing.assert_allclose(a(POINTS3), want, atol=1e-12)

    s = read_itk(tfm(tmp_path, one("ScaleTransform_double_3_3", [2, 3, 4], c), "s"))
    want = expected_pull(lambda x: np.array([2, 3, 4]) * (x - c) + c, POINTS3, grid, unit_in)
    np.testing.assert_allclose(s(POINTS3), want, atol=1e-12)
    # older ScaleTransform files have no centre
    body = "Transform: ScaleTransform_double_2_2\nParameters: 2 3\nFixedParameters:\n"
    np.testing.assert_array_equal(read_itk(tfm(tmp_path, body, "s0")).matrix(), np.diag([3, 2, 1]))

    body = "Transform: IdentityTransform_double_2_2\nParameters:\nFixedParameters:\n"
    np.testing.assert_array_equal(read_itk(tfm(tmp_path, body, "i")).matrix(), np.eye(3))


def test_float_type_is_read(tmp_path):
    body = "Transform: TranslationTransform_float_2_2\nParameters: 1 2\nFixedParameters:\n"
    np.testing.assert_array_equal(read_itk(tfm(tmp_path, body)).matrix()[:2, 2], [2, 1])


def test_composite_applies_the_last_part_first(tmp_path):
    # CompositeTransform(x) = T0(T1(x)) for parts written T0, T1 (ITK's queue order)
    body = (
        "#Transform 0\nTransform: CompositeTransform_double_2_2\n"
        + one("TranslationTransform_double_2_2", [10, 20], []).replace(
            "#Transform 0", "#Transform 1"
        )
        + one("ScaleTransform_double_2_2", [2, 3], [0, 0]).replace("#Transform 0", "#Transform 2")
    )
    T = read_itk(tfm(tmp_path, body))
    # physical: (x, y) -> (2x + 10, 3y + 20); numpy order swaps the axes
    np.testing.assert_array_equal(T([[1.0, 1.0]]), [[23.0, 12.0]])


def test_component_files(tmp_path):
    tfm(tmp_path, one("TranslationTransform_double_2_2", [10, 20], []), "part0.tfm")
    tfm(tmp_path, one("ScaleTransform_double_2_2", [2, 3], [0, 0]), "part1.tfm")
    body = (
        "Transform: CompositeTransform_double_2_2\n"
        "ComponentTransformFile: part0.tfm\nComponentTransformFile: part1.tfm\n"
    )
    np.testing.assert_array_equal(read_itk(tfm(tmp_path, body))([[1.0, 1.0]]), [[23.0, 12.0]])


def test_index_to_physical_by_hand():
    d = GRID_OUT["direction"]
    g = index_to_physical(3, GRID_OUT["spacing"], GRID_OUT["origin"], d.ravel())
    q = np.array([2.0, 5.0, 7.0])  # numpy order: z index 2, y index 5, x index 7
    want = np.asarray(GRID_OUT["origin"]) + d @ (np.asarray(GRID_OUT["spacing"]) * [7, 5, 2])
    np.testing.assert_allclose((g @ [*q, 1])[:3], want, atol=1e-12)


@pytest.mark.parametrize(
    "T",
    [
        Rotate(30, axes=(0, 2), center=(1.0, 2.0, 3.0)) @ Scale((1.5, 0.5, 2.0)),
        Shear(0.3, axes=(1, 2), ndim=3) @ Translate((1.0, -2.0, 0.25)),
        Affine(RNG.normal(size=(3, 4))),
    ],
)
def test_round_trip_with_grids(tmp_path, T):
    path = tmp_path / "rt.tfm"
    write_itk(T, path, **GRID_OUT, **GRID_IN)
    back = read_itk(path, **GRID_OUT, **GRID_IN)
    np.testing.assert_allclose(back.matrix(), T.matrix(), atol=1e-12)
    assert "AffineTransform_double_3_3" in path.read_text()


def test_write_is_the_documented_affine_layout(tmp_path):
    # index pull (i, j) -> (2i + 1, 3j + 5) with unit grid is, in (x, y), x -> 3x + 5, y -> 2y + 1
    path = tmp_path / "w.tfm"
    write_itk(Affine([[2.0, 0.0, 1.0], [0.0, 3.0, 5.0]]), path)
    lines = path.read_text().splitlines()
    assert lines[2] == "Transform: AffineTransform_double_2_2"
    assert lines[3] == "Parameters: 3 0 0 2 5 1"
    assert lines[4] == "FixedParameters: 0 0"


def test_write_precision_is_exact(tmp_path, rng):
    T = Affine(rng.normal(size=(2, 3)))
    write_itk(T, tmp_path / "p.tfm")
    assert np.array_equal(read_itk(tmp_path / "p.tfm").matrix(), T.matrix())


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("Transform: BSplineTransform_double_3_3\n", r"t\.tfm:2: Transform: unsupported type"),
        ("Transform: AffineTransform_double_2_3\n", r":2: Transform: .* maps 2-D to 3-D"),
        ("Transform: Affine\n", r":2: Transform: 'Affine' is not of the form"),
        ("Transform: Euler3DTransform_double_2_2\n", r":2: .*Euler3DTransform does not exist"),
        (
            "Transform: TranslationTransform_double_2_2\nParameters: 1 x\n",
            r":3: Parameters: 'x' is not a number",
        ),
        (
            "Transform: TranslationTransform_double_2_2\nParameters: 1 2 3\n",
            r":3: Parameters: .* needs 2 numbers, got 3",
        ),
        (
            "Transform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\nFixedParameters: 0\n",
            r":4: FixedParameters: .* needs 2 numbers, got 1",
        ),
        ("Transform: AffineTransform_double_2_2\nFixedParameters: 0 0\n", r":2: .*no Parameters"),
        ("Transform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\n", r"no FixedParam"),
        ("Parameters: 1 2\n", r":2: Parameters before any 'Transform:' line"),
        ("Transform: IdentityTransform_double_2_2\nColour: red\n", r":3: unknown field 'Colour'"),
        ("Transform: IdentityTransform_double_2_2\nno colon here\n", r":3: expected 'Name: v"),
        (
            "Transform: TranslationTransform_double_2_2\nParameters: 1 inf\n",
            r":3: Parameters: 'inf' is not finite",
        ),
        (
            "Transform: VersorRigid3DTransform_double_3_3\nParameters: 1 1 0 0 0 0\n"
            "FixedParameters: 0 0 0\n",
            r"versor .* norm",
        ),
        (
            "Transform: IdentityTransform_double_2_2\nTransform: IdentityTransform_double_2_2\n",
            r":3: the file holds 2 transforms but no CompositeTransform",
        ),
        (
            "Transform: IdentityTransform_double_2_2\nParameters:\n"
            "Transform: CompositeTransform_double_2_2\n",
            r"holds 2 transforms",
        ),
        (
            "Transform: CompositeTransform_double_2_2\nTransform: IdentityTransform_double_3_3\n",
            r":3: IdentityTransform is 3-D inside a 2-D file",
        ),
        ("", r"no 'Transform:' line"),
    ],
)
def test_malformed_files(tmp_path, body, match):
    with pytest.raises(FormatError, match=match) as info:
        read_itk(tfm(tmp_path, body))
    assert isinstance(info.value, ValueError)


def test_missing_header(tmp_path):
    path = tmp_path / "x.tfm"
    path.write_text("Transform: IdentityTransform_double_2_2\n")
    with pytest.raises(FormatError, match=r"x\.tfm:1: expected the header"):
        read_itk(path)
    path.write_text("")
    with pytest.raises(FormatError, match="empty file"):
        read_itk(path)


def test_grid_argument_errors(tmp_path):
    path = tfm(tmp_path, one("TranslationTransform_double_2_2", [1, 2], []))
    with pytest.raises(ValueError, match="spacing"):
        read_itk(path, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        read_itk(path, spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="direction"):
        read_itk(path, direction=[[1.0, 0.0], [1.0, 0.0]])


@dataclasses.dataclass(frozen=True)
class _Warp(Transform):
    """A stand-in non-affine transform."""


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="not an affine"):
        write_itk(_Warp(), tmp_path / "w.tfm")
    with pytest.raises(ValueError, match="free symbols"):
        write_itk(Rotate(symbols("a"), ndim=2), tmp_path / "w.tfm")
    with pytest.raises(ValueError, match="ndim"):
        write_itk(Scale(2.0), tmp_path / "w.tfm")
    write_itk(Scale(2.0), tmp_path / "w.tfm", spacing=(1.0, 1.0))  # the grid fixes ndim
    assert "AffineTransform_double_2_2" in (tmp_path / "w.tfm").read_text()


def test_against_simpleitk(tmp_path):
    """Cross-check with ITK itself when SimpleITK is installed."""
    sitk = pytest.importorskip("SimpleITK")
    tx = sitk.CompositeTransform(
        [
            sitk.Euler3DTransform((0.5, -1.0, 2.0), 0.3, -0.7, 1.1, (1.0, 2.0, 3.0)),
            sitk.ScaleTransform(3, (1.5, 0.5, 2.0)),
        ]
    )
    path = str(tmp_path / "s.tfm")
    sitk.WriteTransform(tx, path)
    out = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    out.SetSpacing(GRID_OUT["spacing"])
    out.SetOrigin(GRID_OUT["origin"])
    out.SetDirection(GRID_OUT["direction"].ravel().tolist())
    T = read_itk(path, out.GetSpacing(), out.GetOrigin(), out.GetDirection())
    for q in POINTS3:
        x = tx.TransformPoint(out.TransformContinuousIndexToPhysicalPoint(q[::-1].tolist()))
        k = np.array(out.TransformPhysicalPointToContinuousIndex(x))[::-1]
        np.testing.assert_allclose(T(q[None])[0], k, atol=1e-9)
    write_itk(T, path, out.GetSpacing(), out.GetOrigin(), out.GetDirection())
    back = sitk.ReadTransform(path)
    for p in POINTS3:
        np.testing.assert_allclose(back.TransformPoint(p), tx.TransformPoint(p), atol=1e-9)


def test_grid_from_ngff_metadata(tmp_path):
    """An NGFF image (axes z, y, x; scale s, translation t) has ITK spacing s[::-1]."""
    from transfuse.io.ngff import from_ngff

    s_fix, t_fix = np.array([2.0, 0.5, 0.25]), np.array([1.0, -3.0, 7.0])
    s_mov, t_mov = np.array([1.0, 1.5, 0.5]), np.array([0.0, 2.0, -1.0])
    A = np.array([[1.0, 0.1, 0.0], [0.0, 0.9, -0.2], [0.3, 0.0, 1.1]])  # acts on (x, y, z)
    t = np.array([0.5, -1.0, 2.0])
    path = tfm(tmp_path, one("AffineTransform_double_3_3", [*A.ravel(), *t], [0, 0, 0]))
    T = read_itk(
        path, s_fix[::-1], t_fix[::-1], input_spacing=s_mov[::-1], input_origin=t_mov[::-1]
    )

    def ngff(s, t):
        return [
            {"type": "scale", "scale": list(s)},
            {"type": "translation", "translation": list(t)},
        ]

    phys_zyx = Affine(np.hstack([A[::-1, ::-1], t[::-1, None]]))
    want = from_ngff(ngff(s_mov, t_mov)) @ phys_zyx @ from_ngff(ngff(s_fix, t_fix)).inverse()
    np.testing.assert_allclose(T.matrix(), want.matrix(), atol=1e-12)
