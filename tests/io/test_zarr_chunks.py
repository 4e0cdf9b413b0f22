"""transfuse's zarr chunk reader returns what zarr returns, bit for bit, for every array it
reads itself and every one it leaves to zarr."""

import itertools
import os
import pickle

import dask
import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec

import transfuse as tf
from transfuse.io import zarr_chunks
from transfuse.io.arrays import read_image
from transfuse.io.zarr_chunks import CACHE_KEY, ZarrChunks, clear_cache, zarr_dask_array
from transfuse.io.zarr_store import OutsideStoreError

V3_COMPRESSORS = {
    "zstd": [ZstdCodec(level=1)],
    "zstd-checksum": [ZstdCodec(level=3, checksum=True)],
    "blosc": [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
    "gzip": [GzipCodec(level=2)],
    "none": [],
}


def _v3(path, data, chunks, compressors, **kwargs):
    return zarr.create_array(str(path), data=data, chunks=chunks, compressors=compressors, **kwargs)


def _boxes(shape):
    """Boxes a task might ask for: everything, one chunk, a box over chunk borders, a
    single sample, an empty box."""
    yield tuple(slice(None) for _ in shape)
    yield tuple(slice(0, min(2, n)) for n in shape)
    yield tuple(slice(n // 3, max(n // 3 + 1, n - 1)) for n in shape)
    yield tuple(slice(n - 1, n) for n in shape)
    yield tuple(slice(1, 1) for _ in shape)


@pytest.mark.parametrize("codec", sorted(V3_COMPRESSORS))
@pytest.mark.parametrize("dtype", ["float32", "float64", "uint16", "int8", "bool", "complex64"])
def test_v3_arrays_read_as_zarr_reads_them(tmp_path, codec, dtype):
    rng = np.random.default_rng(7)
    data = (rng.random((7, 10, 5)) * 100).astype(dtype)
    z = _v3(tmp_path / "a.zarr", data, (3, 4, 5), V3_COMPRESSORS[codec])
    reader = ZarrChunks(tmp_path / "a.zarr")
    assert reader.direct, codec
    for box in _boxes(data.shape):
        got = reader[box]
        assert got.dtype == z.dtype
        np.testing.assert_array_equal(got, z[box])


@pytest.mark.parametrize("compressor", [numcodecs.Zstd(2), numcodecs.Blosc(), None])
@pytest.mark.parametrize("separator", [".", "/"])
def test_v2_arrays_read_as_zarr_reads_them(tmp_path, compressor, separator):
    data = np.random.default_rng(3).random((9, 6)).astype("float32")
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        data=data,
        chunks=(4, 4),
        zarr_format=2,
        compressors=compressor,
        chunk_key_encoding={"name": "v2", "separator": separator},
    )
    reader = ZarrChunks(tmp_path / "a.zarr")
    assert reader.direct
    for box in _boxes(data.shape):
        np.testing.assert_array_equal(reader[box], z[box])


@pytest.mark.parametrize("fill", [0.0, 7.5, np.nan])
def test_chunks_never_written_read_as_the_fill_value(tmp_path, fill):
    z = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=(6, 6), chunks=(3, 3), dtype="f4", fill_value=fill
    )
    z[:3, :3] = np.arange(9.0).reshape(3, 3)  # one chunk of four written
    assert len(os.listdir(tmp_path / "a.zarr" / "c")) == 1
    reader = ZarrChunks(tmp_path / "a.zarr")
    np.testing.assert_array_equal(reader[:, :], z[:, :])
    assert np.isnan(reader[5:, 5:]).all() == np.isnan(fill)


@pytest.mark.filterwarnings("ignore:The data type")
@pytest.mark.parametrize(
    "kind",
    ["sharded", "transposed", "checksummed", "big-endian", "0-d", "strings"],
)
def test_arrays_it_does_not_decode_are_read_by_zarr(tmp_path, kind):
    data = np.arange(24.0, dtype="f4").reshape(4, 6)
    path = tmp_path / "a.zarr"
    if kind == "sharded":
        z = zarr.create_array(str(path), data=data, chunks=(2, 3), shards=(4, 6))
    elif kind == "transposed":
        z = _v3(path, data, (2, 3), None, filters=[TransposeCodec(order=(1, 0))])
    elif kind == "checksummed":
        z = _v3(path, data, (2, 3), [Crc32cCodec()])
    elif kind == "big-endian":
        z = zarr.create_array(
            str(path), data=data, chunks=(2, 3), serializer=BytesCodec(endian="big")
        )
    elif kind == "0-d":
        z = zarr.create_array(str(path), data=np.float32(3.5))
    else:
        z = zarr.create_array(str(path), data=np.array(["ab", "c", "def"]), chunks=(2,))
    reader = ZarrChunks(path)
    assert not reader.direct
    box = tuple(slice(None) for _ in z.shape)
    np.testing.assert_array_equal(reader[box], z[box])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    data=st.data(),
)
def test_any_box_of_any_chunking_reads_as_zarr(tmp_path_factory, shape, data):
    shape = tuple(shape)
    chunks = tuple(data.draw(st.integers(1, n + 2)) for n in shape)
    box = tuple(
        slice(a, a + data.draw(st.integers(0, n - a)))
        for n, a in ((n, data.draw(st.integers(0, n - 1))) for n in shape)
    )
    path = tmp_path_factory.mktemp("z") / "a.zarr"
    values = np.random.default_rng(len(shape)).random(shape).astype("f8")
    z = _v3(path, values, chunks, V3_COMPRESSORS["zstd"])
    np.testing.assert_array_equal(ZarrChunks(path)[box], z[box])


