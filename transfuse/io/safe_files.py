"""Reading the files a document names, safely: one set of rules for every reader.

A document (a recipe, an ITK transform file) may name other files beside it. Whatever the
document says, reading it must not reach outside the directory it was read from, block on a
FIFO or a device, read without a byte limit, or echo the content of a foreign file in an
error message. The recipe reader (``.npy`` references) and the ITK reader
(``ComponentTransformFile``) both go through the functions here:

* :func:`side_file` checks a reference — a relative path of ``/``-separated parts, none of
  them empty or ``..``, with no ``\\``, ``:`` or NUL — and resolves it inside the base
  directory (symbolic links included: one that leads out is refused);
* :func:`open_regular` opens a path without blocking (``O_NONBLOCK``) and refuses anything
  but a regular file, or one larger than a limit;
* :func:`read_limited` reads a whole regular file of at most ``limit`` bytes.

Errors are :class:`SideFileError` (a ``ValueError``) whose message quotes only the name as
the document gave it (shortened), never what the file holds; callers re-raise them as their
own error class (``RecipeError``, ``FormatError``).

Examples
--------
>>> import os, tempfile
>>> from transfuse.io.safe_files import read_limited, side_file
>>> tmp = tempfile.mkdtemp()
>>> _ = open(os.path.join(tmp, "a.txt"), "w").write("hello")
>>> read_limited(side_file(tmp, "a.txt"), 100)
b'hello'
>>> side_file(tmp, "../etc/passwd")
Traceback (most recent call last):
...
transfuse.io.safe_files.SideFileError: '../etc/passwd' must stay inside the directory ...
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

__all__ = [
    "MAX_REFERENCE_LENGTH",
    "SideFileError",
    "quote",
    "quote_keys",
    "check_reference",
    "side_file",
    "open_regular",
    "read_limited",
]

#: Longest file reference a document may hold.
MAX_REFERENCE_LENGTH = 255
#: Bytes read at a time.
_BLOCK = 2**20


class SideFileError(ValueError):
    """A file a document names is unsafe, missing, not a regular file or too large."""


def quote(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` marks a cut), for messages that
    must stay one short line whatever a document holds.

    Examples
    --------
    >>> quote("x" * 100, 10)
    "'xxxxxx..."
    """
    text = repr(value)
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def quote_keys(keys, count: int = 8, limit: int = 40) -> str:
    """A short list of (document-given) keys for a message: at most ``count`` of them, each
    quoted to ``limit`` characters.

    Examples
    --------
    >>> quote_keys(["a", "b" * 100])
    "['a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...]"
    >>> quote_keys(range(10), count=2)
    '[0, 1, ... (10 in all)]'
    """
    keys = list(keys)
    shown = [quote(k, limit) for k in keys[:count]]
    if len(keys) > count:
        shown.append(f"... ({len(keys)} in all)")
    return "[" + ", ".join(shown) + "]"


def check_reference(ref, *, suffix: str | None = None) -> str:
    """Check the form of a file reference (see :func:`side_file`) without touching the file
    system, and return it.

    Raises
    ------
    SideFileError
    """
    what = "a relative path" + (f" ending in {suffix}" if suffix else "")
    if type(ref) is not str or not ref or len(ref) > MAX_REFERENCE_LENGTH:
        raise SideFileError(f"must be {what} of at most {MAX_REFERENCE_LENGTH} characters")
    if suffix is not None and not ref.endswith(suffix):
        raise SideFileError(f"{quote(ref)} must be {what}")
    if (
        any(c in ref for c in "\\:\x00")
        or PurePosixPath(ref).is_absolute()
        or any(part in ("", "..") for part in ref.split("/"))
    ):
        raise SideFileError(f"{quote(ref)} must stay inside the directory of the document")
    return ref


def side_file(base_dir, ref, *, suffix: str | None = None) -> Path:
    """The resolved path of the file ``ref`` inside ``base_dir``.

    Parameters
    ----------
    base_dir : path-like
        The directory of the document that names the file.
    ref : str
        The reference as the document wrote it.
    suffix : str, optional
        A suffix the reference must end with (e.g. ``".npy"``).

    Raises
    ------
    SideFileError
        When ``ref`` is not a string, too long, absolute, has empty or ``..`` parts, holds
        ``\\``, ``:`` or NUL, lands outside ``base_dir`` once symbolic links are followed,
        or does not name an existing regular file.
    """
    check_reference(ref, suffix=suffix)
    root = Path(base_dir).resolve()
    full = (root / ref).resolve()
    if not full.is_relative_to(root):
        raise SideFileError(f"{quote(ref)} leads outside the directory of the document")
    try:
        mode = os.stat(full).st_mode
    except OSError:
        raise SideFileError(f"file {quote(ref)} not found next to the document") from None
    if not stat.S_ISREG(mode):
        raise SideFileError(f"{quote(ref)} is not a regular file")
    return full


def open_regular(path, limit: int | None = None, label: str | None = None) -> int:
    """Open ``path`` for reading without blocking and return the file descriptor, checked to
    be a regular file of at most ``limit`` bytes.

    ``label`` names the file in messages (default: the quoted path). ``O_NONBLOCK`` keeps
    a FIFO from blocking the open; the check on the opened descriptor
    (not on the name) then refuses it, and devices, directories and sockets too.

    Raises
    ------
    SideFileError
        For a file that is not regular or is over ``limit`` bytes.
    OSError
        When the file cannot be opened at all (missing, no permission).
    """
    label = quote(str(path)) if label is None else label
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SideFileError(f"{label} is not a regular file")
        if limit is not None and info.st_size > limit:
            raise SideFileError(
                f"{label} has {info.st_size} bytes, which exceeds the limit of {limit}"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_limited(path, limit: int, label: str | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    The limit holds even for a file that grows while it is read.

    Raises
    ------
    SideFileError
        For a file that is not regular or is over ``limit`` bytes.
    OSError
        When the file cannot be opened or read.
    """
    fd = open_regular(path, limit, label)
    blocks, total = [], 0
    with os.fdopen(fd, "rb", buffering=0) as fh:
        while total <= limit:
            block = fh.read(min(_BLOCK, limit + 1 - total))
            if not block:
                return b"".join(blocks)
            blocks.append(block)
            total += len(block)
    label = quote(str(path)) if label is None else label
    raise SideFileError(f"{label} exceeds the limit of {limit} bytes")
