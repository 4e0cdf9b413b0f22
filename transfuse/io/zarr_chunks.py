"""Reading a local zarr array's chunks straight from their files into the result.

zarr's own read of a chunk allocates the compressed bytes, the decompressed bytes and the
result, three fresh buffers per chunk. Where ``MALLOC_TRIM_THRESHOLD_`` is set (dask's
nanny sets it for every worker) each of them is mapped afresh and faults its pages in:
about 4,400 page faults and 27-30 ms for a 128**3 float32 zstd chunk here, against 500
faults and 10-11 ms when the file is read into a buffer the thread keeps and decompressed
straight into the result (9 against 11 ms without the setting). :class:`ZarrChunks` does
that for the arrays it can (a local store; no sharding, transposition, filters or checksum
codec; native byte order; numeric samples; a zstd, blosc or gzip compressor or none) and
leaves every other array to zarr. Either way the samples are the ones zarr returns, bit for
bit, and no file outside the store's folder is read (:mod:`.zarr_store`).
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import sys
import threading
import time

import numpy as np

from .zarr_store import check_inside, open_confined_array

__all__ = ["CACHE_KEY", "ZarrChunks", "clear_cache", "zarr_dask_array"]

#: Most bytes of compressed chunk or of chunk scratch a thread keeps between its reads; a
#: larger chunk gets buffers of its own.
SCRATCH_BYTES = 64 * 2**20
_SCRATCH = threading.local()


def _scratch(slot: str, nbytes: int) -> memoryview:
    """``nbytes`` of uninitialised memory this thread reuses read after read."""
    if nbytes > SCRATCH_BYTES:
        return memoryview(bytearray(nbytes))
    held = _SCRATCH.__dict__.setdefault("held", {})
    buf = held.get(slot)
    if buf is None or len(buf) < nbytes:
        buf = held[slot] = bytearray(max(nbytes, 64))
    return memoryview(buf)[:nbytes]


#: dask config key: the most bytes of decoded chunks a process keeps for the resampling
#: tasks that read their input chunks themselves (``transfuse.zarr_reads="direct"``);
#: 0 keeps none. Neighbouring output chunks read mostly the same input chunks, so a
#: chunk is decoded about once per process instead of once per task reading it.
CACHE_KEY = "transfuse.zarr_chunk_cache"
CACHE_DEFAULT = 256 * 2**20
#: A chunk file modified less than this long ago (ns) is read but not kept.
FRESH_NS = 10**9


class _ChunkCache:
    """Decoded chunks, least recently used first out, at most ``limit`` bytes; an entry
    holds the chunk file's identity (inode, size, modification time) and is used only
    while the file still has it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: collections.OrderedDict = collections.OrderedDict()
        self.nbytes = 0

    def get(self, key, stamp):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] != stamp:
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key, stamp, value, limit):
        with self._lock:
            if key in self._items:
                self._drop(key)
            if value.nbytes > limit:
                return
            self._items[key] = (stamp, value)
            self.nbytes += value.nbytes
            while self.nbytes > limit:
                self._drop(next(iter(self._items)))

    def _drop(self, key):
        self.nbytes -= self._items.pop(key)[1].nbytes

    def clear(self):
        with self._lock:
            self._items.clear()
            self.nbytes = 0


_CACHE = _ChunkCache()


def clear_cache() -> None:
    """Drop every decoded chunk this process keeps (:data:`CACHE_KEY`)."""
    _CACHE.clear()


