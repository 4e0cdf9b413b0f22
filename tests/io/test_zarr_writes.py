"""ZarrChunkWriter writes the files zarr writes, byte for byte, and nothing outside its array."""

from __future__ import annotations

import os
import pickle

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from transfuse.io.arrays import read_image, write_image
from transfuse.io.zarr_store import OutsideStoreError
from transfuse.io.zarr_writes import ZarrChunkWriter


def _files(path):
    """Every file of a zarr folder but its metadata, as {relative path: bytes}."""
    out = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, path)
            if rel not in ("zarr.json", ".zarray", ".zattrs", ".zgroup"):
                with open(full, "rb") as f:
                    out[rel] = _without_gzip_time(f.read())
    return out


def _without_gzip_time(data: bytes) -> bytes:
    """``data`` with a gzip member's MTIME field (header bytes 4-7: the second it was
    written, RFC 1952) zeroed, so two writes a second apart compare equal."""
    if data[:3] == b"\x1f\x8b\x08":
        return data[:4] + bytes(4) + data[8:]
    return data


def _both(tmp_path, data, chunks, **create):
    """Store ``data`` (dask, in ``chunks``) with zarr and with the writer into two arrays
    made alike; return the two folders and the writer."""
    paths = []
    for name in ("by-zarr.zarr", "by-writer.zarr"):
        path = str(tmp_path / name)
        zarr.create_array(path, shape=data.shape, chunks=chunks, dtype=data.dtype, **create)
        paths.append(path)
    da.store(data, zarr.open_array(paths[0], mode="r+"), lock=False)
    writer = ZarrChunkWriter(paths[1])
    da.store(data, writer, lock=False)
    return paths, writer


def _sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 100
    return x.astype(dtype)


CASES = [
    ("v3 zstd (zarr's default)", {}, True),
    ("v3 no compressor", {"compressors": None}, True),
    ("v3 gzip", {"compressors": zarr.codecs.GzipCodec(level=5)}, True),
    ("v3 zstd with checksum", {"compressors": zarr.codecs.ZstdCodec(level=3, checksum=True)}, True),
    ("v3 blosc (left to zarr)", {"compressors": zarr.codecs.BloscCodec()}, False),
    ("v3 fill value 7", {"fill_value": 7}, True),
    ("v2 zstd", {"zarr_format": 2}, True),
    ("v2 blosc", {"zarr_format": 2, "compressors": __import__("numcodecs").Blosc()}, True),
    ("v2 no compressor", {"zarr_format": 2, "compressors": None}, True),
    (
        "v2 nested keys",
        {"zarr_format": 2, "chunk_key_encoding": {"name": "v2", "separator": "/"}},
        True,
    ),
    ("v3 sharded (left to zarr)", {"shards": (8, 8)}, False),
]


@pytest.mark.parametrize(("label", "create", "direct"), CASES, ids=[c[0] for c in CASES])
def test_the_files_are_zarrs_byte_for_byte(tmp_path, label, create, direct):
    x = _sample((13, 11), "float32")
    x[:4, :4] = create.get("fill_value", 0)  # a chunk of the fill value only: not stored
    data = da.from_array(x, chunks=create.get("shards", 4))  # whole shards: no race
    paths, writer = _both(tmp_path, data, (4, 4), **create)
    assert writer.direct is direct
    by_zarr, by_writer = _files(paths[0]), _files(paths[1])
    assert by_writer == by_zarr
    if "shards" not in create:
        assert len(by_zarr) == 11  # 12 chunks, one of them only the fill value
    np.testing.assert_array_equal(zarr.open_array(paths[1])[:], x)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int64", "float64", "complex64", "bool"])
def test_every_numeric_dtype(tmp_path, dtype):
    x = _sample((9, 10), dtype, seed=1)
    paths, writer = _both(tmp_path, da.from_array(x, chunks=(4, 3)), (4, 3))
    assert writer.direct
    assert _files(paths[1]) == _files(paths[0])
    np.testing.assert_array_equal(zarr.open_array(paths[1])[:], x)


