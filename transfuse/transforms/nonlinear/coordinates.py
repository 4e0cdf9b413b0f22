"""Absolute coordinates for every output point: :class:`CoordinateMap`."""

from __future__ import annotations

import dataclasses

from .base import NonlinearTransform, array_token, freeze_array


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CoordinateMap(NonlinearTransform):
    """Absolute input coordinates for every output point, as
    :func:`scipy.ndimage.map_coordinates` takes them: ``coords[:, i, j, ...]`` is where output
    point ``(i, j, ...)`` reads the input.

    It defines the output grid, so in a chain it can only be the rightmost (innermost)
    transform; transforms to its left are applied to its coordinates.

    Parameters
    ----------
    coords : array_like or dask.array.Array, shape (ndim_in, *output_shape)

    Examples
    --------
    >>> import numpy as np
    >>> m = CoordinateMap(np.zeros((2, 3, 4)))
    >>> m.ndim, m.output_shape
    (2, (3, 4))
    """

    coords: object = None

    def __post_init__(self):
        object.__setattr__(self, "coords", freeze_array(self.coords, "coords", min_ndim=2))

    @property
    def ndim(self):
        return int(self.coords.shape[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.coords.shape[1:])

    def params(self):
        return {"coords": array_token(self.coords)}

    def __repr__(self):
        return f"CoordinateMap(coords shape={tuple(self.coords.shape)})"
