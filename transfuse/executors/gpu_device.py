"""The device interface of the ``"gpu"`` backend: everything that needs a real device
(allocation, host<->device copies, synchronisation, free memory, kernel launches) behind
one small class, so that the kernels and the executor's logic are the same with a GPU and
without one.

* :class:`CupyDevice` — a CUDA device through cupy (arrays are cupy arrays; numba.cuda
  kernels read them through ``__cuda_array_interface__``);
* :class:`HostDevice` — a stand-in: numpy arrays, kernels run by numba-cuda's simulator
  (``NUMBA_ENABLE_CUDASIM=1``); used by the tests and the ``--simulate`` device check.

:func:`select_device` picks one (see its docstring); :func:`device_slots` is the
per-device semaphore bounding the chunks in flight.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading

import numpy as np

__all__ = [
    "CONFIG_DEVICE",
    "CONFIG_IN_FLIGHT",
    "CupyDevice",
    "DeviceMemoryError",
    "GPUUnavailableError",
    "HostDevice",
    "device_slots",
    "select_device",
    "simulator_enabled",
]

#: dask config key: at most this many output chunks' device work at once per device.
CONFIG_IN_FLIGHT = "transfuse.gpu.chunks_in_flight"
#: dask config key: ``"auto"`` (default), ``"cupy"`` or ``"host"`` (the simulator stand-in).
CONFIG_DEVICE = "transfuse.gpu.device"

INSTALL_HINT = (
    'install the GPU extra (`pip install "transfuse[gpu]"`: cupy-cuda12x and numba-cuda) on '
    "a machine with a CUDA device, or set NUMBA_ENABLE_CUDASIM=1 to run the kernels in "
    "numba-cuda's simulator (slow: for tests)"
)


class GPUUnavailableError(RuntimeError):
    """``executor="gpu"`` was asked for where it cannot run."""


class DeviceMemoryError(MemoryError):
    """A chunk's device work needs more memory than the device has free."""


