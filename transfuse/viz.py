"""Pictures of images, transforms and plans (matplotlib; the ``viz`` extra).

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot, so it works
in scripts, on servers and in tests (no window, no global state): save it with
``fig.savefig("out.png")``, or let a notebook show it (after ``%matplotlib inline`` or
``import matplotlib.pyplot``).

Images may be numpy arrays, dask arrays or lazy images. An image of 3 or more axes shows
the plane at ``index`` along ``axis`` (default: the middle one); a lazy image computes only
that plane (the plane is fused into its plan), subsampled to at most ``max_size`` a side.
"""

from __future__ import annotations

import math

import numpy as np

from .explore import preview_plane

__all__ = ["checkerboard", "compare", "difference", "footprint_overlay", "warped_grid"]


def _figure(ncols: int, nrows: int = 1, size: float = 3.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * ncols + 0.4, size * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def plane(image, index=None, axis=0, max_size=None) -> np.ndarray:
    """One 2-D plane of ``image`` as numpy (the whole image when it has 1 or 2 axes).

    Lazy images compute only that plane, subsampled to at most ``max_size`` a side.

    Examples
    --------
    >>> import numpy as np
    >>> plane(np.arange(24).reshape(2, 3, 4), index=1).shape
    (3, 4)
    """
    if hasattr(image, "steps") and hasattr(image, "plan"):  # a LazyImage
        return preview_plane(image, max_size, index, axis)
    arr = image
    ndim = len(arr.shape)
    if ndim >= 3:
        axis = axis % ndim
        index = arr.shape[axis] // 2 if index is None else index
        arr = arr[(slice(None),) * axis + (index,)]
        while arr.ndim > 2:  # further leading axes: their middle
            arr = arr[arr.shape[0] // 2]
    if max_size:
        stride = max(1, math.ceil(max(arr.shape) / max_size))
        arr = arr[(slice(None, None, stride),) * arr.ndim]
    out = np.asarray(arr.compute() if hasattr(arr, "compute") else arr)
    return np.atleast_2d(out)


def _limits(*arrays):
    values = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return lo, (hi if hi > lo else lo + 1.0)


def compare(*images, titles=None, index=None, axis=0, max_size=512, cmap="gray", size=3.2):
    """Images side by side with shared colour limits: before/after, or small multiples.

    Parameters
    ----------
    *images : array_like, dask arrays or LazyImage
        Two or more (before, after, ...).
    titles : sequence of str, optional
        Default ``("before", "after")`` for two images, ``0, 1, ...`` otherwise.
    index, axis : int, optional
        The plane shown of images with 3 or more axes.
    max_size : int
        Each image is subsampled to at most this many pixels a side.
    cmap : str
    size : float
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> x = np.random.default_rng(0).random((32, 32))
    >>> fig = compare(x, transfuse.lazy(x, chunks=16).rotate(30, reshape=False))
    >>> [ax.get_title() for ax in fig.axes]
    ['before', 'after']
    """
    if len(images) < 1:
        raise ValueError("compare() needs at least one image")
    if titles is None:
        titles = ("before", "after") if len(images) == 2 else [str(i) for i in range(len(images))]
    if len(titles) != len(images):
        raise ValueError(f"titles: {len(titles)} title(s) for {len(images)} image(s)")
    planes = [plane(im, index, axis, max_size) for im in images]
    lo, hi = _limits(*planes)
    ncols = min(len(planes), 6)
    nrows = math.ceil(len(planes) / ncols)
    fig, axes = _figure(ncols, nrows, size)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(planes):
            ax.set_axis_off()
            continue
        ax.imshow(planes[k], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(str(titles[k]))
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _pair(a, b, index, axis, max_size):
    pa, pb = plane(a, index, axis, max_size), plane(b, index, axis, max_size)
    if pa.shape != pb.shape:
        raise ValueError(f"the two images differ in shape: {pa.shape} and {pb.shape}")
    return pa, pb


def checkerboard(a, b, tiles=8, *, index=None, axis=0, max_size=512, cmap="gray", size=4.0):
    """A checkerboard of two images of one shape: tiles alternate between ``a`` and ``b``,
    so edges that do not line up show as steps at the tile borders.

    Examples
    --------
    >>> import numpy as np
    >>> fig = checkerboard(np.zeros((16, 16)), np.ones((16, 16)), tiles=4)
    >>> data = fig.axes[0].images[0].get_array()
    >>> float(data[0, 0]), float(data[0, 4]), float(data[4, 0])
    (0.0, 1.0, 1.0)
    """
    pa, pb = _pair(a, b, index, axis, max_size)
    if isinstance(tiles, int | np.integer):
        tiles = (int(tiles), int(tiles))
    ty, tx = (max(1, math.ceil(n / t)) for n, t in zip(pa.shape, tiles, strict=True))
    yy, xx = np.indices(pa.shape)
    mask = ((yy // ty) + (xx // tx)) % 2 == 1
    board = np.where(mask, pb, pa)
    lo, hi = _limits(pa, pb)
    fig, axes = _figure(1, 1, size)
    ax = axes[0, 0]
    ax.imshow(board, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(f"checkerboard ({tiles[0]}x{tiles[1]} tiles)")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def difference(a, b, *, index=None, axis=0, max_size=512, cmap="RdBu_r", size=4.0):
    """``a - b`` with a diverging colour map centred on 0 and a colour bar; the title gives
    the largest absolute difference.

    Examples
    --------
    >>> import numpy as np
    >>> fig = difference(np.ones((8, 8)), np.zeros((8, 8)))
    >>> fig.axes[0].get_title()
    'a - b (max |a - b| = 1)'
    """
    pa, pb = _pair(a, b, index, axis, max_size)
    diff = pa.astype(np.float64) - pb.astype(np.float64)
    finite = diff[np.isfinite(diff)]
    m = float(np.abs(finite).max()) if finite.size else 0.0
    fig, axes = _figure(1, 1, size)
    ax = axes[0, 0]
    im = ax.imshow(diff, cmap=cmap, vmin=-(m or 1.0), vmax=m or 1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(f"a - b (max |a - b| = {m:.3g})")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def warped_grid(
    transform,
    shape,
    step=None,
    *,
    axes=(-2, -1),
    position=None,
    image=None,
    samples=200,
    size=4.5,
    color="tab:orange",
):
    """Grid lines of the output grid mapped through ``transform`` (``T(points)``): where each
    output row and column reads the input. Straight lines stay straight under affine maps;
    non-linear maps bend them.

    Parameters
    ----------
    transform : Transform
        A pull map of ``len(shape)`` dimensions (bound: no free symbols).
    shape : tuple of int
        The output grid.
    step : int, optional
        Samples between grid lines (default: about 12 lines a side).
    axes : pair of int
        The plane drawn, for grids of 3 or more axes; the other coordinates are fixed at
        ``position`` (default: the grid's centre).
    image : 2-D array, optional
        The input plane, drawn underneath (index space).
    samples : int
        Points per line.

    Returns
    -------
    matplotlib.figure.Figure
        The dashed grey lines are the identity grid; the coloured lines its image.

    Examples
    --------
    >>> import transfuse
    >>> y, x = transfuse.symbols("y x")
    >>> swirl = transfuse.ExprMap(["y + 3 * sin(x / 10)", "x"], (y, x))
    >>> fig = warped_grid(swirl, (64, 64), step=16)
    >>> len(fig.axes[0].lines)
    16
    """
    shape = tuple(int(n) for n in shape)
    nd = len(shape)
    if nd < 2:
        raise ValueError(f"shape={shape} must have at least 2 axes")
    ay, ax_ = (a % nd for a in axes)
    if ay == ax_:
        raise ValueError(f"axes={axes} must be two different axes")
    centre = [(n - 1) / 2 for n in shape] if position is None else [float(v) for v in position]
    if len(centre) != nd:
        raise ValueError(f"position={position} must give {nd} coordinates")
    ny, nx = shape[ay], shape[ax_]
    step = step or max(1, math.ceil(max(ny, nx) / 12))
    fig, axs = _figure(1, 1, size)
    ax = axs[0, 0]
    if image is not None:
        ax.imshow(plane(image), cmap="gray", interpolation="nearest")
    t = np.linspace(0, 1, samples)
    lines = []
    for yv in np.arange(0, ny, step, dtype=float):
        lines.append((np.full(samples, yv), t * (nx - 1)))
    for xv in np.arange(0, nx, step, dtype=float):
        lines.append((t * (ny - 1), np.full(samples, xv)))
    for ys, xs in lines:
        pts = np.tile(np.asarray(centre, dtype=np.float64), (samples, 1))
        pts[:, ay], pts[:, ax_] = ys, xs
        mapped = np.asarray(transform(pts))
        ax.plot(xs, ys, color="0.6", lw=0.6, ls="--")
        ax.plot(mapped[:, ax_], mapped[:, ay], color=color, lw=1.2)
    if image is None:
        ax.set_ylim(ny - 0.5 + step, -0.5 - step)
        ax.set_xlim(-0.5 - step, nx - 0.5 + step)
    ax.set_aspect("equal")
    ax.set_xlabel(f"axis {ax_} (input index)")
    ax.set_ylabel(f"axis {ay} (input index)")
    ax.set_title("output grid mapped to the input")
    return fig


def _mapped_border(run, box, n: int = 50):
    """Input coordinates of the border of an output ``box`` (``None`` if the map cannot be
    evaluated on points)."""
    nd = len(box)
    oy, ox = (nd - 2, nd - 1) if nd >= 2 else (None, 0)
    centre = np.array([(s + e - 1) / 2 for s, e in box], dtype=np.float64)
    t = np.linspace(0, 1, n)
    x0, x1 = box[ox][0], box[ox][1] - 1
    if oy is None:
        ring = [np.stack([x0 + t * (x1 - x0)], 1)]
    else:
        y0, y1 = box[oy][0], box[oy][1] - 1
        ring = [
            np.stack([np.full(n, y0), x0 + t * (x1 - x0)], 1),
            np.stack([y0 + t * (y1 - y0), np.full(n, x1)], 1),
            np.stack([np.full(n, y1), x1 - t * (x1 - x0)], 1),
            np.stack([y1 - t * (y1 - y0), np.full(n, x0)], 1),
        ]
    ring = np.concatenate(ring)
    pts = np.tile(centre, (len(ring), 1))
    if oy is None:
        pts[:, ox] = ring[:, 0]
    else:
        pts[:, oy], pts[:, ox] = ring[:, 0], ring[:, 1]
    view = getattr(run.last, "view", None)
    if view is not None:  # view indices -> indices of the step's own grid
        base = np.empty((len(pts), len(view.axes)))
        for a, (j, start, step) in enumerate(view.axes):
            base[:, a] = start if j is None else start + step * pts[:, j]
        pts = base
    try:
        return np.asarray(run.transform(pts))
    except (ValueError, TypeError, NotImplementedError):  # a map that cannot take points
        return None


def footprint_overlay(plan, block_index=None, pass_index=0, *, axes=None, image=None, size=4.5):
    """Which input chunks one output chunk reads, over the input.

    Draws the input's chunk grid in the plane of two input ``axes`` (default: the last
    two), fills the chunks the output chunk ``block_index`` reads (its footprint: a product
    of per-axis chunk sets, so exact in the plane), outlines the range of its input
    coordinates (dashed), and draws the output chunk's border mapped through the pass's
    transform (solid, in the plane through the chunk's centre).

    Parameters
    ----------
    plan : Plan or LazyImage
    block_index : tuple of int, optional
        The output chunk, by block index (default: the middle one).
    pass_index : int
        Which resampling pass.
    image : 2-D array, optional
        The pass's input plane, drawn underneath.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> img = transfuse.lazy(np.ones((60, 60)), chunks=20).rotate(30, reshape=False, order=1)
    >>> fig = footprint_overlay(img.plan(), (0, 0))
    >>> print(fig.axes[0].get_title())
    pass 1, output block (0, 0)
    reads 2 of 9 input chunks
    """
    from matplotlib.patches import Rectangle

    from .display import default_block

    if not hasattr(plan, "passes"):
        plan = plan.plan()
    p = plan.passes[pass_index]
    block = default_block(p) if block_index is None else tuple(block_index)
    if block not in p.footprints:
        raise ValueError(f"block_index={block} is not a block of the output {p.output.chunks}")
    fp = p.footprints[block]
    nd = p.input.ndim
    if nd < 2:
        raise ValueError("footprint_overlay() draws a plane: the pass's input has one axis")
    ay, ax_ = (nd - 2, nd - 1) if axes is None else (a % nd for a in axes)
    bounds = [np.concatenate([[0], np.cumsum(c)]) - 0.5 for c in p.input.chunks]
    fig, axs = _figure(1, 1, size)
    ax = axs[0, 0]
    ink = "k"
    if image is not None:
        ax.imshow(plane(image), cmap="gray", interpolation="nearest")
        ink = "yellow"
    if fp.axes is not None:
        for i in fp.axes[ay].chunks:
            for j in fp.axes[ax_].chunks:
                y0, y1 = bounds[ay][i], bounds[ay][i + 1]
                x0, x1 = bounds[ax_][j], bounds[ax_][j + 1]
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="tab:red", alpha=0.35))
        wy, wx = fp.axes[ay], fp.axes[ax_]
        ax.add_patch(
            Rectangle(
                (wx.first, wy.first),
                wx.last - wx.first,
                wy.last - wy.first,
                fill=False,
                ls="--",
                lw=1.2,
                color=ink,
                zorder=4,
            )
        )
    for b in bounds[ay]:
        ax.axhline(b, color="tab:cyan", lw=0.8, zorder=3)
    for b in bounds[ax_]:
        ax.axvline(b, color="tab:cyan", lw=0.8, zorder=3)
    # the output chunk's border (in the plane of the output's last two axes, through the
    # chunk's centre), mapped through the pass's transform (after its view, if any)
    box = fp.box
    mapped = _mapped_border(plan.runs[pass_index], box)
    if mapped is not None:
        ax.plot(mapped[:, ax_], mapped[:, ay], color="tab:blue", lw=1.5, zorder=5)
    ax.set_xlim(bounds[ax_][0], bounds[ax_][-1])
    ax.set_ylim(bounds[ay][-1], bounds[ay][0])
    ax.set_aspect("equal")
    ax.set_xlabel(f"input axis {ax_}")
    ax.set_ylabel(f"input axis {ay}")
    total = int(np.prod([len(c) for c in p.input.chunks]))
    nread = len(fp.dependencies)
    ax.set_title(
        f"pass {pass_index + 1}, output block {block}\nreads {nread} of {total} input chunks"
    )
    return fig
