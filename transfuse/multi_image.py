"""Several images onto one grid, through one transform, in one plan.

:func:`resample` puts an intensity image, its label map and a mask (any number of images)
onto one output grid, each with its own interpolation options; :func:`compute_all`
computes them together so that the work they share is done once.
"""

from __future__ import annotations

import numbers

import dask
import numpy as np

__all__ = ["compute_all", "resample"]


def _per_image(value, count: int, name: str) -> list:
    """A scalar for every image, or a tuple/list of one value per image."""
    if isinstance(value, tuple | list):
        if len(value) != count:
            raise ValueError(f"{name}={value!r} has {len(value)} entries for {count} images")
        return list(value)
    return [value] * count


def _label_flags(labels, count: int) -> list[bool]:
    """``labels``: None, one bool per image, or the indices of the label images."""
    if labels is None:
        return [False] * count
    if isinstance(labels, bool | np.bool_):
        return [bool(labels)] * count
    items = list(labels)
    if len(items) == count and all(isinstance(v, bool | np.bool_) for v in items):
        return [bool(v) for v in items]
    flags = [False] * count
    for i in items:
        if isinstance(i, bool | np.bool_) or not isinstance(i, numbers.Integral):
            raise ValueError(f"labels={labels!r}: give one bool per image or image indices")
        if not -count <= i < count:
            raise ValueError(f"labels={labels!r}: index {i} is out of range for {count} images")
        flags[int(i)] = True
    return flags


def resample(
    images,
    transform=None,
    onto=None,
    space="physical",
    order=3,
    mode="constant",
    cval=0.0,
    prefilter=True,
    output=None,
    output_chunks=None,
    labels=None,
):
    """Resample several images onto one grid through one transform.

    Each image gets its own interpolation options; every option may be one value for all
    images or a tuple of one per image. Images computed together (:func:`compute_all`, or
    ``dask.compute`` on their :meth:`~transfuse.LazyImage.to_dask`) share what they can:
    the plan's field coefficients always, and, for a non-affine map, the fused
    coordinates of each output chunk, computed once for all the images on the same input
    grid (an affine map costs less to recompute in every task than to pass around).

    Parameters
    ----------
    images : sequence of LazyImage or arrays
        The inputs (arrays are wrapped with :func:`transfuse.lazy`).
    transform : Transform, optional
        The pull map, as for :meth:`~transfuse.LazyImage.resample` (default: identity).
    onto : Grid or LazyImage, optional
        The output grid (default: the first image's grid).
    space : {"physical", "index"}
    order, mode, cval, prefilter, output : scalar or one per image
        As for :meth:`~transfuse.LazyImage.resample`. Scalars apply to the images that are
        not labels.
    output_chunks : optional
        Output chunks of every image.
    labels : sequence of bool or of int, optional
        Which images are label maps (one bool per image, or their indices). A label map
        is never interpolated: order 0, mode ``"constant"`` and cval 0 unless a per-image
        entry says otherwise, its integer dtype kept, so no new label values appear; an
        order above 0 for a label map is a ValueError. Images not marked keep ``order``
        even when their dtype is an integer (scipy rounds the interpolated values).

    Returns
    -------
    list of LazyImage
        On ``onto``, in the order of ``images``.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> intensity = np.random.default_rng(0).random((20, 20))
    >>> seg = (intensity > 0.5).astype(np.uint8) * 3
    >>> g = transfuse.Grid((20, 20), spacing=0.8)
    >>> T = transfuse.Rotate(15.0, axes=(0, 1), center=(8.0, 8.0))
    >>> out, lab = transfuse.resample([intensity, seg], T, onto=g, labels=[1])
    >>> a, b = transfuse.compute_all([out, lab])
    >>> b.dtype, sorted(set(np.unique(b)) - {0, 3})
    (dtype('uint8'), [])
    """
    from .lazy import LazyImage, lazy

    if isinstance(images, LazyImage) or not isinstance(images, tuple | list):
        raise TypeError(f"images={images!r} must be a list or tuple of images")
    if not images:
        raise ValueError("images=[] is empty: give at least one image")
    imgs = [lazy(im) for im in images]
    count = len(imgs)
    flags = _label_flags(labels, count)
    per = {
        "order": _per_image(order, count, "order"),
        "mode": _per_image(mode, count, "mode"),
        "cval": _per_image(cval, count, "cval"),
        "prefilter": _per_image(prefilter, count, "prefilter"),
        "output": _per_image(output, count, "output"),
    }
    # a scalar option is for the intensities: label maps keep their own defaults
    given = {"order": order, "mode": mode, "cval": cval}
    for name, default in {"order": 0, "mode": "constant", "cval": 0.0}.items():
        if not isinstance(given[name], tuple | list):
            per[name] = [default if f else v for f, v in zip(flags, per[name], strict=True)]
    for i, is_label in enumerate(flags):
        if not is_label:
            continue
        if per["order"][i] != 0:
            raise ValueError(
                f"order={per['order'][i]!r} for image {i}, a label map: labels are never "
                "interpolated (use order 0, or leave it out of labels=)"
            )
        if np.dtype(imgs[i].dtype).kind not in "biu":
            raise ValueError(
                f"image {i} is marked as labels but has dtype {imgs[i].dtype}: label maps "
                "are integer (or bool) images"
            )
    target = imgs[0].grid if onto is None else onto
    out = []
    for i, img in enumerate(imgs):
        result = img.resample(
            transform,
            onto=target,
            space=space,
            order=per["order"][i],
            mode=per["mode"][i],
            cval=per["cval"][i],
            prefilter=per["prefilter"][i],
            output_chunks=output_chunks,
            output=per["output"][i],
        )
        result._share_map = count > 1
        out.append(result)
    return out


def compute_all(images, executor=None, **kwargs) -> list:
    """Compute lazy images together (one ``dask.compute``: shared tasks run once; on an
    in-process scheduler each result's chunks are written into one array, as
    :meth:`LazyImage.compute` does, so each image's last resampling pass is its own even
    where two images are the same). Results are numpy arrays, or DataArrays for images
    built from DataArrays.

    >>> import numpy as np, transfuse
    >>> a, b = transfuse.compute_all([transfuse.lazy(np.ones(3)).shift(1, order=0),
    ...                               transfuse.lazy(np.zeros(2))])
    >>> a.tolist(), b.tolist()
    ([0.0, 1.0, 1.0], [0.0, 0.0])
    """
    from .xarrays import to_dataarray

    images = list(images)
    collections = []
    for im in images:  # each result written into one array where the scheduler allows
        one = im._one_array(executor, kwargs)
        collections.append(im.to_dask(executor) if one is None else one)
    values = dask.compute(*collections, **kwargs)
    out = []
    for im, v in zip(images, values, strict=True):
        meta = im._xarray_meta
        out.append(v if meta is None else to_dataarray(v, im.grid, meta))
    return out