def test_the_dask_array_reads_every_chunking_and_pickles(tmp_path):
    data = np.random.default_rng(1).random((20, 30)).astype("f4")
    _v3(tmp_path / "a.zarr", data, (8, 7), V3_COMPRESSORS["blosc"])
    for chunks in (None, 5, (20, 30), (3, 11)):
        x = zarr_dask_array(tmp_path / "a.zarr", chunks=chunks)
        np.testing.assert_array_equal(x.compute(scheduler="threads"), data)
    reader = pickle.loads(pickle.dumps(ZarrChunks(tmp_path / "a.zarr")))
    np.testing.assert_array_equal(reader[2:17, 5:9], data[2:17, 5:9])


def test_the_name_is_the_same_for_the_same_array_and_changes_with_it(tmp_path):
    data = np.zeros((4, 4), "f4")
    _v3(tmp_path / "a.zarr", data, (2, 2), [])
    a, b = zarr_dask_array(tmp_path / "a.zarr"), zarr_dask_array(tmp_path / "a.zarr")
    assert a.name == b.name
    assert zarr_dask_array(tmp_path / "a.zarr", chunks=4).name != a.name
    _v3(tmp_path / "a.zarr", np.zeros((4, 5), "f4"), (2, 2), [], overwrite=True)
    assert zarr_dask_array(tmp_path / "a.zarr").name != a.name


def test_a_chunk_file_linked_outside_the_store_is_refused(tmp_path):
    data = np.arange(16.0).reshape(4, 4)
    _v3(tmp_path / "a.zarr", data, (2, 2), V3_COMPRESSORS["zstd"])
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "chunk").write_bytes((tmp_path / "a.zarr" / "c" / "0" / "0").read_bytes())
    chunk = tmp_path / "a.zarr" / "c" / "0" / "0"
    chunk.unlink()
    os.symlink(secret / "chunk", chunk)
    reader = ZarrChunks(tmp_path / "a.zarr")
    assert reader.direct
    np.testing.assert_array_equal(reader[2:, 2:], data[2:, 2:])
    with pytest.raises(OutsideStoreError, match="outside the store"):
        reader[0:1, 0:1]


def test_a_resample_of_a_zarr_input_matches_the_in_memory_one(tmp_path):
    data = np.random.default_rng(5).random((24, 20, 16)).astype("f4")
    _v3(tmp_path / "a.zarr", data, (8, 8, 8), V3_COMPRESSORS["zstd"])
    t = tf.Rotate(20, axes=(1, 2)) @ tf.Scale(0.9)
    for reads in ("shared", "direct"):
        with dask.config.set({"transfuse.zarr_reads": reads}):
            got = tf.lazy(read_image(tmp_path / "a.zarr")).transform(t, order=1).compute()
        want = tf.lazy(data, chunks=8).transform(t, order=1).compute()
        np.testing.assert_array_equal(got, want)


def _decodes(monkeypatch):
    calls = []
    original = ZarrChunks._read_into

    def counted(self, *args):
        calls.append(args[-1])
        return original(self, *args)

    monkeypatch.setattr(ZarrChunks, "_read_into", counted)
    return calls


def _age(folder, seconds=60):
    """Date every chunk file of ``folder`` ``seconds`` back (a file written in the last
    second is not cached)."""
    then = os.stat(folder).st_mtime - seconds
    for root, _, files in os.walk(folder):
        for name in files:
            os.utime(os.path.join(root, name), (then, then))


