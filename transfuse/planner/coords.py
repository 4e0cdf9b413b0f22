"""Pull maps in physical form: what an executor evaluates per output chunk.

A map turns output sample indices into input coordinates. The protocol every map follows
(affine maps here; non-linear maps elsewhere):

* ``coordinates(box, *extras)`` — the coordinates of every point of an output box, shape
  ``(ndim_in, *box_shape)``; affine maps use exactly scipy.ndimage's arithmetic order so
  that chunked results match it bit for bit;
* ``ranges(boxes)`` — per box and input axis, a sound ``[min, max]`` of those coordinates
  (exact for affine maps), used by the planner for footprints;
* ``extra_keys(block_index)`` and ``collections`` — dask keys a chunk's task must receive
  as ``extras`` (e.g. a chunk of a coordinate array) and the dask collections they come from;
* ``token`` — everything that changes the coordinates, for dask keys.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

__all__ = ["AffineMap"]


@dataclasses.dataclass(frozen=True, eq=False)
class AffineMap:
    """``c = linear @ o + offset`` (``form="matrix"``) or, per axis,
    ``c = (o + shift) * zoom`` (``form="zoom_shift"``, scipy's zoom/shift arithmetic).

    Examples
    --------
    >>> m = AffineMap.from_matrix(np.array([[2.0, 0, 1], [0, 1, 0], [0, 0, 1]]))
    >>> m.coordinates(((0, 2), (0, 1)))[0]
    array([[1.],
           [3.]])
    """

    linear: np.ndarray
    offset: np.ndarray
    form: str = "matrix"
    zoom: np.ndarray | None = None
    shift: np.ndarray | None = None
    grid: bool = False

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> AffineMap:
        """From a homogeneous ``(n+1, n+1)`` matrix."""
        n = matrix.shape[0] - 1
        return cls(
            np.ascontiguousarray(matrix[:n, :n], dtype=np.float64),
            np.ascontiguousarray(matrix[:n, n], dtype=np.float64),
        )

    @classmethod
    def from_zoom_shift(cls, zoom=None, shift=None, ndim=None, grid=False) -> AffineMap:
        """scipy's separable form ``c = (o + shift) * zoom`` (either part optional); with
        ``grid``, scipy's grid-mode zoom ``c = ((o + shift) + 0.5) * zoom - 0.5``."""
        ndim = len(zoom) if zoom is not None else len(shift)
        z = np.ones(ndim) if zoom is None else np.asarray(zoom, dtype=np.float64)
        s = np.zeros(ndim) if shift is None else np.asarray(shift, dtype=np.float64)
        return cls(
            np.diag(z),
            (s + 0.5) * z - 0.5 if grid else s * z,
            form="zoom_shift",
            zoom=None if zoom is None else z,
            shift=None if shift is None else s,
            grid=bool(grid),
        )

    def restricted(self, axes) -> AffineMap:
        """The map on ``axes`` only (for maps that are the identity on the others); the
        float operations on those axes are unchanged, since the others only add exact
        zeros."""
        axes = list(axes)
        return AffineMap(
            np.ascontiguousarray(self.linear[np.ix_(axes, axes)]),
            np.ascontiguousarray(self.offset[axes]),
        )

    @property
    def ndim_in(self) -> int:
        return self.linear.shape[0]

    @property
    def ndim_out(self) -> int:
        return self.linear.shape[1]

    @property
    def matrix(self) -> np.ndarray:
        """The homogeneous matrix (float64)."""
        n_in, n_out = self.linear.shape
        m = np.zeros((n_in + 1, n_out + 1))
        m[:n_in, :n_out] = self.linear
        m[:n_in, n_out] = self.offset
        m[n_in, n_out] = 1.0
        return m

    @property
    def token(self) -> tuple:
        """Everything that changes the coordinates, for dask keys."""
        parts = [self.form, self.grid, self.linear.tobytes(), self.offset.tobytes()]
        for extra in (self.zoom, self.shift):
            parts.append(None if extra is None else extra.tobytes())
        return tuple(parts)

    @property
    def collections(self) -> tuple:
        """Affine maps read no dask collection besides the input."""
        return ()

    def extra_keys(self, block_index) -> list:
        """Affine maps need no extra inputs."""
        return []

    def _axis_values(self, axis: int, o):
        """scipy's zoom_shift arithmetic for one axis."""
        c = o.astype(np.float64)
        if self.shift is not None:
            c = c + self.shift[axis]
        if self.zoom is not None:
            if self.grid:
                c = (c + 0.5) * self.zoom[axis] - 0.5
            else:
                c = c * self.zoom[axis]
        return c

    def coordinates(self, box) -> np.ndarray:
        """Input coordinates of every point of the output box ``((start, stop), ...)``.

        Returns an array of shape ``(ndim_in, *box_shape)``.
        """
        grids = [np.arange(a, b, dtype=np.float64) for a, b in box]
        shape = tuple(len(g) for g in grids)
        if self.form == "zoom_shift":
            out = np.empty((self.ndim_in, *shape))
            for h, g in enumerate(grids):
                view = [1] * len(shape)
                view[h] = len(g)
                out[h] = self._axis_values(h, g).reshape(view)
            return out
        return self._matrix_values(grids, shape)

    def _matrix_values(self, grids, shape):
        # scipy: c[h] = offset[h] + o[0] * M[h, 0] + o[1] * M[h, 1] + ... (left to right).
        # Adding broadcast terms in that order gives the same float operations on fewer
        # elements; only the last addition is full size.
        out = np.empty((self.ndim_in, *shape))
        n_out = len(grids)
        for h in range(self.ndim_in):
            acc = self.offset[h]
            for l in range(n_out):
                view = [1] * n_out
                view[l] = len(grids[l])
                term = grids[l].reshape(view) * self.linear[h, l]
                if l == n_out - 1:
                    np.add(acc, term, out=out[h])
                else:
                    acc = acc + term
        return out

    def ranges(self, boxes) -> np.ndarray:
        """Per box and input axis, the min and max coordinate (float values exactly as
        :meth:`coordinates` computes them: floating-point rounding is monotone, so the
        extremes sit at corners).

        Parameters
        ----------
        boxes : ndarray of int, shape (nboxes, ndim_out, 2)
            ``[start, stop)`` per output axis.

        Returns
        -------
        ndarray, shape (nboxes, ndim_in, 2)
        """
        boxes = np.asarray(boxes)
        nb = boxes.shape[0]
        lo_hi = np.stack([boxes[..., 0], boxes[..., 1] - 1], axis=-1).astype(np.float64)
        out = np.empty((nb, self.ndim_in, 2))
        if self.form == "zoom_shift":
            for h in range(self.ndim_in):
                v = self._axis_values(h, lo_hi[:, h, :])
                out[:, h, 0] = v.min(axis=1)
                out[:, h, 1] = v.max(axis=1)
            return out
        corners = np.array(list(itertools.product((0, 1), repeat=self.ndim_out)))
        # (nb, ncorners, ndim_out) corner coordinates of each box
        pts = np.take_along_axis(
            lo_hi[:, None, :, :].repeat(len(corners), axis=1),
            corners[None, :, :, None].repeat(nb, axis=0),
            axis=3,
        )[..., 0]
        for h in range(self.ndim_in):
            vals = self.offset[h]
            for l in range(self.ndim_out):
                vals = vals + pts[:, :, l] * self.linear[h, l]
            out[:, h, 0] = vals.min(axis=1)
            out[:, h, 1] = vals.max(axis=1)
        return out
