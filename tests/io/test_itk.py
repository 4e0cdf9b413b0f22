"""ITK text transform files: files typed by hand from ITK's documented parameter layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from transfuse import Affine, Grid, Rotate, Scale, Shear, Transform, Translate, symbols
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


G_OUT = Grid.from_itk((4, 4, 4), **GRID_OUT)
G_IN = Grid.from_itk(
    (4, 4, 4), *(GRID_IN[f"input_{k}"] for k in ("spacing", "origin", "direction"))
)

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

    T = read_itk(path, grid=G_OUT, input_grid=G_IN)

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
    g = Grid.from_itk((3, 3), **grid)
    pts = rng.uniform(0, 10, size=(5, 2))

    def by_hand(lin):
        out = []
        for q in pts:
            x = np.asarray(grid["origin"]) + np.asarray(grid["spacing"]) * q[::-1]
            y = lin @ (x - c) + c + t
            out.append(((y - grid["origin"]) / grid["spacing"])[::-1])
        return np.array(out)

    e = read_itk(tfm(tmp_path, one("Euler2DTransform_double_2_2", [angle, *t], c), "e"), grid=g)
    np.testing.assert_allclose(e(pts), by_hand(rot), atol=1e-12)
    s = tfm(tmp_path, one("Similarity2DTransform_double_2_2", [scale, angle, *t], c), "s")
    np.testing.assert_allclose(read_itk(s, grid=g)(pts), by_hand(scale * rot), atol=1e-12)


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
    write_itk(T, path, grid=G_OUT, input_grid=G_IN)
    back = read_itk(path, grid=G_OUT, input_grid=G_IN)
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
            "Transform: IdentityTransform_double_2_2\nTransform: IdentityTransform_double_3_3\n",
            r":3: IdentityTransform is 3-D; the first transform is 2-D",
        ),
        (
            "Transform: IdentityTransform_double_2_2\nTransform: AffineTransform_double_2_2\n",
            r":3: AffineTransform has no Parameters line",
        ),
        (
            "Transform: IdentityTransform_double_2_2\nParameters:\n"
            "Transform: CompositeTransform_double_2_2\n",
            r":4: a CompositeTransform may only be the first",
        ),
        (
            "Transform: TranslationTransform_double_2_2\nParameters: 1 2\n",
            r":3: TranslationTransform has Parameters but no FixedParameters line; ITK ignores",
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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
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
    write_itk(Scale(2.0), tmp_path / "w.tfm", grid=Grid((2, 2)))  # the grid fixes ndim
    assert "AffineTransform_double_2_2" in (tmp_path / "w.tfm").read_text()


def test_against_simpleitk(tmp_path):
    """Cross-check with ITK itself (SimpleITK is in the test extra)."""
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
    grid = Grid.from_itk(out.GetSize(), out.GetSpacing(), out.GetOrigin(), out.GetDirection())
    T = read_itk(path, grid=grid)
    for q in POINTS3:
        x = tx.TransformPoint(out.TransformContinuousIndexToPhysicalPoint(q[::-1].tolist()))
        k = np.array(out.TransformPhysicalPointToContinuousIndex(x))[::-1]
        np.testing.assert_allclose(T(q[None])[0], k, atol=1e-9)
    write_itk(T, path, grid=grid)
    back = sitk.ReadTransform(path)
    for p in POINTS3:
        np.testing.assert_allclose(back.TransformPoint(p), tx.TransformPoint(p), atol=1e-9)


def _sitk_chain(sitk):
    return sitk.CompositeTransform(
        [
            sitk.Euler3DTransform((0.5, -1.0, 2.0), 0.3, -0.7, 1.1, (1.0, 2.0, 3.0)),
            sitk.AffineTransform((1.1, 0.1, 0.0, -0.05, 0.9, 0.2, 0.0, 0.1, 1.2), (1, -2, 0.5)),
            sitk.ScaleTransform(3, (1.5, 0.5, 2.0)),
        ]
    )


def test_physical_space_is_itk_transform_point_reversed(tmp_path):
    """space="physical": T(p) == TransformPoint(p[::-1])[::-1] for numpy-order points p."""
    sitk = pytest.importorskip("SimpleITK")
    tx = _sitk_chain(sitk)
    path = str(tmp_path / "c.tfm")
    sitk.WriteTransform(tx, path)
    T = read_itk(path, space="physical")
    for p in POINTS3:
        want = np.array(tx.TransformPoint(p[::-1].tolist()))[::-1]
        np.testing.assert_allclose(T(p[None])[0], want, atol=1e-9)
    # writing the physical transform back gives ITK the same map
    write_itk(T, path, space="physical")
    back = sitk.ReadTransform(path)
    for p in POINTS3:
        np.testing.assert_allclose(back.TransformPoint(p), tx.TransformPoint(p), atol=1e-9)
    with pytest.raises(ValueError, match="space='physical' takes no grid"):
        read_itk(path, space="physical", grid=G_OUT)
    with pytest.raises(ValueError, match="space='spherical' must be"):
        read_itk(path, space="spherical")


def test_index_space_is_physical_between_grids(tmp_path):
    """The index form is G_in^-1 . T_phys . G_out with the Grid objects' own maps."""
    sitk = pytest.importorskip("SimpleITK")
    path = str(tmp_path / "c.tfm")
    sitk.WriteTransform(_sitk_chain(sitk), path)
    phys = read_itk(path, space="physical")
    index = read_itk(path, grid=G_OUT, input_grid=G_IN)
    want = G_IN.to_index() @ phys @ G_OUT.to_physical()
    np.testing.assert_allclose(index.matrix(), want.matrix(), atol=1e-12)


