"""zarr inputs are read only inside their own folder (symbolic links are not followed out)."""

import os

import numpy as np
import pytest
import zarr

import transfuse as tf
from transfuse.io.arrays import read_image
from transfuse.io.zarr_store import OutsideStoreError, open_confined_array


def _store_with_an_outside_chunk(tmp_path):
    data = np.arange(16.0).reshape(4, 4)
    zarr.create_array(str(tmp_path / "a.zarr"), data=data, chunks=(2, 2))
    secret = tmp_path / "outside"
    secret.mkdir()
    zarr.create_array(str(secret / "b.zarr"), data=data + 100, chunks=(2, 2))
    chunk = tmp_path / "a.zarr" / "c" / "0" / "0"
    assert chunk.is_file()
    chunk.unlink()
    os.symlink(secret / "b.zarr" / "c" / "0" / "0", chunk)
    return tmp_path / "a.zarr", data


def test_a_plain_store_reads_as_zarr_does(tmp_path):
    data = np.random.default_rng(0).random((5, 6))
    zarr.create_array(str(tmp_path / "x.zarr"), data=data, chunks=(2, 3))
    np.testing.assert_array_equal(open_confined_array(tmp_path / "x.zarr")[:], data)


def test_a_chunk_linked_outside_the_store_is_refused(tmp_path):
    path, data = _store_with_an_outside_chunk(tmp_path)
    assert zarr.open_array(str(path), mode="r")[0, 0] == 100  # plain zarr follows the link
    z = open_confined_array(path)
    np.testing.assert_array_equal(z[2:, 2:], data[2:, 2:])  # other chunks read
    with pytest.raises(OutsideStoreError, match="outside the store"):
        z[0, 0]


def test_the_image_reader_refuses_it_too(tmp_path):
    path, _ = _store_with_an_outside_chunk(tmp_path)
    arr = read_image(path)
    with pytest.raises(OutsideStoreError):
        tf.lazy(arr).shift((0.5, 0), order=1).compute()
