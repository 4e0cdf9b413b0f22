"""xarray DataArrays in and out: coordinates as grids, attributes kept, batch axes."""

import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse
from transfuse import Grid, Rotate, Translate

xr = pytest.importorskip("xarray")


def _volume(seed=0):
    x = np.random.default_rng(seed).random((6, 7, 8))
    return xr.DataArray(
        x,
        dims=("z", "y", "x"),
        coords={
            "z": xr.Variable(("z",), 5.0 + 2.0 * np.arange(6), attrs={"units": "micrometer"}),
            "y": xr.Variable(("y",), -1.0 + 0.5 * np.arange(7), attrs={"units": "micrometer"}),
            "x": xr.Variable(("x",), 0.25 * np.arange(8), attrs={"units": "micrometer"}),
        },
        name="intensity",
        attrs={"modality": "light-sheet"},
    )


def test_grid_from_coordinates():
    img = transfuse.lazy(_volume())
    assert img.has_grid
    g = img.grid
    assert g.shape == (6, 7, 8)
    assert g.spacing == (2.0, 0.5, 0.25) and g.origin == (5.0, -1.0, 0.0)
    assert g.axes == ("z", "y", "x") and g.units == ("micrometer",) * 3


def test_round_trip_keeps_coords_attrs_and_name():
    a = _volume()
    out = transfuse.lazy(a, chunks=4).resample(order=1).compute()
    assert isinstance(out, xr.DataArray)
    xr.testing.assert_identical(out, a)  # identity resample: values, coords, attrs, name


def test_result_coordinates_are_the_output_grid():
    a = _volume()
    onto = Grid((4, 5, 6), spacing=(1.0, 0.7, 0.3), origin=(6.0, -0.5, 0.1), units="micrometer")
    out = transfuse.lazy(a).resample(Translate((0.5, 0.0, 0.0)), onto=onto, order=1).compute()
    assert out.dims == ("z", "y", "x") and out.name == "intensity"
    assert out.attrs == a.attrs
    for k, dim in enumerate("zyx"):
        expected = onto.origin[k] + onto.spacing[k] * np.arange(onto.shape[k])
        np.testing.assert_allclose(out.coords[dim].values, expected, rtol=0, atol=1e-12)
        assert out.coords[dim].attrs["units"] == "micrometer"
    # values: pull out physical points through T, read the input at them
    pts = np.stack(np.meshgrid(*out.coords.values(), indexing="ij"), -1).reshape(-1, 3)
    pts = pts + [0.5, 0.0, 0.0]
    idx = (pts - [5.0, -1.0, 0.0]) / [2.0, 0.5, 0.25]
    expected = ndi.map_coordinates(a.values, idx.T, order=1).reshape(onto.shape)
    np.testing.assert_allclose(out.values, expected, rtol=0, atol=1e-12)


def test_views_and_zoom_give_matching_coordinates():
    a = _volume()
    img = transfuse.lazy(a)
    v = img[1:5, ::2, 3].compute()
    xr.testing.assert_identical(v, a[1:5, ::2, 3].drop_vars("x"))
    z = img.zoom(2, order=1).to_xarray()
    np.testing.assert_allclose(z.coords["x"].values[[0, -1]], a.coords["x"].values[[0, -1]])


def test_decreasing_coordinates_flip_the_axis():
    a = _volume().isel(y=slice(None, None, -1))
    g = transfuse.lazy(a).grid
    assert g.direction[1][1] == -1.0 and g.origin[1] == a.coords["y"].values[0]
    out = transfuse.lazy(a).resample(order=1).compute()
    xr.testing.assert_identical(out, a)


def test_irregular_coordinate_names_the_dim():
    a = _volume().assign_coords(y=[0.0, 1.0, 2.0, 3.5, 4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="'y'.*irregular"):
        transfuse.lazy(a)


def test_dims_without_coordinates_are_index_axes():
    a = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"), coords={"x": [1.0, 2.0, 3.0, 4.0]})
    g = transfuse.lazy(a).grid
    assert g.spacing == (1.0, 1.0) and g.origin == (0.0, 1.0)


def test_plain_arrays_still_give_numpy():
    out = transfuse.lazy(np.ones((4, 4))).shift(1, order=0).compute()
    assert type(out) is np.ndarray


def test_channel_axis_is_a_batch_axis():
    x = np.random.default_rng(1).random((3, 9, 10))
    a = xr.DataArray(
        x,
        dims=("c", "y", "x"),
        coords={"c": ["r", "g", "b"], "y": 0.5 * np.arange(9), "x": 0.5 * np.arange(10)},
    )
    img = transfuse.lazy(a, chunks=(1, 5, 5))
    T = Rotate(20.0, axes=(0, 1), center=(2.0, 2.0))  # a 2-D transform of the spatial axes
    onto = Grid((7, 8), spacing=0.6, origin=(0.3, 0.2))
    out = img.resample(T, onto=onto, order=3)
    p = transfuse.plan(out).passes[0]
    assert p.batch_axes == (0,)  # channels are filtered and interpolated one by one
    res = out.compute()
    assert res.dims == ("c", "y", "x") and list(res.coords["c"].values) == ["r", "g", "b"]
    for c in range(3):
        single = transfuse.lazy(x[c], grid=Grid((9, 10), spacing=0.5))
        expected = single.resample(T, onto=onto, order=3).compute()
        np.testing.assert_allclose(res.values[c], expected, rtol=0, atol=1e-12)


def test_non_numeric_spatial_coordinate_names_the_dim():
    a = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={"y": ["a", "b"]})
    with pytest.raises(ValueError, match="'y'"):
        transfuse.lazy(a)


def test_views_select_batch_coordinates():
    a = xr.DataArray(
        np.random.default_rng(2).random((4, 5, 6)),
        dims=("c", "y", "x"),
        coords={"c": ["a", "b", "c", "d"], "y": np.arange(5.0), "x": np.arange(6.0)},
    )
    img = transfuse.lazy(a).shift((0, 1, 0), order=1)
    sub = img[1:4:2].compute()
    assert list(sub.coords["c"].values) == ["b", "d"]
    np.testing.assert_array_equal(sub.values, img.compute().values[1:4:2])
    assert list(transfuse.lazy(a)[::-1].compute().coords["c"].values) == ["d", "c", "b", "a"]


def test_several_dataarrays_onto_one_grid():
    a = _volume()
    seg = (a > 0.5).astype(np.int16).rename("labels")
    onto = Grid((5, 6, 7), spacing=(1.5, 0.6, 0.3), origin=(6.0, -0.5, 0.2), units="micrometer")
    out = transfuse.resample([a, seg], Translate((0.2, 0.1, 0.0)), onto=onto, labels=[1])
    img, lab = transfuse.compute_all(out)
    assert isinstance(img, xr.DataArray) and isinstance(lab, xr.DataArray)
    assert lab.name == "labels" and lab.dtype == np.int16
    assert set(np.unique(lab.values)) <= {0, 1}
    xr.testing.assert_identical(img.coords.to_dataset(), lab.coords.to_dataset())
    np.testing.assert_allclose(img.coords["y"].values, -0.5 + 0.6 * np.arange(6))


def test_onto_a_dataarray_uses_its_coordinates():
    a = _volume()
    ref = a.isel(z=slice(1, 4), y=slice(None, None, 2))
    out = transfuse.lazy(a).resample(onto=ref, order=1).compute()
    xr.testing.assert_allclose(out, ref)
    assert transfuse.bounding_grid(ref, Translate((0.0, 0.0, 0.0))).shape == ref.shape
