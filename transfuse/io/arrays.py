"""Reading and writing image files as dask arrays: ``.npy``, ``.tif``/``.tiff`` and ``.zarr``.

Files are read lazily: ``.npy`` and uncompressed TIFF files are memory-mapped chunk by chunk,
compressed or tiled TIFF files are read through tifffile's zarr interface, and zarr
arrays chunk by chunk (:mod:`.zarr_chunks`: straight from the chunk files where it can,
through zarr otherwise). Readers and writers are small picklable objects
that open the file inside each task, so the ``threads``, ``processes`` and distributed
schedulers all work.

Writing is all or nothing: :func:`write_image` computes into a temporary name in the
output's directory (``.NAME.partial-XXXXXXXX``) and renames it into place only when every
chunk is written; on any error or interruption the partial output is removed.

Examples
--------
>>> import os, tempfile, numpy as np
>>> tmp = tempfile.mkdtemp()
>>> np.save(os.path.join(tmp, "in.npy"), np.arange(12.0).reshape(3, 4))
>>> x = read_image(os.path.join(tmp, "in.npy"), chunks=2)
>>> x.chunks
((2, 1), (2, 2))
>>> write_image(x * 2, os.path.join(tmp, "out.tif"))
>>> read_image(os.path.join(tmp, "out.tif")).compute()[2]
array([16., 18., 20., 22.])
>>> sorted(os.listdir(tmp))
['in.npy', 'out.tif']
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import math
import os
import secrets
import shutil
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import dask.array as da
import numpy as np

__all__ = [
    "FORMATS",
    "ImageFileError",
    "image_format",
    "read_image",
    "store_image",
    "atomic_output",
    "check_output",
    "partial_path",
    "preallocate",
    "write_image",
    "MappedFile",
    "TiffZarr",
]

#: File name suffix -> format name.
FORMATS = {".npy": "npy", ".tif": "tiff", ".tiff": "tiff", ".zarr": "zarr"}


class ImageFileError(ValueError):
    """An image file is missing, of an unknown type, or cannot be read or created."""


# -- formats ----------------------------------------------------------------------------------
def image_format(path) -> str:
    """The format of an image path from its suffix: ``"npy"``, ``"tiff"`` or ``"zarr"``.

    A path inside a zarr store (``image.zarr/0``) is a zarr array too.

    Raises
    ------
    ImageFileError
        For any other suffix.

    Examples
    --------
    >>> image_format("a/b.TIF"), image_format("c.zarr/0")
    ('tiff', 'zarr')
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None and any(p.lower().endswith(".zarr") for p in path.parts[:-1]):
        fmt = "zarr"
    if fmt is None:
        known = ", ".join(FORMATS)
        raise ImageFileError(f"{str(path)!r}: unknown image file type (use one of {known})")
    return fmt


# -- memory-mapped files ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MappedFile:
    """A raw array at ``offset`` in a file, mapped afresh for each read or write.

    Holds no open file, so it pickles to other processes; each ``[key]`` maps the file,
    copies the region and unmaps it. Used for ``.npy`` and contiguous TIFF data.
    """

    path: str
    offset: int
    shape: tuple
    dtype: np.dtype
    fortran: bool = False
    writable: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _map(self) -> np.memmap:
        return np.memmap(
            self.path,
            dtype=self.dtype,
            mode="r+" if self.writable else "r",
            offset=self.offset,
            shape=self.shape,
            order="F" if self.fortran else "C",
        )

    def __getitem__(self, key) -> np.ndarray:
        return np.array(self._map()[key])

    def __setitem__(self, key, value) -> None:
        mapped = self._map()
        mapped[key] = value
        mapped.flush()