def test_empty_chunks_as_zarr_judges_them(tmp_path):
    """NaN chunks under a NaN fill value are not stored; -0.0 under a 0 fill value is."""
    x = np.ones((8, 8), np.float32)
    x[:4, :4] = np.nan
    x[4:, 4:] = -0.0
    for fill, stored in ((np.nan, 3), (0.0, 4)):
        folder = tmp_path / str(fill)
        folder.mkdir()
        paths, _ = _both(folder, da.from_array(x, chunks=4), (4, 4), fill_value=fill)
        assert _files(paths[1]) == _files(paths[0])
        assert len(_files(paths[1])) == stored
    with zarr.config.set({"array.write_empty_chunks": True}):
        folder = tmp_path / "kept"
        folder.mkdir()
        paths, writer = _both(folder, da.from_array(x, chunks=4), (4, 4), fill_value=np.nan)
    assert writer.write_empty_chunks
    assert _files(paths[1]) == _files(paths[0])
    assert len(_files(paths[1])) == 4


def test_a_chunk_rewritten_with_the_fill_value_is_removed(tmp_path):
    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=(8,), chunks=(4,), dtype="f8")
    writer = ZarrChunkWriter(path)
    writer[0:4] = np.arange(1.0, 5.0)
    assert set(_files(path)) == {os.path.join("c", "0")}
    writer[0:4] = np.zeros(4)
    assert _files(path) == {}
    np.testing.assert_array_equal(zarr.open_array(path)[:], np.zeros(8))


def test_boxes_that_are_not_whole_chunks_go_to_zarr(tmp_path):
    """A part of a chunk, a step, another dtype: zarr merges them as it always does."""
    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=(10,), chunks=(4,), dtype="f8")
    writer = ZarrChunkWriter(path)
    writer[0:4] = np.arange(4.0)
    writer[5:7] = np.array([50.0, 60.0])
    writer[8:10] = np.array([8, 9], dtype=np.int32)
    writer[slice(0, 4, 2)] = np.array([-1.0, -2.0])
    got = zarr.open_array(path)[:]
    np.testing.assert_array_equal(got, [-1, 1, -2, 3, 0, 50, 60, 0, 8, 9])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    chunk=st.lists(st.integers(1, 5), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_any_shape_and_chunking(tmp_path_factory, shape, chunk, seed):
    chunks = tuple(chunk[: len(shape)])
    x = _sample(tuple(shape), "float32", seed)
    x[x < -50] = 0  # some chunks may be all fill
    folder = tmp_path_factory.mktemp("case")
    paths, writer = _both(folder, da.from_array(x, chunks=chunks), chunks)
    assert writer.direct
    assert _files(paths[1]) == _files(paths[0])
    np.testing.assert_array_equal(zarr.open_array(paths[1])[:], x)


def test_no_file_is_written_through_a_link_out_of_the_array(tmp_path):
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=(8, 8), chunks=(4, 4), dtype="f4")
    outside = tmp_path / "outside"
    outside.mkdir()
    (path / "c").mkdir()
    os.symlink(outside, path / "c" / "1")
    writer = ZarrChunkWriter(path)
    writer[0:4, 0:4] = np.ones((4, 4), np.float32)  # c/0/0: inside
    with pytest.raises(OutsideStoreError, match="outside the store"):
        writer[4:8, 0:4] = np.ones((4, 4), np.float32)  # c/1/0: through the link
    with pytest.raises(OutsideStoreError, match="outside the store"):
        writer[4:6, 0:4] = np.ones((2, 4), np.float32)  # part of a chunk: zarr's path
    assert list(outside.iterdir()) == []


def test_picklable_and_tokenized_by_its_array(tmp_path):
    from dask.base import tokenize

    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=(8,), chunks=(4,), dtype="f8")
    writer = ZarrChunkWriter(path)
    copy = pickle.loads(pickle.dumps(writer))
    copy[4:8] = np.arange(4.0)
    np.testing.assert_array_equal(zarr.open_array(path)[4:], np.arange(4.0))
    assert tokenize(copy) == tokenize(ZarrChunkWriter(path))


def test_write_image_matches_what_zarr_stored_before(tmp_path):
    """write_image's zarr output (now through the writer) against dask's to_zarr."""
    x = _sample((30, 20, 10), "float32", seed=3)
    x[:8] = 0
    data = da.from_array(x, chunks=(8, 7, 10))
    write_image(data, tmp_path / "mine.zarr")
    da.to_zarr(data, str(tmp_path / "dask.zarr"))
    assert _files(tmp_path / "mine.zarr") == _files(tmp_path / "dask.zarr")
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "mine.zarr")), x)
