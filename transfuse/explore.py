"""A parameter explorer for lazy images with free symbols (ipywidgets; the ``explorer`` extra).

``explore(img, theta=(-45, 45))`` shows one slider per free symbol; moving one rebinds the
symbols (``img.bind(theta=v)``) and recomputes only a *preview*: one plane of the result,
downsampled to at most ``max_size`` samples a side. The preview is a lazy view
(``img[k, ::s, ::s]``) fused into the plan, so it reads only the input chunks that plane
needs and computes only the preview's samples.

Measured on a 256³ float32 volume in chunks of 64³ (``benchmarks/bench_explorer.py``, median
of 7 moves, 2 cores shared with other jobs, load average 5): a slider move (bind, plan,
compute a 256² preview, encode the PNG) takes 62 ms at order 1 (25 tasks), against 3.2 s to
compute the whole bound volume (125 tasks). At order 3 a move takes 1.4 s, most of it the
spline prefilter of the coefficients under the plane (the whole volume: 25 s), and 55 ms with
``preview_order=1`` (a preview at order 1 of the order-3 chain: no prefilter).

The callback is a plain method, :meth:`Explorer.update`, so it runs (and is tested) without a
browser; the widgets are built only when the explorer is displayed.
"""

from __future__ import annotations

import dataclasses
import io
import math
import numbers
import time

import numpy as np

from .lazy import LazyImage
from .planner.expr import Step

__all__ = ["Explorer", "explore"]


def _retrail(expr, old, new):
    """The chain with the options of its trailing run (steps with options ``old``) set to
    ``new``: the run still fuses into one pass."""
    if not isinstance(expr, Step) or expr.options != old:
        return expr
    return dataclasses.replace(expr, child=_retrail(expr.child, old, new), options=new)


def _preview_image(
    img: LazyImage, max_size: int | None = 256, index=None, axis: int = 0, order=None
):
    """A lazy view of one plane of ``img`` (images of 3 or more axes: the plane at ``index``
    along ``axis``, which is dropped), subsampled with one integer stride for every axis
    (the aspect ratio is kept) so that no side exceeds ``max_size``. It is a lazy view
    (``img[index, ::k, ::k]``): composed into the plan, so only the preview's samples are
    computed and only the input chunks they touch are read; values equal the full result's
    at the same points (bit for bit at orders 0 and 1).

    ``order`` (optional) replaces the spline order of the last resampling pass (the trailing
    run of steps with the last step's options, so that they still fuse): a preview at order
    1 of an order-3 chain skips the spline prefilter, which dominates the cost.
    """
    shape = img.shape
    nd = len(shape)
    sliced = nd >= 3
    if sliced:
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"axis={axis!r} must be an integer")
        if not -nd <= axis < nd:
            raise ValueError(f"axis={axis} is out of range for a {nd}-D image")
        axis = int(axis) % nd
        n = shape[axis]
        index = n // 2 if index is None else index
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise ValueError(f"slice={index!r} must be an integer index")
        if not -n <= index < n:
            raise ValueError(f"slice={index} is out of range for axis {axis} of length {n}")
        index = int(index) % n
    kept = [a for a in range(nd) if not (sliced and a == axis)]
    longest = max(shape[a] for a in kept)
    stride = 1 if not max_size else max(1, math.ceil(longest / int(max_size)))
    steps = img.steps
    # a view that drops an axis of a CoordinateMap's own grid fails to compute (lazy.py):
    # keep that axis (length 1) there; preview_plane drops it
    pick = index
    if sliced and steps and getattr(steps[-1].transform, "output_shape", None) is not None:
        pick = slice(index, index + 1)
    key = tuple(pick if (sliced and a == axis) else slice(None, None, stride) for a in range(nd))
    if steps and order is not None and order != steps[-1].options.order:
        last = steps[-1].options
        img = LazyImage(
            _retrail(img._expr, last, dataclasses.replace(last, order=order)), img._array
        )
    return img[key]


