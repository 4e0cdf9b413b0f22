"""A zarr store that reads nothing outside its own folder.

zarr's :class:`~zarr.storage.LocalStore` follows symbolic links, so a chunk file (or a
chunk folder) inside a store could make a reader open any file the process can read. The
transfuse readers open stores through :func:`open_confined_array`, whose store resolves every
key's path and refuses one that leaves the store's real folder.
"""

from __future__ import annotations

import os

import zarr
from zarr.storage import LocalStore

__all__ = ["ConfinedLocalStore", "OutsideStoreError", "check_inside", "open_confined_array"]


class OutsideStoreError(PermissionError):
    """A key of a store resolved to a path outside the store's folder."""


class ConfinedLocalStore(LocalStore):
    """A :class:`~zarr.storage.LocalStore` confined to its root folder: a key whose path
    resolves outside it is neither read nor written.

    Examples
    --------
    >>> import numpy as np, tempfile, zarr
    >>> folder = tempfile.mkdtemp()
    >>> zarr.create_array(folder + "/a.zarr", data=np.arange(4.0)).shape
    (4,)
    >>> open_confined_array(folder + "/a.zarr")[:].tolist()
    [0.0, 1.0, 2.0, 3.0]
    """

    def _check(self, key: str) -> None:
        check_inside(self.root, os.path.join(os.path.realpath(self.root), key), key)

    async def get(self, key, prototype=None, byte_range=None):
        self._check(key)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check(key)
        return await super().get_partial_values(prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        self._check(key)
        return await super().exists(key)

    async def set(self, key: str, value) -> None:
        self._check(key)
        return await super().set(key, value)

    async def delete(self, key: str) -> None:
        self._check(key)
        return await super().delete(key)


def check_inside(root, path, key=None) -> None:
    """Raise :class:`OutsideStoreError` when ``path`` (a file of the store at ``root``)
    resolves to a place outside ``root``'s real folder."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        key = os.path.relpath(path, real_root) if key is None else key
        raise OutsideStoreError(
            f"zarr store {str(root)!r}: key {key!r} resolves to {real!r}, outside "
            "the store (a symbolic link?); transfuse reads and writes only inside the "
            "folders it is given"
        )


def open_confined_array(path) -> zarr.Array:
    """Open the zarr array at ``path`` read-only through a :class:`ConfinedLocalStore`."""
    return zarr.open_array(ConfinedLocalStore(str(path), read_only=True), mode="r")