@pytest.mark.parametrize("order", [1, 3])
def test_resample_equals_simpleitk_on_oblique_anisotropic_grids(tmp_path, order):
    """lazy(x).transform(read_itk(..., grid=ref, input_grid=img)) equals sitk.Resample in
    the interior (ITK's B-spline resampler is scipy's order-3 interpolation there)."""
    sitk = pytest.importorskip("SimpleITK")
    from transfuse import lazy

    rng = np.random.default_rng(3)
    x = rng.random((14, 17, 19))
    img = sitk.GetImageFromArray(x)
    img.SetSpacing((0.8, 1.1, 2.5))
    img.SetOrigin((-3.0, 4.0, 1.0))
    img.SetDirection(Rotation.from_rotvec([0.1, -0.2, 0.15]).as_matrix().ravel().tolist())
    ref = sitk.Image([15, 13, 11], sitk.sitkFloat64)
    ref.SetSpacing((1.0, 1.2, 1.9))
    ref.SetOrigin((0.0, 5.0, 3.0))
    ref.SetDirection(Rotation.from_rotvec([-0.2, 0.1, 0.3]).as_matrix().ravel().tolist())
    tx = sitk.Euler3DTransform((5.0, 10.0, 8.0), 0.05, -0.1, 0.2, (0.5, 0.3, -0.4))
    path = str(tmp_path / "r.tfm")
    sitk.WriteTransform(tx, path)
    interp = sitk.sitkLinear if order == 1 else sitk.sitkBSpline
    want = sitk.GetArrayFromImage(sitk.Resample(img, ref, tx, interp, np.nan))

    def grid_of(im):
        return Grid.from_itk(im.GetSize(), im.GetSpacing(), im.GetOrigin(), im.GetDirection())

    T = read_itk(path, grid=grid_of(ref), input_grid=grid_of(img))
    got = lazy(x).transform(T, output_shape=want.shape, order=order, mode="mirror").compute()
    # the interior: input positions at least 3 voxels inside (ITK prefilters with mirror)
    k = T(np.indices(want.shape).reshape(3, -1).T.astype(float))
    inside = np.all((k >= 3) & (k <= np.array(x.shape) - 4), axis=1).reshape(want.shape)
    assert inside.sum() > 100
    np.testing.assert_allclose(got[inside], want[inside], atol=1e-9 if order == 1 else 1e-6)