def test_a_cached_chunk_is_decoded_once_and_equals_zarr(tmp_path, monkeypatch):
    data = np.random.default_rng(2).random((10, 12)).astype("f4")
    z = _v3(tmp_path / "a.zarr", data, (4, 5), V3_COMPRESSORS["zstd"])
    _age(tmp_path / "a.zarr")
    reader = ZarrChunks(tmp_path / "a.zarr")
    calls = _decodes(monkeypatch)
    clear_cache()
    for _ in range(3):
        np.testing.assert_array_equal(reader.chunk((8, 10), (2, 2)), z[8:, 10:])  # edge chunk
        np.testing.assert_array_equal(reader.chunk((4, 5), (4, 5)), z[4:8, 5:10])
    assert calls == [(2, 2), (1, 1)]
    assert reader.chunk((4, 5), (4, 4)) is None  # not one stored chunk
    assert reader.chunk((1, 0), (4, 5)) is None
    with dask.config.set({CACHE_KEY: 0}):
        reader.chunk((4, 5), (4, 5))
    assert len(calls) == 3


def test_a_rewritten_chunk_is_read_again(tmp_path, monkeypatch):
    z = _v3(tmp_path / "a.zarr", np.zeros((4, 4), "f4"), (2, 2), [])
    z[:] = 1.0
    _age(tmp_path / "a.zarr")
    reader = ZarrChunks(tmp_path / "a.zarr")
    clear_cache()
    assert reader.chunk((0, 0), (2, 2)).sum() == 4
    z[:2, :2] = 5.0  # same size; a new time
    assert reader.chunk((0, 0), (2, 2)).sum() == 20
    calls = _decodes(monkeypatch)
    reader.chunk((0, 0), (2, 2))
    assert calls == [(0, 0)]  # just written: read, not kept
    z[:2, :2] = 0.0  # every sample the fill value: zarr removes the chunk file
    assert reader.chunk((0, 0), (2, 2)).sum() == 0


def test_the_cache_keeps_within_its_bound(tmp_path):
    _v3(tmp_path / "a.zarr", np.ones((40, 40), "f8"), (10, 10), [])  # 800 B per chunk
    _age(tmp_path / "a.zarr")
    reader = ZarrChunks(tmp_path / "a.zarr")
    clear_cache()
    with dask.config.set({CACHE_KEY: "4kB"}):
        for i, j in itertools.product(range(4), range(4)):
            assert reader.chunk((10 * i, 10 * j), (10, 10)).sum() == 100
            assert zarr_chunks._CACHE.nbytes <= 4000
    assert zarr_chunks._CACHE.nbytes == 4000  # the last 5 chunks


def test_a_bad_cache_size_is_refused_by_name(tmp_path):
    _v3(tmp_path / "a.zarr", np.ones((4, 4), "f4"), (2, 2), [])
    with dask.config.set({CACHE_KEY: -1}):
        with pytest.raises(ValueError, match="transfuse.zarr_chunk_cache=-1"):
            ZarrChunks(tmp_path / "a.zarr").chunk((0, 0), (2, 2))


@pytest.mark.parametrize("bad", [-1, "lots", [3]])
def test_a_bad_cache_size_is_refused_when_the_graph_is_built(tmp_path, bad):
    _v3(tmp_path / "a.zarr", np.ones((8, 8), "f4"), (4, 4), [])
    src = read_image(tmp_path / "a.zarr")
    with dask.config.set({CACHE_KEY: bad, "transfuse.zarr_reads": "direct"}):
        with pytest.raises(ValueError, match="transfuse.zarr_chunk_cache"):
            tf.lazy(src).shift((0.5, 0.25), order=1).to_dask()


def test_an_oversized_chunk_file_is_refused_without_being_read(tmp_path):
    z = _v3(tmp_path / "a.zarr", np.ones((4, 4), "f4"), (2, 2), V3_COMPRESSORS["zstd"])
    chunk = tmp_path / "a.zarr" / "c" / "0" / "0"
    with open(chunk, "r+b") as f:
        f.truncate(2**40)  # a sparse terabyte: reading it would exhaust memory
    reader = ZarrChunks(tmp_path / "a.zarr")
    with pytest.raises(ValueError, match="more than any encoding"):
        reader[0:2, 0:2]
    np.testing.assert_array_equal(reader[2:, 2:], z[2:, 2:])
