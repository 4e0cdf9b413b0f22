"""numba when a compiled kernel first runs, not when transfuse is imported.

Importing numba and readying its CPU target (the first call of any compiled function
loads numba's typing and lowering registries) takes 0.5-0.8 s of a fresh process: more
than ``import transfuse`` otherwise costs, and more than a small resample. So the kernel
modules make their numba dispatchers at the first call (:class:`DeferredKernel`) and
:data:`AVAILABLE` imports numba at its first truth test, which the ``"cpu"`` backend makes
only where it runs a kernel. A process that runs only the reference path (``"scipy"``, or
the ``"cpu"`` backend's small passes while no kernel is loaded: :mod:`.cpu`) never imports
numba.

Where numba cannot be imported (not installed, or an import error such as a numba too
old for the installed numpy), the kernels are unavailable and :func:`warn_once` says so,
once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import warnings

__all__ = [
    "AVAILABLE",
    "NO_NUMBA_WARNING",
    "DeferredKernel",
    "installed",
    "kernels_loaded",
    "module",
    "warn_once",
]

#: What the ``"cpu"`` backend says, once, where numba cannot be imported.
NO_NUMBA_WARNING = (
    "numba could not be imported: the 'cpu' backend runs scipy.ndimage per chunk "
    "(the reference backend, slower). Install numba to get the compiled kernels."
)

_LOCK = threading.RLock()
_STATE: dict = {}  # "module": numba or None once the import was tried
_WARNED = threading.Event()
_LOADED = threading.Event()


def installed() -> bool:
    """Whether numba can be found, without importing it (an import may still fail)."""
    if "module" in _STATE:
        return _STATE["module"] is not None
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken parent package, a module without spec
        return False


def module():
    """The numba module (imported at the first call), or None where it cannot be imported
    (then :func:`warn_once` has warned)."""
    if "module" not in _STATE:
        with _LOCK:
            if "module" not in _STATE:
                try:
                    _STATE["module"] = importlib.import_module("numba")
                except ImportError:
                    _STATE["module"] = None
    if _STATE["module"] is None:
        warn_once()
    return _STATE["module"]


def warn_once() -> None:
    """Warn, the first time only, that the compiled kernels are unavailable."""
    if _WARNED.is_set():
        return
    _WARNED.set()
    warnings.warn(NO_NUMBA_WARNING, RuntimeWarning, stacklevel=3)


def kernels_loaded() -> bool:
    """Whether some compiled kernel has its dispatcher in this process (numba is imported
    and its CPU target is ready: further kernels load in milliseconds from the disk
    cache)."""
    return _LOADED.is_set()


class _Available:
    """True where numba imports; the import happens at the first truth test."""

    def __bool__(self) -> bool:
        return module() is not None

    def __repr__(self) -> str:
        return repr(bool(self))


#: Whether the compiled kernels can run (a truth test imports numba, once).
AVAILABLE = _Available()


class DeferredKernel:
    """A compiled kernel whose numba dispatcher is made at its first use.

    ``register()`` returns the dispatcher: it compiles (``njit``) the helpers the kernel
    inlines — rebinding their module names, which numba resolves when it compiles the
    kernel or loads it from the disk cache — and then the kernel. Calls and attributes
    (``signatures``, ...) go to the dispatcher. Threads that arrive together make it once.

    Examples
    --------
    >>> made = []
    >>> kernel = DeferredKernel(lambda: made.append("dispatcher"))
    >>> made  # nothing is compiled (nor numba imported) before the first call
    []
    """

    def __init__(self, register):
        self._register = register
        self._dispatcher = None

    def dispatcher(self):
        """The numba dispatcher, made now if it is not yet."""
        if self._dispatcher is None:
            with _LOCK:
                if self._dispatcher is None:
                    self._dispatcher = self._register()
                    _LOADED.set()
        return self._dispatcher

    def __call__(self, *args):
        return self.dispatcher()(*args)

    def __getattr__(self, name):
        if name in ("_register", "_dispatcher") or name.startswith("__"):
            raise AttributeError(name)  # not made yet (copy, pickle probes)
        return getattr(self.dispatcher(), name)