def preview_plane(
    img: LazyImage, max_size: int | None = 256, index=None, axis: int = 0, executor=None, order=None
):
    """The preview of ``img`` as a numpy array (2-D for images of 2 or more axes): one plane,
    subsampled to at most ``max_size`` a side (see :func:`_preview_image`).

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> x = np.random.default_rng(0).random((40, 60, 80))
    >>> img = transfuse.lazy(x, chunks=20).rotate(10, axes=(1, 2), reshape=False, order=1)
    >>> p = preview_plane(img, max_size=20, index=5)
    >>> p.shape
    (15, 20)
    >>> bool((p == img.compute()[5, ::4, ::4]).all())
    True
    """
    out = np.asarray(_preview_image(img, max_size, index, axis, order).compute(executor=executor))
    if img.ndim >= 3 and out.ndim == img.ndim:  # the kept length-1 axis (see above)
        out = out.reshape([n for a, n in enumerate(out.shape) if a != axis % img.ndim])
    return out


def _check_ranges(img: LazyImage, ranges: dict) -> dict:
    free = sorted({s.name for st in img.steps for s in st.transform.free_symbols})
    if not free:
        raise ValueError("explore(): the image has no free symbols to explore")
    unknown = sorted(set(ranges) - set(free))
    if unknown:
        raise ValueError(f"explore(): {', '.join(unknown)} not among the free symbols {free}")
    missing = [name for name in free if name not in ranges]
    if missing:
        raise ValueError(
            f"explore(): give a range for every free symbol: {', '.join(missing)} "
            f"(e.g. {missing[0]}=(-45, 45))"
        )
    out = {}
    for name, spec in ranges.items():
        try:
            values = [float(v) for v in spec]
        except TypeError as exc:
            raise ValueError(f"{name}={spec!r} must be (min, max) or (min, max, step)") from exc
        if len(values) not in (2, 3) or not all(map(math.isfinite, values)):
            raise ValueError(f"{name}={spec!r} must be (min, max) or (min, max, step)")
        lo, hi = values[:2]
        if not lo < hi:
            raise ValueError(f"{name}={spec!r}: min must be below max")
        step = values[2] if len(values) == 3 else (hi - lo) / 100
        if not step > 0:
            raise ValueError(f"{name}={spec!r}: step must be positive")
        out[name] = (lo, hi, step)
    return out


