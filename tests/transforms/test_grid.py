"""Grid: validation, index<->physical maps, ITK axis order."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from transfuse import Grid
from transfuse.io.itk import index_to_physical


def test_maps_are_inverse_and_follow_the_formula():
    d = Rotation.from_euler("zyx", [0.4, -0.2, 0.1]).as_matrix()
    g = Grid((5, 6, 7), spacing=(0.5, 0.1, 0.1), origin=(3.0, -1.0, 2.0), direction=d)
    idx = np.array([[1.0, 2.0, 3.0], [4.5, 0.0, 6.25]])
    phys = g.to_physical()(idx)
    expected = np.array(g.origin) + (d @ (np.array(g.spacing) * idx).T).T
    np.testing.assert_allclose(phys, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g.to_index()(phys), idx, rtol=0, atol=1e-12)


def test_itk_order_is_reversed_at_the_boundary():
    d = Rotation.from_euler("xyz", [0.3, 0.2, 0.1]).as_matrix()
    sp, o = (0.5, 0.7, 2.0), (1.0, 2.0, 3.0)
    g = Grid.from_itk((30, 20, 10), sp, o, d.ravel())
    assert g.shape == (10, 20, 30) and g.spacing == sp[::-1] and g.origin == o[::-1]
    reverse = np.eye(4)
    reverse[:3, :3] = np.eye(3)[::-1]
    np.testing.assert_array_equal(reverse @ index_to_physical(3, sp, o, d), g.physical_matrix())
    back = g.to_itk()
    assert back["size"] == (30, 20, 10) and back["spacing"] == sp
    np.testing.assert_allclose(back["direction"], d.ravel(), atol=0)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"shape": (3, -1)}, "shape"),
        ({"shape": (3, 2.5)}, "shape"),
        ({"shape": ()}, "shape"),
        ({"shape": (3, 3), "spacing": (1.0, 0.0)}, "spacing"),
        ({"shape": (3, 3), "spacing": (1.0,)}, "spacing"),
        ({"shape": (3, 3), "origin": (np.nan, 0)}, "origin"),
        ({"shape": (3, 3), "direction": [[1, 0], [1, 0]]}, "direction"),
        ({"shape": (3, 3), "direction": np.eye(3)}, "direction"),
        ({"shape": (3, 3), "axes": ("y", "y")}, "axes"),
        ({"shape": (3, 3), "units": ("um",)}, "units"),
    ],
)
def test_bad_values_name_the_parameter(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Grid(**kwargs)


def test_immutable_hashable_and_does_not_keep_the_callers_arrays():
    spacing = np.array([1.0, 2.0])
    g = Grid((4, 4), spacing=spacing)
    spacing[0] = 99.0
    assert g.spacing == (1.0, 2.0)
    assert hash(g) == hash(Grid((4, 4), spacing=(1, 2)))
    with pytest.raises(AttributeError):
        g.shape = (5, 5)
    assert g.replace(origin=(1, 1)).origin == (1.0, 1.0)


def test_extent_of_a_flipped_grid():
    g = Grid((3, 5), spacing=(2.0, 1.0), direction=[[-1, 0], [0, 1]])
    assert g.extent == ((-4.0, 0.0), (0.0, 4.0))
    assert not g.is_axis_aligned()


def test_subgrid_points_are_the_selected_points():
    d = Rotation.from_euler("zyx", [0.4, -0.2, 0.1]).as_matrix()
    g = Grid((5, 6, 7), spacing=(0.5, 0.1, 0.2), origin=(3.0, -1.0, 2.0), direction=d)
    start, step = np.array([1.0, 5.0, 0.5]), np.array([2.0, -1.0, 0.25])
    s = g.subgrid(start, step, (2, 6, 20))
    idx = np.array([[0.0, 0.0, 0.0], [1.0, 5.0, 19.0], [0.5, 2.0, 3.0]])
    np.testing.assert_allclose(
        s.to_physical()(idx), g.to_physical()(start + step * idx), rtol=0, atol=1e-12
    )
    assert s.axes == g.axes and s.units == g.units


def test_drop_axes_refuses_an_oblique_plane():
    d = Rotation.from_euler("zyx", [0.4, 0.0, 0.0]).as_matrix()  # mixes axes 0 and 1
    g = Grid((5, 6, 1), direction=d, origin=(1.0, 2.0, 3.0))
    expected = Grid((5, 6), direction=d[:2, :2], origin=(1.0, 2.0), axes=("z", "y"))
    assert g.drop_axes([2]) == expected
    with pytest.raises(ValueError, match="oblique"):
        Grid((1, 6, 7), direction=d).drop_axes([0])