def simulator_enabled() -> bool:
    """Whether numba-cuda's simulator is switched on (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _numba_cuda():
    try:
        return importlib.import_module("numba.cuda")
    except ImportError as exc:
        raise GPUUnavailableError(f"executor='gpu' needs numba-cuda: {INSTALL_HINT}") from exc


class HostDevice:
    """A device stand-in on the host: numpy arrays, kernels in numba-cuda's simulator.

    Parameters
    ----------
    free_bytes : int, optional
        The free memory it reports (default: effectively unlimited); tests pass a small
        value to exercise the memory refusal.

    Examples
    --------
    >>> dev = HostDevice(free_bytes=1000)
    >>> dev.free_memory(), dev.name
    (1000, 'host')
    >>> x = dev.to_device(np.arange(3.0))
    >>> dev.to_host(x).tolist()
    [0.0, 1.0, 2.0]
    """

    name = "host"
    xp = np

    def __init__(self, free_bytes: int | None = None):
        self.free_bytes = 2**62 if free_bytes is None else int(free_bytes)
        self._lock = threading.Lock()  # the simulator is not meant for concurrent launches

    def is_device_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def to_device(self, a, dtype=None):
        return np.ascontiguousarray(a, dtype=dtype)

    def to_host(self, a):
        return np.asarray(a)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def full(self, shape, value, dtype):
        return np.full(shape, value, dtype=dtype)

    def synchronize(self):
        pass

    def free_memory(self) -> int:
        return self.free_bytes

    def total_memory(self) -> int:
        return self.free_bytes

    def launch(self, kernel, nthreads: int, *args, block: int = 32):
        """Run ``kernel`` over ``nthreads`` threads (a grid-stride loop covers the rest)."""
        if nthreads <= 0:
            return
        grid = min((nthreads + block - 1) // block, 4)  # the simulator is ~ms per thread
        with self._lock:
            kernel[grid, block](*args)

    def meta(self, dtype, ndim):
        return np.empty((0,) * ndim, dtype=dtype)


class CupyDevice:
    """The current CUDA device, through cupy.

    Memory is cupy's default pool: :meth:`free_memory` counts the device's free memory
    plus the pool's free blocks (which cupy reuses before asking the driver).
    """

    name = "cupy"

    def __init__(self):
        self.xp = importlib.import_module("cupy")
        self._cuda = _numba_cuda()
        self.id = int(self.xp.cuda.runtime.getDevice())

    def is_device_array(self, a) -> bool:
        return isinstance(a, self.xp.ndarray)

    def to_device(self, a, dtype=None):
        out = self.xp.asarray(a, dtype=dtype)
        return self.xp.ascontiguousarray(out)

    def to_host(self, a):
        return self.xp.asnumpy(a)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype=dtype)

    def synchronize(self):
        self.xp.cuda.get_current_stream().synchronize()

    def free_memory(self) -> int:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        pool = self.xp.get_default_memory_pool()
        return int(free) + int(pool.free_bytes())

    def total_memory(self) -> int:
        return int(self.xp.cuda.runtime.memGetInfo()[1])

    def launch(self, kernel, nthreads: int, *args, block: int = 256):
        if nthreads <= 0:
            return
        grid = min((nthreads + block - 1) // block, 65535 * 8)
        ptr = self.xp.cuda.get_current_stream().ptr
        # cupy's work runs on its current stream: launch there (0 is the legacy default)
        stream = self._cuda.default_stream() if ptr == 0 else self._cuda.external_stream(ptr)
        kernel[grid, block, stream](*args)

    def meta(self, dtype, ndim):
        return self.xp.empty((0,) * ndim, dtype=dtype)


_DEVICES: dict = {}
_DEVICES_LOCK = threading.Lock()


def _cupy_device_count() -> int:
    try:
        cp = importlib.import_module("cupy")
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no cupy, no driver, no device: all mean "none"
        return 0


def select_device(kind: str | None = None):
    """The device the ``"gpu"`` backend runs on.

    ``kind`` (default: dask config ``transfuse.gpu.device``, else ``"auto"``):

    * ``"auto"`` — a :class:`CupyDevice` when cupy imports and sees a CUDA device, else a
      :class:`HostDevice` when numba-cuda's simulator is on (``NUMBA_ENABLE_CUDASIM=1``),
      else :class:`GPUUnavailableError` saying what to install;
    * ``"cupy"`` — a :class:`CupyDevice` or the error;
    * ``"host"`` — a :class:`HostDevice` (kernels in the simulator; numba-cuda needed).

    Examples
    --------
    >>> select_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: transfuse.gpu.device='tpu' is not one of 'auto', 'cupy', 'host'
    """
    if kind is None:
        import dask

        kind = dask.config.get(CONFIG_DEVICE, "auto")
    if kind not in ("auto", "cupy", "host"):
        raise ValueError(f"{CONFIG_DEVICE}={kind!r} is not one of 'auto', 'cupy', 'host'")
    if kind == "auto":
        if _cupy_device_count() > 0:
            kind = "cupy"
        elif simulator_enabled():
            kind = "host"
        else:
            raise GPUUnavailableError(f"executor='gpu' found no CUDA device: {INSTALL_HINT}")
    if kind == "cupy" and _cupy_device_count() == 0:
        raise GPUUnavailableError(f"cupy sees no CUDA device: {INSTALL_HINT}")
    if kind == "host" and not simulator_enabled():
        raise GPUUnavailableError(
            f"{CONFIG_DEVICE}='host' runs the kernels in numba-cuda's simulator: "
            "set NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported"
        )
    with _DEVICES_LOCK:
        if kind not in _DEVICES:
            _numba_cuda()
            _DEVICES[kind] = CupyDevice() if kind == "cupy" else HostDevice()
        return _DEVICES[kind]


class _Slots:
    """A semaphore that also counts how many holders it has now and at most (for tests
    and for the device check's report)."""

    def __init__(self, n: int):
        self.limit = n
        self._sem = threading.BoundedSemaphore(n)
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0

    @contextlib.contextmanager
    def hold(self):
        with self._sem:
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                yield
            finally:
                with self._lock:
                    self.active -= 1


_SLOTS: dict = {}


def chunks_in_flight() -> int:
    """The configured bound (dask config ``transfuse.gpu.chunks_in_flight``, default 2)."""
    import dask

    n = dask.config.get(CONFIG_IN_FLIGHT, 2)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{CONFIG_IN_FLIGHT}={n!r} must be a positive integer")
    return int(n)


def device_slots(device) -> _Slots:
    """The semaphore of ``device`` for the current bound: a task holds one slot while its
    data is on the device. One semaphore per (device, bound), so changing the config
    starts a fresh one."""
    n = chunks_in_flight()
    key = (id(device), n)
    with _DEVICES_LOCK:
        if key not in _SLOTS:
            _SLOTS[key] = _Slots(n)
        return _SLOTS[key]