class Explorer:
    """Sliders for the free symbols of a lazy image and a preview that follows them.

    Build it with :func:`explore`. :meth:`update` is the slider callback: it binds the
    values, recomputes the preview and returns it (a numpy array); :attr:`widget` holds the
    ipywidgets (built on first use; ``ipywidgets`` and ``matplotlib`` are needed then).

    Attributes
    ----------
    values : dict
        The current value of every symbol.
    image : numpy.ndarray or None
        The last preview.
    timings : list of float
        Seconds each :meth:`update` took (bind, plan, compute, and the PNG when a widget
        shows it).
    """

    def __init__(
        self,
        img,
        ranges,
        index=None,
        axis=0,
        max_size=256,
        executor=None,
        cmap="gray",
        continuous_update=True,
        preview_order=None,
    ):
        if not isinstance(img, LazyImage):
            raise ValueError(f"explore(): {img!r} is not a LazyImage (use transfuse.lazy)")
        self._img = img
        self.ranges = _check_ranges(img, ranges)
        self.index, self.axis, self.max_size = index, axis, max_size
        self.executor, self.cmap, self.continuous_update = executor, cmap, continuous_update
        self.preview_order = preview_order
        self.values = {name: _start(lo, hi) for name, (lo, hi, _) in self.ranges.items()}
        self.image: np.ndarray | None = None
        self.timings: list[float] = []
        self._limits = None
        self._widget = None

    def preview_image(self, **values) -> LazyImage | None:
        """The lazy preview for ``values`` (default: the current values), uncomputed."""
        bound = self._img.bind(**{**self.values, **values})
        return _preview_image(bound, self.max_size, self.index, self.axis, self.preview_order)

    def update(self, **values) -> np.ndarray:
        """Rebind (changing the given symbols), recompute the preview and return it."""
        start = time.perf_counter()
        unknown = sorted(set(values) - set(self.values))
        if unknown:
            raise ValueError(f"update(): {', '.join(unknown)} not among {sorted(self.values)}")
        self.values.update({k: float(v) for k, v in values.items()})
        bound = self._img.bind(**self.values)
        self.image = preview_plane(
            bound, self.max_size, self.index, self.axis, self.executor, self.preview_order
        )
        if self._limits is None:
            finite = self.image[np.isfinite(self.image)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            self._limits = (lo, hi if hi > lo else lo + 1.0)
        if self._widget is not None:
            self._show()
        self.timings.append(time.perf_counter() - start)
        return self.image

    # -- widgets ---------------------------------------------------------------------------
    def png(self) -> bytes:
        """The last preview as PNG bytes (matplotlib's colour maps, fixed limits)."""
        from matplotlib import image as mimage

        if self.image is None:
            self.update()
        buf = io.BytesIO()
        img = self.image if self.image.ndim == 2 else np.atleast_2d(self.image)
        mimage.imsave(
            buf, img, cmap=self.cmap, vmin=self._limits[0], vmax=self._limits[1], format="png"
        )
        return buf.getvalue()

    def _show(self):
        self._widget.children[-2].value = self.png()
        last = self.timings[-1] if self.timings else float("nan")
        values = ", ".join(f"{k}={v:g}" for k, v in self.values.items())
        self._widget.children[-1].value = f"{values} — last update {last * 1000:.0f} ms"

    @property
    def widget(self):
        """The ipywidgets box: one slider per symbol, the preview image, a status line."""
        if self._widget is None:
            import ipywidgets as w

            sliders = []
            for name, (lo, hi, step) in self.ranges.items():
                s = w.FloatSlider(
                    value=self.values[name],
                    min=lo,
                    max=hi,
                    step=step,
                    description=name,
                    continuous_update=self.continuous_update,
                )
                s.observe(
                    lambda change, name=name: self.update(**{name: change["new"]}), names="value"
                )
                sliders.append(s)
            picture = w.Image(format="png")
            status = w.Label()
            self._widget = w.VBox([*sliders, picture, status])
            if self.image is None:
                self.update()
            self._show()
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def __repr__(self):
        values = ", ".join(f"{k}={v:g}" for k, v in self.values.items())
        return f"<Explorer {values} preview max_size={self.max_size}>"


def _start(lo: float, hi: float) -> float:
    return 0.0 if lo <= 0.0 <= hi else (lo + hi) / 2


def explore(
    img,
    *,
    slice=None,
    axis=0,
    max_size=256,
    executor=None,
    cmap="gray",
    continuous_update=True,
    preview_order=None,
    **ranges,
) -> Explorer:
    """Explore the free symbols of a lazy image with sliders and a fast preview.

    Parameters
    ----------
    img : LazyImage
        A chain with free symbols (sympy parameters, see :func:`transfuse.symbols`).
    slice : int, optional
        For images of 3 or more axes, the index of the plane shown along ``axis``
        (default: the middle one).
    axis : int
        The axis ``slice`` indexes.
    max_size : int
        The preview's longest side at most (the plane is subsampled with an integer stride).
    executor : str or executor, optional
        The backend computing the preview (see :meth:`transfuse.LazyImage.to_dask`).
    cmap : str
        Matplotlib colour map of the preview.
    continuous_update : bool
        Recompute while a slider is dragged (True) or on release.
    preview_order : int, optional
        Spline order of the preview's last pass (default: the chain's own). ``1`` makes
        dragging fast for an order-3 chain (no spline prefilter), at a preview's accuracy.
    **ranges : (min, max) or (min, max, step)
        One range per free symbol, by name; sliders start at 0 when the range holds it,
        else in the middle.

    Returns
    -------
    Explorer
        Displays as the widgets in a notebook; ``explorer.update(theta=10)`` recomputes
        and returns the preview without a browser.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> from transfuse.explore import explore
    >>> theta = transfuse.symbols("theta")
    >>> x = np.random.default_rng(0).random((32, 64, 64))
    >>> img = transfuse.lazy(x, chunks=16).transform(
    ...     transfuse.Rotate(theta, axes=(1, 2), center=(0, 31.5, 31.5)), order=1)
    >>> ex = explore(img, theta=(-45, 45), max_size=32)
    >>> ex.update(theta=20).shape
    (32, 32)
    """
    return Explorer(
        img, ranges, slice, axis, max_size, executor, cmap, continuous_update, preview_order
    )
