"""Physical maps for non-affine chains (see :mod:`transfuse.planner.coords` for the protocol).

:class:`ArrayCoordinateMap` — coordinates held in a (dask) array, one chunk per output chunk;
footprints come from a per-chunk min/max reduction run once at plan time.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from ..transforms import Transform
from ..transforms.nonlinear import CoordinateMap, array_token

__all__ = ["ArrayCoordinateMap", "compile_map"]


def _chunk_spec(chunks, n):
    return (chunks,) * n if np.ndim(chunks) == 0 else tuple(chunks)


def _block_min_max(block):
    flat = block.reshape(block.shape[0], -1)
    return np.stack([flat.min(axis=1), flat.max(axis=1)], axis=-1)


class ArrayCoordinateMap:
    """Coordinates given for every output point by an array of shape
    ``(ndim_in, *output_shape)``; the output is chunked like ``coords[0]``.

    Parameters
    ----------
    coords : numpy or dask array
    chunks : optional
        Output chunks for a numpy ``coords`` (a dask array keeps its own).
    """

    form = "coordinates"

    def __init__(self, coords, chunks=None):
        if not isinstance(coords, da.Array):
            spec = "auto" if chunks is None else (-1, *_chunk_spec(chunks, coords.ndim - 1))
            coords = da.from_array(np.asarray(coords), chunks=spec)
        if len(coords.chunks[0]) != 1:
            coords = coords.rechunk({0: -1})
        self.array = coords.astype(np.float64) if coords.dtype != np.float64 else coords
        self.ndim_in = int(coords.shape[0])
        self.output_shape = tuple(int(n) for n in coords.shape[1:])
        self.output_chunks = tuple(coords.chunks[1:])
        self._bounds = [np.concatenate([[0], np.cumsum(c)]) for c in self.output_chunks]
        self._ranges = None

    @property
    def token(self) -> tuple:
        return ("coordinates", array_token(self.array))

    @property
    def collections(self) -> tuple:
        return (self.array,)

    @property
    def matrix(self):
        return None

    def extra_keys(self, block_index) -> list:
        return [(self.array.name, 0, *block_index)]

    def coordinates(self, box, block) -> np.ndarray:
        """The coordinate chunk itself (copied: the kernel folds coordinates in place)."""
        return np.array(block, dtype=np.float64, copy=True)

    def block_ranges(self) -> np.ndarray:
        """Per output block, per input axis, ``[min, max]`` (computed once, then cached)."""
        if self._ranges is None:
            blocks = self.array.to_delayed()[0]
            flat = [dask.delayed(_block_min_max)(b) for b in blocks.reshape(-1)]
            values = dask.compute(*flat)
            arr = np.stack(values).reshape(*blocks.shape, self.ndim_in, 2)
            if not np.all(np.isfinite(arr)):
                raise ValueError("coordinates contain NaN or infinite values")
            self._ranges = arr
        return self._ranges

    def ranges(self, boxes) -> np.ndarray:
        table = self.block_ranges()
        out = np.empty((len(boxes), self.ndim_in, 2))
        for b, box in enumerate(np.asarray(boxes)):
            idx = tuple(
                int(np.searchsorted(bounds, start, side="right") - 1)
                for bounds, start in zip(self._bounds, box[:, 0], strict=True)
            )
            out[b] = table[idx]
        return out


def compile_map(transform: Transform, ndim: int, output_chunks=None):
    """The physical map of a non-affine (fused) transform.

    Supported here: a lone :class:`~transfuse.transforms.nonlinear.CoordinateMap`.
    """
    parts = transform.parts
    if len(parts) == 1 and isinstance(parts[0], CoordinateMap):
        if parts[0].ndim != ndim:
            raise ValueError(
                f"CoordinateMap has {parts[0].ndim} coordinate axes, the image has ndim={ndim}"
            )
        coords = parts[0].coords
        if output_chunks is not None and isinstance(coords, da.Array):
            coords = coords.rechunk((-1, *output_chunks))
        return ArrayCoordinateMap(coords, output_chunks)
    names = " @ ".join(type(p).__name__ for p in parts)
    raise NotImplementedError(f"cannot compile the chain {names} into one map yet")
