"""Writing a local zarr array's chunks straight to their files.

zarr's write of a chunk goes through its asynchronous codec pipeline: the chunk is copied
into a buffer of the chunk's shape, compressed in a thread of zarr's own pool, handed back
to zarr's event loop and written from there, several threads and two copies per chunk.
Per chunk in one thread the two cost the same (``benchmarks/bench_zarr_chunks.py``: the
compression dominates); on the 1024**3 job of ``bench_out_of_core.py`` the threaded run
took about 8% less time and 40-70 MiB less memory with this writer (docs/cluster.md,
"How a zarr output is written"). :class:`ZarrChunkWriter` is a target for
:func:`dask.array.store` that encodes each whole chunk in the task's own thread and writes
its file (a temporary name, then renamed into place, as zarr does) for the arrays it can
(the same arrays :class:`~transfuse.io.zarr_chunks.ZarrChunks` reads directly, except
zarr v3's blosc codec, whose settings zarr derives from the array), and leaves any other
array, or a box that is not whole chunks, to zarr. Either way the files are the ones zarr
writes, byte for byte: the same encoding, edge chunks padded with the fill value, and a
chunk equal to the fill value everywhere not stored (its file removed) unless the array's
``write_empty_chunks`` is set. No file outside the array's folder is written
(:func:`~transfuse.io.zarr_store.check_inside`).
"""

from __future__ import annotations

import math
import os
import secrets
import threading

import numpy as np
import zarr

from .zarr_chunks import LocalZarrArray, _decoder, _scratch
from .zarr_store import ConfinedLocalStore, check_inside

__all__ = ["ZarrChunkWriter"]


def _encoder(metadata):
    """A numcodecs codec encoding a chunk of ``metadata``'s array as zarr does (None: no
    compressor), or ``False`` where :class:`ZarrChunkWriter` leaves the array to zarr."""
    codec = _decoder(metadata)
    if metadata.zarr_format == 3 and codec and codec.codec_id == "blosc":
        return False  # zarr sets blosc's type size and shuffle from the array's dtype
    return codec


class ZarrChunkWriter(LocalZarrArray):
    """A zarr array on the local disk, written chunk by chunk by ``dask.array.store``.

    ``writer[box] = samples`` stores ``samples`` as ``zarr_array[box] = samples`` does.
    Picklable: it opens files inside each write.

    Parameters
    ----------
    path : str or Path
        An existing zarr array's folder (v2 or v3), for example one just made by
        ``zarr.create_array``.

    Examples
    --------
    >>> import dask.array as da, numpy as np, tempfile, zarr
    >>> path = tempfile.mkdtemp() + "/a.zarr"
    >>> z = zarr.create_array(path, shape=(10,), chunks=(4,), dtype="f8")
    >>> writer = ZarrChunkWriter(path)
    >>> writer.direct
    True
    >>> da.store(da.arange(10.0, chunks=4), writer, lock=False)
    >>> zarr.open_array(path)[:].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    """

    def __init__(self, path):
        z = self._open(path, _encoder)
        fill = z.metadata.fill_value
        self._fill = None if fill is None else np.asarray(fill, dtype=self.dtype)
        self.write_empty_chunks = bool(z.config.write_empty_chunks)

    def __dask_tokenize__(self):
        return (type(self).__name__, self.path, self.shape, self.dtype.str, self.chunks)

    def _zarr_array(self):
        if self._zarr is None:
            store = ConfinedLocalStore(self.path, read_only=False)
            self._zarr = zarr.open_array(store, mode="r+")
        return self._zarr

    def __setitem__(self, box, value):
        value = np.asarray(value)
        index = self._whole_chunk(box, value)
        if index is None:
            self._zarr_array()[box] = value
            return
        if value.shape != self.chunks:  # an edge chunk is stored whole, padded
            nbytes = math.prod(self.chunks) * self.dtype.itemsize
            full = np.frombuffer(_scratch("write", nbytes), dtype=self.dtype)
            full = full.reshape(self.chunks)
            full[...] = 0 if self._fill is None else self._fill
            full[tuple(slice(0, n) for n in value.shape)] = value
            value = full
        path = self._chunk_path(index)
        check_inside(self.path, path)
        if not self.write_empty_chunks and self._all_fill(value):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            return
        value = np.ascontiguousarray(value)
        data = value if self._codec is None else self._codec.encode(value)
        _write_file(path, memoryview(data).cast("B"))

    def _whole_chunk(self, box, value):
        """The index of the chunk ``box`` covers exactly (trimmed at the array's end) when
        it can be written directly, else None."""
        if not self.direct or value.dtype != self.dtype:
            return None
        box = box if isinstance(box, tuple) else (box,)
        if len(box) != self.ndim or not all(isinstance(s, slice) for s in box):
            return None
        index, sizes = [], []
        for s, n, c in zip(box, self.shape, self.chunks, strict=True):
            start, stop, step = s.indices(n)
            if step != 1 or start % c or stop != min(start + c, n):
                return None
            index.append(start // c)
            sizes.append(stop - start)
        if value.shape != tuple(sizes):
            return None
        return tuple(index)

    def _all_fill(self, chunk) -> bool:
        """Whether zarr would find ``chunk`` equal to the fill value everywhere (NaN equal
        to NaN; a zero fill value compared bit for bit, so that -0.0 is kept)."""
        fill = self._fill
        if fill is None:
            return False
        flat = chunk.reshape(-1)
        if fill.dtype.kind == "f" and fill == 0:
            bits = flat.view(f"u{self.dtype.itemsize}")
            return not bits[0] and not bits.any()
        nan = self.dtype.kind in "fc"
        if not np.array_equal(flat[:1], fill.reshape(1), equal_nan=nan):
            return False
        return bool(np.array_equal(flat, np.broadcast_to(fill, flat.shape), equal_nan=nan))


def _write_file(path: str, data: memoryview) -> None:
    """Write ``data`` to ``path`` under a temporary name beside it, then rename it into
    place: a reader (or a retried task) never sees half a chunk."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(
        folder,
        f".{os.path.basename(path)}.{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}",
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        done = 0
        while done < len(data):
            done += os.write(fd, data[done:])
    except BaseException:
        os.close(fd)
        os.remove(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
