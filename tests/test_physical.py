"""Images on physical grids: lazy(..., grid=), LazyImage.grid through every operation,
resample(transform, onto, space)."""

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import transfuse
from transfuse import Affine, Grid, Rotate, Translate


def _oblique_grid(shape, spacing, origin, angles):
    d = Rotation.from_euler("zyx", angles).as_matrix()
    return Grid(shape, spacing=spacing, origin=origin, direction=d)


def _data(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


# -- lazy(grid=) -----------------------------------------------------------------------------
def test_plain_arrays_keep_index_space():
    x = _data((6, 7))
    img = transfuse.lazy(x)
    assert not img.has_grid
    assert img.grid == Grid((6, 7))
    out = img.rotate(20, order=1).compute()
    np.testing.assert_array_equal(out, ndi.rotate(x, 20, order=1))
    assert isinstance(out, np.ndarray)


def test_grid_shape_must_match():
    with pytest.raises(ValueError, match="grid"):
        transfuse.lazy(np.zeros((4, 5)), grid=Grid((5, 4)))
    with pytest.raises(TypeError, match="grid"):
        transfuse.lazy(np.zeros((4, 5)), grid=((4, 5), 1.0))


def test_user_grid_is_kept():
    g = Grid((4, 5), spacing=(0.5, 2.0), origin=(1.0, -3.0), units="mm")
    img = transfuse.lazy(np.zeros((4, 5)), grid=g)
    assert img.has_grid and img.grid == g


# -- grids through index-space operations ----------------------------------------------------
def test_view_grid_places_every_voxel_where_it_was():
    g = _oblique_grid((9, 10, 11), (0.5, 1.0, 2.0), (3.0, -1.0, 2.0), [0.3, -0.2, 0.1])
    img = transfuse.lazy(np.zeros(g.shape), grid=g)
    view = img[2:8:3, ::-1, 4:]
    idx = np.array(np.meshgrid(*[np.arange(n) for n in view.shape], indexing="ij"))
    idx = idx.reshape(3, -1).T.astype(float)
    # the same voxels, in the input's index space
    base = np.stack([2 + 3 * idx[:, 0], 9 - idx[:, 1], 4 + idx[:, 2]], axis=1)
    np.testing.assert_allclose(
        view.grid.to_physical()(idx), g.to_physical()(base), rtol=0, atol=1e-12
    )


def test_view_dropping_an_axis_of_an_axis_aligned_grid():
    g = Grid((5, 6, 7), spacing=(2.0, 1.0, 0.5), origin=(10.0, 20.0, 30.0), axes=("z", "y", "x"))
    img = transfuse.lazy(np.zeros(g.shape), grid=g).rotate(10, axes=(1, 2), reshape=False)
    plane = img[3]
    assert plane.grid == Grid((6, 7), spacing=(1.0, 0.5), origin=(20.0, 30.0), axes=("y", "x"))


def test_view_of_an_oblique_grid_dropping_an_axis_says_why_it_has_no_grid():
    g = _oblique_grid((5, 6, 7), 1.0, 0.0, [0.3, 0.2, 0.1])
    plane = transfuse.lazy(_data(g.shape), grid=g)[2]
    assert plane.compute().shape == (6, 7)  # the values are fine
    with pytest.raises(ValueError, match="oblique"):
        plane.grid  # noqa: B018


@pytest.mark.parametrize("grid_mode", [False, True])
def test_zoom_grid_follows_the_samples(grid_mode):
    g = Grid((5, 8), spacing=(2.0, 0.5), origin=(1.0, 4.0))
    img = transfuse.lazy(_data(g.shape), grid=g).zoom((2, 1.5), grid_mode=grid_mode, order=1)
    out_idx = np.array([[0.0, 0.0], [9.0, 11.0], [3.0, 5.0]])
    # the output sample i reads the input at the zoom's pull map: same physical point
    ratio = np.array([(5 - 1) / (10 - 1), (8 - 1) / (12 - 1)])
    if grid_mode:
        ratio = np.array([5 / 10, 8 / 12])
        src = (out_idx + 0.5) * ratio - 0.5
    else:
        src = out_idx * ratio
    np.testing.assert_allclose(
        img.grid.to_physical()(out_idx), g.to_physical()(src), rtol=0, atol=1e-12
    )


def test_other_operations_keep_the_index_to_physical_map():
    g = Grid((6, 8), spacing=(2.0, 0.5), origin=(1.0, 4.0), units="um")
    img = transfuse.lazy(_data(g.shape), grid=g)
    for out in [
        img.rotate(30),
        img.shift((1, 2)),
        img.transform(Translate((1.0, 0.5))),
        img.affine_transform(np.eye(2), output_shape=(3, 4)),
    ]:
        assert out.grid == g.replace(shape=out.shape)


# -- resample ----------------------------------------------------------------------------------
def test_resample_default_onto_is_the_input_grid_and_identity_is_exact():
    g = _oblique_grid((6, 7, 8), (0.5, 1.0, 2.0), (3.0, -1.0, 2.0), [0.3, -0.2, 0.1])
    x = _data(g.shape)
    out = transfuse.lazy(x, grid=g).resample(order=1)
    assert out.grid == g
    np.testing.assert_allclose(out.compute(), x, rtol=0, atol=1e-12)


def test_resample_physical_equals_brute_force():
    g_in = _oblique_grid((10, 11, 12), (0.5, 0.7, 1.1), (3.0, -1.0, 2.0), [0.3, -0.2, 0.1])
    g_out = _oblique_grid((7, 8, 9), (0.8, 0.6, 0.9), (2.0, 0.0, 3.0), [-0.1, 0.25, 0.05])
    T = Rotate(12.0, axes=(0, 2), center=(5.0, 4.0, 7.0)) @ Translate((0.2, -0.3, 0.1))
    x = _data(g_in.shape)
    out = transfuse.lazy(x, chunks=5, grid=g_in).resample(T, onto=g_out, order=1, mode="nearest")
    # brute force: output index -> output physical -> T -> input physical -> input index
    idx = np.array(np.meshgrid(*[np.arange(n) for n in g_out.shape], indexing="ij"))
    pts = idx.reshape(3, -1).T.astype(float)
    src = g_in.to_index()(T(g_out.to_physical()(pts)))
    expected = ndi.map_coordinates(x, src.T, order=1, mode="nearest").reshape(g_out.shape)
    np.testing.assert_allclose(out.compute(), expected, rtol=0, atol=1e-12)
    assert out.grid == g_out


def test_all_affine_physical_chain_is_one_matrix_pass():
    g_in = _oblique_grid((10, 11, 12), (0.5, 0.7, 1.1), (3.0, -1.0, 2.0), [0.3, -0.2, 0.1])
    g_out = Grid((7, 8, 9), spacing=0.9)
    img = transfuse.lazy(_data(g_in.shape), chunks=6, grid=g_in)
    out = (
        img.resample(Translate((1.0, 0.0, 0.5)), onto=g_out, order=1)
        .rotate(10, axes=(1, 2), reshape=False, order=1)
        .resample(Rotate(5.0, axes=(0, 1)), onto=g_in, order=1)
    )
    p = transfuse.plan(out)
    assert len(p.passes) == 1
    assert len(p.passes[0].stages) == 1 and p.passes[0].stages[0].form == "matrix"


def test_resample_index_space_sets_only_the_grid():
    x = _data((8, 9))
    onto = Grid((5, 6), spacing=3.0, origin=(1.0, 1.0))
    T = Affine([[1.0, 0.1], [0.0, 0.9]], (0.5, 0.2))
    out = transfuse.lazy(x).resample(T, onto=onto, space="index", order=1)
    expected = ndi.affine_transform(x, T.matrix(), output_shape=(5, 6), order=1)
    np.testing.assert_array_equal(out.compute(), expected)
    assert out.grid == onto


def test_onto_a_lazy_image_uses_its_grid():
    g = Grid((6, 6), spacing=0.5, origin=(1.0, 1.0))
    ref = transfuse.lazy(np.zeros(g.shape), grid=g)
    out = transfuse.lazy(_data((4, 4))).resample(onto=ref, order=1)
    assert out.grid == g


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"onto": (4, 4)}, TypeError, "onto"),
        ({"onto": Grid((4, 4, 4))}, ValueError, "onto"),
        ({"onto": Grid((4, 4), units="mm")}, ValueError, "units"),
        ({"space": "world"}, ValueError, "space"),
        ({"transform": np.eye(3)}, TypeError, "transform"),
        ({"transform": Translate((1.0, 2.0, 3.0))}, ValueError, "ndim"),
    ],
)
def test_bad_resample_arguments_name_the_parameter(kwargs, error, word):
    img = transfuse.lazy(np.zeros((4, 4)), grid=Grid((4, 4), units="um"))
    with pytest.raises(error, match=word):
        img.resample(**kwargs)