@pytest.mark.parametrize("order", [1, 3])
def test_read_transform_physical_resamples_like_simpleitk(tmp_path, order):
    """sitk.Resample(img, ref, ReadTransform(f)) equals
    lazy(x, grid=g).resample(read_transform(f, space="physical"), onto=ref_grid)."""
    sitk = pytest.importorskip("SimpleITK")
    import transfuse

    rng = np.random.default_rng(5)
    x = rng.random((16, 18, 20))
    g = Grid(
        x.shape,
        (2.0, 0.9, 0.7),
        (1.0, -2.0, 3.0),
        Rotation.from_rotvec([0.1, 0.2, -0.1]).as_matrix(),
    )
    ref = Grid(
        (12, 14, 13),
        (1.5, 1.1, 0.8),
        (4.0, 1.0, 2.0),
        Rotation.from_rotvec([-0.2, 0.0, 0.25]).as_matrix(),
    )
    img = sitk.GetImageFromArray(x)
    ref_img = sitk.Image(list(ref.shape[::-1]), sitk.sitkFloat64)
    for im, grid in ((img, g), (ref_img, ref)):
        itk = grid.to_itk()
        im.SetSpacing(itk["spacing"])
        im.SetOrigin(itk["origin"])
        im.SetDirection(itk["direction"])
    path = str(tmp_path / "chain.tfm")
    sitk.WriteTransform(_sitk_chain(sitk), path)
    tx = sitk.ReadTransform(path)
    interp = sitk.sitkLinear if order == 1 else sitk.sitkBSpline
    want = sitk.GetArrayFromImage(sitk.Resample(img, ref_img, tx, interp, np.nan))
    T = transfuse.read_transform(path, space="physical")
    got = transfuse.lazy(x, grid=g).resample(T, onto=ref, order=order, mode="mirror").compute()
    k = (g.to_index() @ T @ ref.to_physical())(np.indices(ref.shape).reshape(3, -1).T * 1.0)
    inside = np.all((k >= 3) & (k <= np.array(x.shape) - 4), axis=1).reshape(ref.shape)
    assert inside.sum() > 50
    np.testing.assert_allclose(got[inside], want[inside], atol=1e-9 if order == 1 else 1e-6)


HMC = """#Insight Transform File V1.0
#Transform 0
Transform: MatrixOffsetTransformBase_double_3_3
Parameters: 0.9998 0.0175 -0.0052 -0.0174 0.9997 0.0160 0.0055 -0.0159 0.9999 0.21 -0.35 0.12
FixedParameters: 0 0 0
#Transform 1
Transform: MatrixOffsetTransformBase_double_3_3
Parameters: 1 0 0 0 1 0 0 0 1 0 0 0
FixedParameters: 0 0 0
#Transform 2
Transform: MatrixOffsetTransformBase_double_3_3
Parameters: 0.9994 -0.0262 0.0227 0.0259 0.9996 0.0105 -0.0230 -0.0099 0.9997 -0.44 0.08 0.95
FixedParameters: 0 0 0
"""


def test_head_motion_file_reads_as_a_list(tmp_path):
    """fMRIPrep's head-motion file: one affine per volume, no CompositeTransform header."""
    sitk = pytest.importorskip("SimpleITK")
    path = tmp_path / "hmc.txt"
    path.write_text(HMC)
    Ts = read_itk(path, space="physical")
    assert isinstance(Ts, list) and len(Ts) == 3
    lines = [ln.split()[1:] for ln in HMC.splitlines() if ln.startswith("Parameters:")]
    for T, line in zip(Ts, lines, strict=True):
        params = [float(v) for v in line]
        tx = sitk.AffineTransform(3)
        tx.SetMatrix(params[:9])
        tx.SetTranslation(params[9:])
        for p in POINTS3:
            want = np.array(tx.TransformPoint(p[::-1].tolist()))[::-1]
            np.testing.assert_allclose(T(p[None])[0], want, atol=1e-9)
    np.testing.assert_array_equal(Ts[1].matrix(), np.eye(4))
    # written back as a list, read back the same
    write_itk(Ts, tmp_path / "back.txt", space="physical")
    back = read_itk(tmp_path / "back.txt", space="physical")
    assert "Composite" not in (tmp_path / "back.txt").read_text()
    for a, b in zip(back, Ts, strict=True):
        np.testing.assert_array_equal(a.matrix(), b.matrix())
    # in index space, every entry uses the same grids
    index = read_itk(path, grid=G_OUT, input_grid=G_IN)
    want = G_IN.to_index() @ Ts[2] @ G_OUT.to_physical()
    np.testing.assert_allclose(index[2].matrix(), want.matrix(), atol=1e-12)


def test_parameters_without_fixed_parameters_are_refused_as_itk_ignores_them(tmp_path):
    """ITK 5.4 reads Parameters only together with FixedParameters; without them it gives an
    identity. transfuse refuses such a file rather than differ (or silently agree)."""
    sitk = pytest.importorskip("SimpleITK")
    for body in [
        "Transform: AffineTransform_double_2_2\nParameters: 2 0 0 3 5 7\n",
        "Transform: TranslationTransform_double_2_2\nParameters: 5 7\n",
    ]:
        path = tfm(tmp_path, "#Transform 0\n" + body)
        assert sitk.ReadTransform(path).TransformPoint((1.0, 1.0)) == (1.0, 1.0)
        with pytest.raises(FormatError, match=":4: .*no FixedParameters line; ITK ignores"):
            read_itk(path)
    # no parameters at all: an identity for ITK and for transfuse
    path = tfm(tmp_path, "Transform: IdentityTransform_double_2_2\n")
    np.testing.assert_array_equal(read_itk(path).matrix(), np.eye(3))