def _cache_limit() -> int:
    """:data:`CACHE_KEY`'s bytes; inside a ``distributed`` worker with a memory limit, at
    most a quarter of it (dask counts the cache as memory it does not manage)."""
    import dask

    value = limit = dask.config.get(CACHE_KEY, CACHE_DEFAULT)
    if isinstance(limit, str):
        try:
            limit = dask.utils.parse_bytes(limit)
        except ValueError:
            limit = None
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 0:
        raise ValueError(f"dask config {CACHE_KEY}={value!r} is not a number of bytes >= 0")
    worker_limit = _worker_memory_limit()
    if worker_limit:
        limit = min(limit, worker_limit // 4)
    return int(limit)


def _worker_memory_limit():
    """The memory limit of the ``distributed`` worker running this task, if any."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        return None


def _decoder(metadata):
    """A numcodecs codec decoding a stored chunk of ``metadata``'s array into its samples
    (None: no compressor), or ``False`` where :class:`ZarrChunks` leaves the array to zarr."""
    import numcodecs

    if metadata.zarr_format == 2:
        if metadata.filters or metadata.order != "C":
            return False
        compressor = metadata.compressor
        if compressor is None:
            return None
        return compressor if compressor.codec_id in ("zstd", "blosc", "gzip") else False
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    codecs = list(metadata.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return False  # transposition first, or sharding
    endian = codecs[0].endian
    if endian is not None and endian.value != sys.byteorder:
        return False
    rest = codecs[1:]
    if not rest:
        return None
    if len(rest) > 1:
        return False
    codec = rest[0]
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    if isinstance(codec, BloscCodec):
        return numcodecs.Blosc()  # decoding reads everything it needs from the header
    if isinstance(codec, GzipCodec):
        return numcodecs.GZip(level=codec.level)
    return False


class LocalZarrArray:
    """What :class:`ZarrChunks` and :class:`~.zarr_writes.ZarrChunkWriter` share: a local
    zarr array's layout, the paths of its chunk files, whether its chunks are handled
    directly (``direct``: a numcodecs codec, or None for raw samples, in ``_codec``), and
    pickling without the zarr object (``_zarr``, reopened where needed)."""

    def _open(self, path, codec_of):
        """Read the array's metadata; ``codec_of(metadata)`` gives the codec (False: the
        array is left to zarr). Returns the zarr array, opened read-only and confined."""
        self.path = os.path.realpath(os.fspath(path))
        z = open_confined_array(self.path)
        meta = z.metadata
        self.shape = tuple(int(n) for n in z.shape)
        self.dtype = np.dtype(z.dtype)
        self.chunks = tuple(int(c) for c in z.chunks)
        self.ndim = len(self.shape)
        self._keys = meta.encode_chunk_key
        numeric = self.dtype.kind in "biufc" and self.dtype.isnative and self.ndim
        codec = codec_of(meta) if numeric else False
        self.direct = codec is not False
        self._codec = codec or None
        self._zarr = None
        return z

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_zarr"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def _chunk_path(self, index):
        return os.path.join(self.path, *self._keys(index).split("/"))


class ZarrChunks(LocalZarrArray):
    """A zarr array on the local disk, read chunk by chunk for ``dask.array.from_array``.

    ``reader[box]`` returns the samples of a box of the array (a tuple of slices with
    step 1), equal to ``zarr_array[box]``. Picklable: it opens files inside each read.

    Parameters
    ----------
    path : str or Path
        The zarr array's folder (v2 or v3).

    Examples
    --------
    >>> import numpy as np, tempfile, zarr
    >>> path = tempfile.mkdtemp() + "/a.zarr"
    >>> _ = zarr.create_array(path, data=np.arange(10.0), chunks=(4,))
    >>> reader = ZarrChunks(path)
    >>> reader.direct, reader.chunks
    (True, (4,))
    >>> reader[slice(3, 9)].tolist()
    [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    """

    #: read by :func:`transfuse.executors.graph.zarr_source`: a box can be read from it
    reads_zarr = True

    def __init__(self, path):
        z = self._open(path, _decoder)
        fill = z.metadata.fill_value
        self.fill_value = np.asarray(0 if fill is None else fill, dtype=self.dtype)
        self._zarr = None if self.direct else z

    def _zarr_array(self):
        if self._zarr is None:
            self._zarr = open_confined_array(self.path)
        return self._zarr

    def __getitem__(self, box):
        box = box if isinstance(box, tuple) else (box,)
        box = box + (slice(None),) * (self.ndim - len(box))
        plain = len(box) == self.ndim and all(isinstance(s, slice) for s in box)
        if plain:
            box = tuple(slice(*s.indices(n)) for s, n in zip(box, self.shape, strict=True))
        if not self.direct or not plain or any(s.step != 1 for s in box):
            return self._zarr_array()[box]
        out = np.empty(tuple(max(s.stop - s.start, 0) for s in box), dtype=self.dtype)
        if out.size == 0:
            return out
        spans = [
            range(s.start // c, (s.stop - 1) // c + 1)
            for s, c in zip(box, self.chunks, strict=True)
        ]
        for index in itertools.product(*spans):
            self._read_into(out, box, index)
        return out

    def _read_into(self, out, box, index):
        """Decode chunk ``index`` and put its part of ``box`` into ``out``."""
        src, dst = [], []
        for s, i, c in zip(box, index, self.chunks, strict=True):
            lo, hi = max(s.start, i * c), min(s.stop, (i + 1) * c)
            src.append(slice(lo - i * c, hi - i * c))
            dst.append(slice(lo - s.start, hi - s.start))
        target = out[tuple(dst)]
        raw = self._raw(index)
        if raw is None:  # never written: the fill value, as zarr reads it
            target[...] = self.fill_value
            return
        whole = target.shape == self.chunks
        if whole and target.flags.c_contiguous:
            self._decode(raw, target)
            return
        nbytes = math.prod(self.chunks) * self.dtype.itemsize
        full = np.frombuffer(_scratch("chunk", nbytes), dtype=self.dtype).reshape(self.chunks)
        self._decode(raw, full)
        target[...] = full[tuple(src)]

    def chunk(self, start, size):
        """The samples of the box ``start`` to ``start + size`` when it is exactly one
        stored chunk (trimmed at the array's end), through this process's cache of
        decoded chunks (:data:`CACHE_KEY`); None for any other box.

        The array returned is shared with other readers of the chunk: never write to it.
        """
        if not self.direct:
            return None
        index = []
        for a, n, c, k in zip(start, self.shape, self.chunks, size, strict=True):
            if a % c or k != min(c, n - a):
                return None
            index.append(a // c)
        index = tuple(index)
        limit = _cache_limit()
        box = tuple(slice(a, a + k) for a, k in zip(start, size, strict=True))
        if not limit:
            return self[box]
        path = self._chunk_path(index)
        try:
            st = os.stat(path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            st = stamp = None
        key = (self.path, index)
        hit = _CACHE.get(key, stamp)
        if hit is not None:
            return hit
        value = self[box]
        # a file written in the last second is not kept: a rewrite within the same tick
        # of the file system's clock could keep its size and time
        if st is None or time.time_ns() - st.st_mtime_ns > FRESH_NS:
            _CACHE.put(key, stamp, value, limit)
        return value

    def check_config(self) -> None:
        """Raise ValueError naming :data:`CACHE_KEY` when its value is not a size (called
        when a graph reading through :meth:`chunk` is built, so that the error comes
        before any task runs)."""
        _cache_limit()

    def _raw(self, index):
        """The stored bytes of chunk ``index`` (in this thread's buffer), None when the
        chunk file does not exist."""
        path = self._chunk_path(index)
        check_inside(self.path, path)
        try:
            f = open(path, "rb", buffering=0)
        except FileNotFoundError:
            return None
        with f:
            size = os.fstat(f.fileno()).st_size
            most = 2 * math.prod(self.chunks) * self.dtype.itemsize + 65536
            if size > most:  # no codec grows a chunk that much: never read it into memory
                raise ValueError(
                    f"zarr array {self.path!r}: chunk file {path!r} holds {size} bytes, more "
                    f"than any encoding of a chunk takes ({most}); not read"
                )
            buf = _scratch("raw", size)
            got = 0
            while got < size:
                n = f.readinto(buf[got:])
                if not n:
                    break
                got += n
        return buf[:got]

    def _decode(self, raw, target):
        if self._codec is None:
            samples = np.frombuffer(raw, dtype=self.dtype)
            if samples.size != target.size:
                raise ValueError(
                    f"zarr array {self.path!r}: a chunk holds {samples.size} samples, "
                    f"not {target.size}"
                )
            target.reshape(-1)[...] = samples
            return
        self._codec.decode(raw, out=target)


def zarr_dask_array(path, chunks=None):
    """The zarr array at ``path`` as a dask array read by :class:`ZarrChunks`, in its
    stored chunks unless ``chunks``; its name is the same in every process (from the
    array's real path, shape, dtype, chunks and its metadata file's time and size).

    Examples
    --------
    >>> import numpy as np, tempfile, zarr
    >>> path = tempfile.mkdtemp() + "/a.zarr"
    >>> _ = zarr.create_array(path, data=np.arange(6.0).reshape(2, 3), chunks=(1, 3))
    >>> x = zarr_dask_array(path)
    >>> x.chunks, float(x.sum().compute())
    (((1, 1), (3,)), 15.0)
    """
    import dask
    import dask.array as da

    reader = ZarrChunks(path)
    chunks = reader.chunks if chunks is None else chunks
    stamps = []
    for meta_file in ("zarr.json", ".zarray"):
        try:
            st = os.stat(os.path.join(reader.path, meta_file))
        except FileNotFoundError:
            continue
        stamps.append((meta_file, st.st_mtime_ns, st.st_size))
    token = dask.base.tokenize(
        reader.path, reader.shape, reader.dtype.str, reader.chunks, chunks, stamps
    )
    meta = np.empty((0,) * reader.ndim, dtype=reader.dtype)
    return da.from_array(reader, chunks=chunks, name=f"read-zarr-{token}", meta=meta)