class TiffZarr:
    """A compressed or tiled TIFF file read through tifffile's zarr store.

    The store is opened on first use in each process and is not pickled; :meth:`close`
    closes it in this process.
    """

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._z = self._store = None
        self._open()
        self.shape, self.dtype, self.chunks = self._z.shape, self._z.dtype, self._z.chunks

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _open(self):
        import tifffile
        import zarr

        self._store = tifffile.imread(self.path, aszarr=True, series=0, level=0)
        self._z = zarr.open_array(self._store, mode="r")

    def close(self) -> None:
        """Close the store (it is opened again on the next read)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._z = self._store = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_z", "_store", "_lock")}

    def __setstate__(self, state):
        self.__dict__.update(state, _z=None, _store=None, _lock=threading.Lock())

    def __getitem__(self, key) -> np.ndarray:
        with self._lock:
            if self._z is None:
                self._open()
            z = self._z
        return np.asarray(z[key])


# -- reading ------------------------------------------------------------------------------------
def read_image(path, chunks=None) -> da.Array:
    """Open an image file as a lazy dask array (nothing is read until it is computed).

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file, a ``.tif``/``.tiff`` file (its first series) or a zarr v3 array
        (``image.zarr`` or an array inside a store, ``image.zarr/0``).
    chunks : int, tuple or "auto", optional
        Chunking of the dask array. Default: ``"auto"`` for ``.npy`` and TIFF (in
        multiples of the TIFF's tiles or strips when it is compressed), the stored
        chunks for zarr.

    Returns
    -------
    dask.array.Array

    Raises
    ------
    ImageFileError
        When the file is missing, of an unknown type, not a regular file (a FIFO or a
        device: refused without opening it) or not a readable image.
    """
    path = Path(path)
    fmt = image_format(path)
    try:
        mode = os.stat(path).st_mode  # never opens it: a FIFO must not block here
    except OSError:
        raise ImageFileError(f"{str(path)!r}: no such file or directory") from None
    if fmt == "zarr" and not stat.S_ISDIR(mode):
        raise ImageFileError(f"{str(path)!r}: not a zarr store (a directory)")
    if fmt != "zarr" and not stat.S_ISREG(mode):
        raise ImageFileError(f"{str(path)!r}: not a regular file (a FIFO, device or directory)")
    try:
        return _READERS[fmt](path, chunks)
    except ImageFileError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ImageFileError(f"{str(path)!r}: not a readable {fmt} image ({exc})") from exc


def _token(path: Path, *extra) -> str:
    stat = path.stat()
    return dask.base.tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size, *extra)


def _from_reader(reader, path: Path, fmt: str, chunks) -> da.Array:
    meta = np.empty((0,) * reader.ndim, dtype=reader.dtype)
    chunks = "auto" if chunks is None else chunks
    name = f"read-{fmt}-{_token(path, chunks)}"
    return da.from_array(reader, chunks=chunks, name=name, meta=meta)


def _read_npy(path: Path, chunks) -> da.Array:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ImageFileError(f"{str(path)!r}: not a .npy file")
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    fortran = bool(mapped.flags.f_contiguous and not mapped.flags.c_contiguous)
    reader = MappedFile(str(path), int(mapped.offset), mapped.shape, mapped.dtype, fortran)
    del mapped
    return _from_reader(reader, path, "npy", chunks)


def _read_tiff(path: Path, chunks) -> da.Array:
    import tifffile

    try:
        mapped = tifffile.memmap(path, mode="r")
    except tifffile.TiffFileError:
        raise
    except ValueError:  # compressed, tiled or otherwise not contiguous
        return _from_reader(TiffZarr(str(path)), path, "tiff", chunks)
    reader = MappedFile(str(path), int(mapped.offset), mapped.shape, mapped.dtype)
    del mapped
    return _from_reader(reader, path, "tiff", chunks)


def _read_zarr(path: Path, chunks) -> da.Array:
    from .zarr_chunks import zarr_dask_array

    return zarr_dask_array(path, chunks=chunks)


_READERS = {"npy": _read_npy, "tiff": _read_tiff, "zarr": _read_zarr}


# -- writing ------------------------------------------------------------------------------------
def store_image(array: da.Array, path, fmt: str, **compute_kwargs) -> None:
    """Compute ``array`` into a new file or directory ``path`` in format ``fmt``.

    This is the raw step of :func:`write_image`: ``path`` is written as given (no temporary
    name, no clean-up on failure). ``compute_kwargs`` go to :func:`dask.compute`
    (``scheduler``, ``pool``, ``num_workers``).
    """
    _check_writable(array, fmt)
    _WRITERS[fmt](array, Path(path), compute_kwargs)


def _check_writable(array, fmt: str) -> None:
    if np.dtype(array.dtype).kind not in "biuf":
        raise ImageFileError(f"cannot write dtype {array.dtype} (real numbers only)")
    if fmt == "tiff" and array.ndim < 2:
        raise ImageFileError(f"a TIFF image needs at least 2 dimensions, got shape {array.shape}")


def preallocate(path, offset: int, nbytes: int) -> None:
    """Give the region ``[offset, offset + nbytes)`` of the file ``path`` real disk blocks.

    Memory-mapped outputs are created sparse; a write through the map into a hole that the
    file system cannot fill (disk full, quota) kills the process with SIGBUS. Allocating
    the blocks first turns that into an ``OSError`` (``ENOSPC``) here, before computing.
    Uses ``posix_fallocate``; where the file system or the platform lacks it, writes zeros.

    Raises
    ------
    OSError
        When the space cannot be allocated.
    """
    if nbytes <= 0:
        return
    fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    try:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, offset, nbytes)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        block = bytes(min(nbytes, 2**20))
        done = 0
        while done < nbytes:
            done += os.pwrite(fd, block[: min(len(block), nbytes - done)], offset + done)
        os.fsync(fd)
    finally:
        os.close(fd)


def _store_mapped(array, reader: MappedFile, compute_kwargs) -> None:
    nbytes = math.prod(reader.shape) * np.dtype(reader.dtype).itemsize
    preallocate(reader.path, reader.offset, nbytes)
    target = dataclasses.replace(reader, writable=True)
    da.store(array, target, lock=False, compute=True, **compute_kwargs)


def _write_npy(array, path: Path, compute_kwargs) -> None:
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    reader = MappedFile(str(path), int(mapped.offset), mapped.shape, mapped.dtype)
    del mapped
    _store_mapped(array, reader, compute_kwargs)


def _write_tiff(array, path: Path, compute_kwargs) -> None:
    import tifffile

    mapped = tifffile.memmap(path, shape=array.shape, dtype=array.dtype, photometric="minisblack")
    reader = MappedFile(str(path), int(mapped.offset), mapped.shape, mapped.dtype)
    del mapped
    _store_mapped(array, reader, compute_kwargs)


def _regular(chunks) -> bool:
    """Whether every axis has equal blocks except a smaller last one (as zarr needs)."""
    return all(len(c) < 2 or (len(set(c[:-1])) == 1 and c[-1] <= c[0]) for c in chunks)


#: A zarr output is computed in regions of whole chunks, each holding at least this many
#: bytes of output (one region when the output is smaller): rows of chunks along the first
#: axis, and a row of at least twice this size is split the same way along the next axis.
#: A region's tasks run to the end before the next region starts, so what the scheduler
#: keeps in memory is bounded by one region's input footprint, not by the order it picks
#: across the whole image (dask's order kept about 40% of a 4 GiB input at once); the
#: cost is that input chunks on a region's border are read twice.
ZARR_REGION_BYTES = 2**28


def zarr_regions(array) -> list[tuple[slice, ...]]:
    """The regions :func:`write_image` computes a zarr output in, one after the other.

    Examples
    --------
    >>> x = da.zeros((1024, 1024, 1024), chunks=128, dtype=np.float32)
    >>> regions = zarr_regions(x)  # a row of chunks holds 512 MiB: halves of rows
    >>> len(regions), regions[1]
    (16, (slice(0, 128, None), slice(512, 1024, None)))
    >>> len(zarr_regions(da.zeros((100, 100), chunks=10)))
    1
    """
    if array.ndim == 0:
        return [()]
    return _split_regions(array.chunks, 0, array.nbytes)


def _split_regions(chunks, axis: int, nbytes: float) -> list[tuple[slice, ...]]:
    """Regions of the block of ``nbytes`` spanning ``chunks`` from ``axis`` on (slices of
    ``axis`` and, where a single row was split, of the axes after it)."""
    rows = chunks[axis]
    per_index = nbytes / max(sum(rows), 1)
    groups, start, size = [], 0, 0
    for n in rows:
        size += n
        if size * per_index >= ZARR_REGION_BYTES:
            groups.append((start, size))
            start, size = start + size, 0
    if size or not groups:
        groups.append((start, size))
    regions = []
    for start, size in groups:
        here = slice(start, start + size)
        if size * per_index >= 2 * ZARR_REGION_BYTES and axis + 1 < len(chunks):
            inner = _split_regions(chunks, axis + 1, size * per_index)
            regions.extend((here, *rest) for rest in inner)
        else:
            regions.append((here,))
    return regions


def _write_zarr(array, path: Path, compute_kwargs) -> None:
    if not _regular(array.chunks):
        array = array.rechunk(tuple(max(c) for c in array.chunks))
    import zarr

    from .zarr_writes import ZarrChunkWriter

    chunks = tuple(max(c[0], 1) for c in array.chunks)
    zarr.create_array(str(path), shape=array.shape, chunks=chunks, dtype=array.dtype)
    target = ZarrChunkWriter(path)
    for region in zarr_regions(array):
        stored = da.store(array[region], target, regions=region, lock=False, compute=False)
        dask.compute(stored, **compute_kwargs)


_WRITERS = {"npy": _write_npy, "tiff": _write_tiff, "zarr": _write_zarr}


# -- all-or-nothing outputs ---------------------------------------------------------------------
def partial_path(path) -> Path:
    """A fresh temporary name beside ``path``: ``.NAME.partial-XXXXXXXX``."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")