def test_loose_grid_arguments_still_work_but_are_deprecated(tmp_path, rng):
    path = tfm(tmp_path, one("AffineTransform_double_3_3", rng.normal(size=12), [1, 2, 3]))
    with pytest.warns(DeprecationWarning, match="grid=Grid.from_itk"):
        loose = read_itk(path, **GRID_OUT, **GRID_IN)
    np.testing.assert_allclose(
        loose.matrix(), read_itk(path, grid=G_OUT, input_grid=G_IN).matrix(), atol=1e-12
    )
    with pytest.raises(ValueError, match="not both"):
        read_itk(path, spacing=(1.0, 1.0, 1.0), grid=G_OUT)
    with pytest.raises(ValueError, match="grid is 2-D but the transform is 3-D"):
        read_itk(path, grid=Grid((3, 3)))
    with pytest.raises(TypeError, match="input_grid=.* must be a transfuse.Grid"):
        read_itk(path, input_grid=(1.0, 1.0, 1.0))


def test_grid_from_ngff_metadata(tmp_path):
    """An NGFF image (axes z, y, x; scale s, translation t) has ITK spacing s[::-1]."""
    from transfuse.io.ngff import from_ngff

    s_fix, t_fix = np.array([2.0, 0.5, 0.25]), np.array([1.0, -3.0, 7.0])
    s_mov, t_mov = np.array([1.0, 1.5, 0.5]), np.array([0.0, 2.0, -1.0])
    A = np.array([[1.0, 0.1, 0.0], [0.0, 0.9, -0.2], [0.3, 0.0, 1.1]])  # acts on (x, y, z)
    t = np.array([0.5, -1.0, 2.0])
    path = tfm(tmp_path, one("AffineTransform_double_3_3", [*A.ravel(), *t], [0, 0, 0]))
    T = read_itk(
        path,
        grid=Grid((4, 4, 4), spacing=s_fix, origin=t_fix),
        input_grid=Grid((4, 4, 4), spacing=s_mov, origin=t_mov),
    )

    def ngff(s, t):
        return [
            {"type": "scale", "scale": list(s)},
            {"type": "translation", "translation": list(t)},
        ]

    phys_zyx = Affine(np.hstack([A[::-1, ::-1], t[::-1, None]]))
    want = from_ngff(ngff(s_mov, t_mov)) @ phys_zyx @ from_ngff(ngff(s_fix, t_fix)).inverse()
    np.testing.assert_allclose(T.matrix(), want.matrix(), atol=1e-12)


# -- reading is confined and bounded (issue 9, item 2) ----------------------------------------
SECRET = "root:x:0:0:SECRET-LINE:/root:/bin/bash"
COMPOSITE = "Transform: CompositeTransform_double_2_2\nComponentTransformFile: {}\n"


@pytest.fixture
def outside(tmp_path):
    """A directory with a secret file, and a recipe directory beside it."""
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "passwd"
    secret.write_text(SECRET + "\n")
    (tmp_path / "tfm").mkdir()
    return tmp_path / "tfm", secret


def _refused(path, match):
    with pytest.raises(FormatError, match=match) as info:
        read_itk(path)
    assert "SECRET" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    "ref, match",
    [
        ("{secret}", "must stay inside"),
        ("../outside/passwd", "must stay inside"),
        ("./../outside/passwd", "must stay inside"),
        ("sub//x.tfm", "must stay inside"),
        ("C:\\x.tfm", "must stay inside"),
        ("link.tfm", "leads outside"),
        ("missing.tfm", "not found"),
        ("dir", "not a regular file"),
        ("passwd-copy", "component file not shown|expected the header"),
    ],
)
def test_component_files_stay_inside_the_directory(outside, ref, match):
    base, secret = outside
    (base / "link.tfm").symlink_to(secret)
    (base / "dir").mkdir()
    (base / "passwd-copy").write_text(SECRET + "\n")
    path = tfm(base, COMPOSITE.format(ref.format(secret=secret)))
    _refused(path, match)


