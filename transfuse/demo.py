"""The built-in demo: a generated volume, a three-step chain, one fused resample."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["check_demo_output", "demo_volume", "run_demo"]


def demo_volume(size: int = 96, seed: int = 0) -> np.ndarray:
    """A synthetic float32 volume: Gaussian blobs on a smooth background, plus a bright
    axis-aligned bar so that rotations are easy to see in a slice."""
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3, dtype=np.float32) / size
    vol = 0.1 * (1 + np.sin(2 * np.pi * grid[0]) * np.cos(2 * np.pi * grid[2]))
    for _ in range(8):
        c = rng.uniform(0.25, 0.75, 3)
        s = rng.uniform(0.04, 0.09)
        vol += np.exp(-(((grid - c[:, None, None, None]) ** 2).sum(0)) / (2 * s * s))
    bar = (np.abs(grid[1] - 0.5) < 0.04) & (np.abs(grid[2] - 0.5) < 0.04)
    vol[bar] += 1.0
    return vol.astype(np.float32)


def check_demo_output(output, overwrite: bool = False) -> Path:
    """Check, before anything is computed, that the demo can write ``output``: a ``.npy``
    name in an existing directory, not already there unless ``overwrite``.

    Raises
    ------
    transfuse.io.arrays.ImageFileError
        (a ``ValueError``) saying what is wrong.
    """
    from .io.arrays import ImageFileError, check_output

    path = Path(output)
    if path.suffix.lower() != ".npy":
        raise ImageFileError(
            f"{str(path)!r}: the demo writes a .npy file; give a name ending in .npy"
        )
    check_output(path, overwrite)
    return path


def demo_steps(size: int):
    """The demo's three steps for a ``size``³ volume: a rotation, a scale and a rotation,
    each about the centre.

    Examples
    --------
    >>> [type(t).__name__ for t in demo_steps(8)]
    ['Rotate', 'Compose', 'Rotate']
    """
    import transfuse as tf

    c = ((size - 1) / 2,) * 3
    rotate_xy = tf.Rotate(20, axes=(0, 1), center=c)
    scale = tf.Translate(c) @ tf.Scale((1 / 1.1,) * 3) @ tf.Translate(tuple(2 - v for v in c))
    rotate_yz = tf.Rotate(-10, axes=(1, 2), center=c)
    return rotate_xy, scale, rotate_yz


def warm_up_demo() -> float:
    """Compile (or load from numba's disk cache) everything the demo's pass runs — the
    interpolation kernel and the compiled tap tables of each chunk — by running the same
    chain on a 12³ volume with the cold start off, so that the demo's timing is not a
    first use's; the seconds it took.

    Examples
    --------
    >>> warm_up_demo() >= 0.0
    True
    """
    import dask

    import transfuse as tf

    t0 = time.perf_counter()
    image = tf.lazy(demo_volume(12), chunks=6)
    for step in demo_steps(12):
        image = image.transform(step, order=1)
    with dask.config.set({"transfuse.cold_start_voxels": 0}):
        image.compute(scheduler="sync")
    return time.perf_counter() - t0


def run_demo(
    size: int = 96,
    chunks: int = 32,
    output: str = "transfuse-demo-output.npy",
    out=print,
    overwrite: bool = False,
) -> np.ndarray:
    """Rotate, scale and rotate again a generated volume with one fused resample.

    Prints the plan and a comparison with running the three steps one after the other in
    scipy.ndimage, saves the result to ``output`` and returns it.

    ``output`` must end in ``.npy`` and lie in an existing directory; an existing file is
    replaced only with ``overwrite=True``. Both are checked before anything is computed.
    The file is written under a temporary name in the same directory and renamed into place
    once complete, so ``output`` never holds half a result.

    Raises
    ------
    transfuse.io.arrays.ImageFileError
        (a ``ValueError``) for a bad or existing ``output``.
    OSError
        When writing fails (the temporary file is removed).
    """
    import dask
    import scipy.ndimage as ndi

    import transfuse as tf

    from .io.arrays import atomic_output

    path = check_demo_output(output, overwrite)

    x = demo_volume(size)
    rotate_xy, scale, rotate_yz = demo_steps(size)
    image = (
        tf.lazy(x, chunks=chunks)
        .transform(rotate_xy, order=1)
        .transform(scale, order=1)
        .transform(rotate_yz, order=1)
    )
    out(f"transfuse demo: {size}^3 float32 volume, chunks {chunks}^3\n")
    compile_s = warm_up_demo()
    if compile_s > 1.0:
        out(f"compiled the kernels: {compile_s:.1f} s (first use here; cached on disk now)\n")
    out(image.explain())
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        result = image.compute()
    t_fused = time.perf_counter() - t0

    t0 = time.perf_counter()
    seq = x
    for step in (rotate_xy, scale, rotate_yz):
        seq = ndi.affine_transform(seq, step.matrix(), order=1)
    t_seq = time.perf_counter() - t0
    composed = (rotate_xy @ scale @ rotate_yz).matrix()
    single = ndi.affine_transform(x, composed, order=1)
    out("")
    out(f"fused (transfuse, dask threads): {t_fused:.3f} s")
    out(f"three scipy.ndimage calls:       {t_seq:.3f} s")
    out(
        f"max |transfuse - one scipy call with the composed matrix| = "
        f"{float(np.abs(result - single).max()):.2e}"
    )
    with atomic_output(path, overwrite) as partial:
        with open(partial, "wb") as fh:  # a file object: np.save adds no suffix
            np.save(fh, result)
    out(f"saved {result.shape} {result.dtype} to {path}")
    return result