def check_output(path, overwrite: bool = False) -> None:
    """Check that ``path`` can be written: a known type, in an existing directory, and not
    already there unless ``overwrite``.

    Raises
    ------
    ImageFileError
    """
    path = Path(path)
    image_format(path)
    parent = path.parent
    if not parent.is_dir():
        raise ImageFileError(f"{str(path)!r}: directory {str(parent)!r} does not exist")
    if os.path.lexists(path) and not overwrite:
        raise ImageFileError(f"{str(path)!r} already exists (use --overwrite to replace it)")
    if os.path.lexists(path) and not (path.is_symlink() or path.is_file() or path.is_dir()):
        raise ImageFileError(
            f"{str(path)!r} is not a regular file or directory (a FIFO, device or socket); "
            "it is never replaced"
        )


@contextlib.contextmanager
def atomic_output(path, overwrite: bool = False):
    """Context manager giving a temporary path to write ``path`` under; renamed into place
    when the block ends normally, removed when it raises (KeyboardInterrupt included).

    Examples
    --------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> with atomic_output(target) as tmp:
    ...     _ = open(tmp, "w").write("data")
    ...     os.path.exists(target)
    False
    >>> os.path.exists(target)
    True
    """
    final = Path(path)
    check_output(final, overwrite)
    partial = partial_path(final)
    try:
        yield partial
        check_output(final, overwrite)  # it may have appeared meanwhile
        _commit(partial, final)
    except BaseException:
        uninterrupted(_remove, partial)
        raise