def test_resample_onto_a_grid_marks_the_result_as_placed():
    out = transfuse.lazy(np.zeros((4, 4))).resample(onto=Grid((3, 3), spacing=2.0), order=0)
    assert out.has_grid and out.grid.spacing == (2.0, 2.0)
    assert not transfuse.lazy(np.zeros((4, 4))).resample(order=0).has_grid


def test_bounding_grid_then_resample_holds_the_whole_input():
    g = _oblique_grid((8, 9, 10), (0.5, 0.7, 1.1), (3.0, -1.0, 2.0), [0.3, -0.2, 0.1])
    T = Rotate(25.0, axes=(0, 2), center=(4.0, 2.0, 6.0))
    onto = transfuse.bounding_grid(g, T, spacing=0.5, direction=np.eye(3))
    ones = transfuse.lazy(np.ones(g.shape), grid=g)
    out = ones.resample(T, onto=onto, order=1).compute()
    # the input's support (the box of its voxel centres) is all there, up to sampling
    vol_in = np.prod((np.asarray(g.shape) - 1) * g.spacing)
    vol_out = out.sum() * np.prod(onto.spacing)
    assert abs(vol_out - vol_in) / vol_in < 0.02


_slices = st.tuples(
    st.integers(-12, 12) | st.none(),
    st.integers(-12, 12) | st.none(),
    st.sampled_from([1, 2, 3, -1, -2]),
).map(lambda t: slice(*t))


@settings(derandomize=True, max_examples=60, deadline=None)
@given(key=st.tuples(_slices, _slices, _slices), zoom_first=st.booleans())
def test_views_of_any_slices_keep_every_voxel_in_place(key, zoom_first):
    g = _oblique_grid((9, 10, 11), (0.5, 1.0, 2.0), (3.0, -1.0, 2.0), [0.3, -0.2, 0.1])
    img = transfuse.lazy(np.zeros(g.shape), grid=g)
    if zoom_first:
        img = img.zoom(1.5, order=1)
    base = img.grid
    view = img[key]
    if 0 in view.shape:
        return
    # the voxel j of the view is voxel range(n)[key][j] of the image, per axis
    picked = [np.arange(n)[k] for n, k in zip(base.shape, key, strict=True)]
    idx = np.stack(np.meshgrid(*[np.arange(len(p)) for p in picked], indexing="ij"), -1)
    src = np.stack(np.meshgrid(*picked, indexing="ij"), -1).astype(float)
    np.testing.assert_allclose(
        view.grid.to_physical()(idx.reshape(-1, 3).astype(float)),
        base.to_physical()(src.reshape(-1, 3)),
        rtol=0,
        atol=1e-9,
    )
