"""Output grids: grid_like and bounding_grid (exact for affine maps, sound otherwise)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import transfuse
from transfuse import Affine, DisplacementField, Grid, Rotate, Scale, Translate


def _inside(grid, points, tol=1e-9):
    idx = grid.to_index()(points)
    return np.all((idx >= -tol) & (idx <= np.asarray(grid.shape) - 1 + tol), axis=1)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-np.pi, np.pi)] * 3),
    scale=st.tuples(*[st.floats(0.5, 2.0)] * 3),
    shift=st.tuples(*[st.floats(-20, 20)] * 3),
    axis_aligned=st.booleans(),
)
def test_affine_bounding_grid_holds_every_corner_and_is_tight(angles, scale, shift, axis_aligned):
    g = Grid(
        (9, 10, 12),
        spacing=(0.5, 0.7, 1.1),
        origin=(3.0, -1.0, 2.0),
        direction=Rotation.from_euler("zyx", [0.3, -0.2, 0.1]).as_matrix(),
    )
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", angles).as_matrix() @ np.diag(scale)
    m[:3, 3] = shift
    T = Affine(m)
    direction = np.eye(3) if axis_aligned else None
    out = transfuse.bounding_grid(g, T, spacing=0.8, direction=direction)
    # every input corner, pushed forward (the inverse of the pull map), is inside
    pushed = T.inverse()(g.corners())
    assert _inside(out, pushed).all()
    # tight: the lowest corner sits on the origin, the highest within one voxel of the end
    idx = out.to_index()(pushed)
    np.testing.assert_allclose(idx.min(axis=0), 0.0, atol=1e-9)
    assert np.all(idx.max(axis=0) > np.asarray(out.shape) - 2)


def test_rotation_by_90_swaps_the_shape():
    g = Grid((11, 41), spacing=(1.0, 0.5))  # physical extents 10 x 20
    out = transfuse.bounding_grid(g, Rotate(90.0, axes=(0, 1)), spacing=(1.0, 0.5))
    assert out.shape == (21, 21)  # extents 20 x 10 at the same spacing


def test_nonlinear_bounding_grid_is_sound():
    """Resample ones onto a far bigger grid of the same lattice: every nonzero voxel lies
    inside the bounding grid."""
    g = Grid((16, 18), spacing=(1.0, 1.0), origin=(0.0, 0.0))
    field = np.random.default_rng(0).normal(scale=2.0, size=(2, 5, 5))
    T = Rotate(20.0, axes=(0, 1), center=(8.0, 9.0)) @ DisplacementField(field, spacing=5.0)
    bound = transfuse.bounding_grid(g, T)
    big = bound.subgrid(start=(-15, -15), step=1, shape=(bound.shape[0] + 30, bound.shape[1] + 30))
    ones = transfuse.lazy(np.ones(g.shape), grid=g)
    hit = ones.resample(T, onto=big, order=1).compute() > 0
    inside = np.zeros_like(hit)
    inside[15 : 15 + bound.shape[0], 15 : 15 + bound.shape[1]] = True
    assert hit.any() and not (hit & ~inside).any()
    # and not absurdly large: the slack on each side is within the field's largest
    # displacement (the bounds use the spline coefficients' min/max)
    rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
    slack = [rows[0] - 15, cols[0] - 15]
    slack += [14 + bound.shape[0] - rows[-1], 14 + bound.shape[1] - cols[-1]]
    assert max(slack) <= 2 * np.abs(field).max() + 2, slack


def test_grid_like_a_lazy_image():
    g = Grid((8, 9), spacing=(0.5, 2.0), origin=(1.0, 1.0))
    img = transfuse.lazy(np.zeros(g.shape), grid=g)
    assert transfuse.grid_like(img) == g
    finer = transfuse.grid_like(img, spacing=0.25)
    assert finer.extent[0] == g.extent[0] and finer.shape == (15, 65)


@pytest.mark.parametrize(
    "args, error, word",
    [
        (((4, 4), Translate((1.0, 1.0))), TypeError, "reference"),
        ((Grid((4, 4)), np.eye(3)), TypeError, "transform"),
        ((Grid((4, 4)), Scale((0.0, 1.0))), ValueError, "singular"),
        ((Grid((4, 4)), Translate((1.0, 1.0, 1.0))), ValueError, "ndim"),
    ],
)
def test_bad_arguments_name_them(args, error, word):
    with pytest.raises(error, match=word):
        transfuse.bounding_grid(*args)