def _commit(partial: Path, final: Path) -> None:
    """Move ``partial`` to ``final``, replacing what is there (file or directory)."""
    if not os.path.lexists(final) or not (partial.is_dir() or _is_real_dir(final)):
        os.replace(partial, final)
        return
    aside = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
    os.replace(final, aside)
    try:
        os.replace(partial, final)
    except BaseException:
        os.replace(aside, final)
        raise
    uninterrupted(_remove, aside)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _remove(path: Path) -> None:
    if _is_real_dir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def uninterrupted(func, *args):
    """Run ``func(*args)`` to the end: a KeyboardInterrupt meanwhile restarts it (clean-up
    must finish; the interrupt that started it is already being handled)."""
    while True:
        try:
            return func(*args)
        except KeyboardInterrupt:
            continue


@contextlib.contextmanager
def _compute_options(scheduler, num_workers):
    """dask.compute keyword arguments; for ``"threads"`` a pool of our own that is drained
    on exit, so that no task still writes once the partial output is removed."""
    if scheduler != "threads":
        kwargs = {"scheduler": scheduler, "num_workers": num_workers}
        yield {k: v for k, v in kwargs.items() if v is not None}
        return
    pool = ThreadPoolExecutor(num_workers or os.cpu_count() or 1)
    try:
        yield {"scheduler": "threads", "pool": pool}
    finally:
        uninterrupted(functools.partial(pool.shutdown, wait=True, cancel_futures=True))


def write_image(
    array, path, *, overwrite: bool = False, scheduler="threads", num_workers=None
) -> None:
    """Compute ``array`` into the image file ``path`` (format by suffix), all or nothing.

    The data go to a temporary name in the same directory, renamed to ``path`` once
    complete (replacing an existing ``path`` only with ``overwrite=True``). On any
    error or KeyboardInterrupt the running tasks are waited for, the partial output is
    removed and the exception propagates.

    Parameters
    ----------
    array : dask.array.Array or array_like
    path : str or Path
        ``.npy``, ``.tif``/``.tiff`` (at least 2-D) or ``.zarr`` (a zarr v3 array).
    overwrite : bool
        Replace an existing file or directory at ``path``.
    scheduler : str or None
        ``"threads"`` (default), ``"processes"``, ``"synchronous"``, or None for dask's
        current default (e.g. a distributed ``Client``).
    num_workers : int, optional
        Threads or processes to use.

    Raises
    ------
    ImageFileError
        Unknown type, missing directory, existing output, unsupported dtype or shape.
    """
    fmt = image_format(path)
    array = array if isinstance(array, da.Array) else da.asarray(array)
    _check_writable(array, fmt)
    with atomic_output(path, overwrite) as partial:
        with _compute_options(scheduler, num_workers) as kwargs:
            store_image(array, partial, fmt, **kwargs)