def test_component_file_through_a_symlink_inside_is_read(tmp_path):
    (tmp_path / "parts").mkdir()
    tfm(tmp_path / "parts", one("TranslationTransform_double_2_2", [1, 2], []), "real.tfm")
    (tmp_path / "alias.tfm").symlink_to(tmp_path / "parts" / "real.tfm")
    for ref in ("alias.tfm", "parts/real.tfm"):
        T = read_itk(tfm(tmp_path, COMPOSITE.format(ref)))
        np.testing.assert_array_equal(T.matrix(), Translate((2.0, 1.0)).matrix())


def test_component_errors_do_not_quote_the_component(tmp_path):
    (tmp_path / "part.tfm").write_text(
        "#Insight Transform File V1.0\nTransform: IdentityTransform_double_2_2\n" + SECRET + "\n"
    )
    message = _refused(tfm(tmp_path, COMPOSITE.format("part.tfm")), "part.tfm")
    assert "not shown" in message


def _run_with_timeout(func, seconds=10):
    import threading

    result = {}

    def target():
        try:
            func()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "reading blocked"
    return result.get("exc")


def test_fifo_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.tfm")
    exc = _run_with_timeout(lambda: read_itk(tmp_path / "pipe.tfm"))
    assert isinstance(exc, FormatError) and "not a regular file" in str(exc)
    exc = _run_with_timeout(lambda: read_itk(tfm(tmp_path, COMPOSITE.format("pipe.tfm"))))
    assert isinstance(exc, FormatError) and "not a regular file" in str(exc)


def test_devices_are_refused(tmp_path):
    with pytest.raises(FormatError, match="not a regular file"):
        read_itk("/dev/zero")
    (tmp_path / "zero.tfm").symlink_to("/dev/zero")
    _refused(tfm(tmp_path, COMPOSITE.format("zero.tfm")), "leads outside")


def test_file_size_limits(tmp_path, monkeypatch):
    from transfuse.io import itk

    monkeypatch.setattr(itk, "MAX_ITK_BYTES", 4000)
    big = tfm(tmp_path, "#" + "x" * 5000 + "\n" + one("IdentityTransform_double_2_2", [], []))
    _refused(big, "exceeds the limit of 4000")
    part = tfm(tmp_path, "#" + "x" * 1500 + "\n" + one("IdentityTransform_double_2_2", [], []))
    assert read_itk(part).ndim == 2
    monkeypatch.setattr(itk, "MAX_ITK_TOTAL_BYTES", 5000)
    body = "Transform: CompositeTransform_double_2_2\n" + "ComponentTransformFile: t.tfm\n" * 9
    _refused(tfm(tmp_path, body, "many.tfm"), "exceeds the limit")


def test_huge_dimensions_are_refused_before_allocating(tmp_path):
    import tracemalloc

    body = "Transform: AffineTransform_double_40000_40000\nParameters: 1 2 3\nFixedParameters: 0\n"
    tracemalloc.start()
    try:
        _refused(tfm(tmp_path, body), r"dimensions must be 1 to 32")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
    digits = "9" * 5000
    _refused(tfm(tmp_path, f"Transform: AffineTransform_double_{digits}_{digits}\n"), "dimensions")
    _refused(tfm(tmp_path, "Transform: IdentityTransform_double_0_0\n"), "dimensions")


def test_invalid_utf8_is_a_format_error(tmp_path):
    path = tmp_path / "bad.tfm"
    path.write_bytes(b"#Insight Transform File V1.0\nTransform: \xff\xfe\n")
    _refused(path, "not a UTF-8 text transform file")


def test_long_fields_are_quoted_short(tmp_path):
    body = "Transform: IdentityTransform_double_2_2\n" + "A" * 10**6
    message = _refused(tfm(tmp_path, body), "expected .Name: value")
    assert len(message) < 400


@pytest.mark.parametrize("token", ["1_0", "\u0661", "0x10", "1e", "--1", "\uff11"])
def test_numbers_are_ascii_decimals(tmp_path, token):
    body = f"Transform: TranslationTransform_double_2_2\nParameters: {token} 2\n"
    _refused(tfm(tmp_path, body), "is not a number")


def test_dimensions_are_ascii_digits(tmp_path):
    _refused(tfm(tmp_path, "Transform: AffineTransform_double_\u0662_\u0662\n"), "not of the form")
