"""Rich displays for notebooks: HTML and SVG text of lazy images and plans.

Pure text, numpy and the planner's data: no matplotlib, no dask, no executors, so that
``LazyImage._repr_html_`` and ``Plan._repr_html_`` cost nothing to import and render in any
front end (Jupyter, VS Code, nbconvert). Sizes are bounded whatever the plan: the chain graph
draws at most :data:`MAX_NODES` steps, the footprint picture at most :data:`MAX_CELLS` cells
per side (more chunks are aggregated into a cell), lists are cut with an ellipsis, so a plan
of 10^5 output chunks renders in about 6 kB and 0.2 s (tested: under :data:`MAX_BYTES`).

Functions
---------
plan_html(plan)             the plan: chain before/after fusion (SVG), per pass the fused
                            matrix or map, output geometry, tasks per layer, input chunks per
                            output chunk, and a picture of one output chunk's footprint
lazy_html(image)            a lazy image: shape, dtype, chunks, steps and passes
chain_svg(plan)             the chain as written (top) and its fused passes (bottom)
footprint_svg(pass_, ...)   the input chunks one output chunk reads
"""

from __future__ import annotations

import html
import math

import numpy as np

from .planner.explain import chunks_text
from .planner.plan import fuse, logical

__all__ = [
    "MAX_BYTES",
    "MAX_CELLS",
    "MAX_NODES",
    "chain_svg",
    "footprint_svg",
    "lazy_html",
    "plan_html",
]

#: Steps (and passes) drawn in a chain graph; more are summarised by one node.
MAX_NODES = 10
#: Cells per side of a footprint picture; more chunks along an axis are aggregated.
MAX_CELLS = 64
#: The bound ``plan_html`` stays under for any plan (tested with 10^5 output chunks).
MAX_BYTES = 60_000
#: Output chunks above which ``lazy_html`` does not build the plan (planning costs ~50 µs
#: per output chunk; a repr should stay well under a second).
MAX_PLAN_CHUNKS = 10_000

_STYLE = "font-family:monospace;font-size:12px"
_READ = "#e4572e"
_IDLE = "#f2f2f2"
_GRID = "#bbbbbb"
_NODE = "#dbe9f6"
_PASS = "#fde2c8"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _table(rows) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{_e(k)}</th>"
        f"<td style='text-align:left'>{v}</td></tr>"
        for k, v in rows
    )
    return f"<table style='{_STYLE}'>{cells}</table>"


def _options_text(o) -> str:
    return f"order={o.order} mode={o.mode} cval={o.cval:g} prefilter={o.prefilter}"


# -- the chain graph ---------------------------------------------------------------------------


def _node(x, y, w, h, fill, lines, title="") -> str:
    out = [f"<g><title>{_e(title)}</title>" if title else "<g>"]
    out.append(
        f"<rect x='{x:.0f}' y='{y:.0f}' width='{w:.0f}' height='{h:.0f}' rx='6' "
        f"fill='{fill}' stroke='#555'/>"
    )
    for i, line in enumerate(lines):
        out.append(
            f"<text x='{x + w / 2:.0f}' y='{y + 15 + 13 * i:.0f}' text-anchor='middle'>"
            f"{_e(line)}</text>"
        )
    out.append("</g>")
    return "".join(out)


def _arrow(x0, y0, x1, y1) -> str:
    return (
        f"<line x1='{x0:.0f}' y1='{y0:.0f}' x2='{x1:.0f}' y2='{y1:.0f}' stroke='#555' "
        "marker-end='url(#tf-arrow)'/>"
    )


def _step_lines(step) -> list[str]:
    label = step.label or step.operation
    name = label.split("(")[0]
    args = label[len(name) :] if "(" in label else ""
    lines = [_cut(name, 15)]
    if args:
        lines.append(_cut(args, 15))
    else:
        lines.append(_cut(type(step.transform).__name__, 15))
    lines.append(f"order {step.options.order}, {_cut(step.options.mode, 6)}")
    return lines


def chain_svg(plan) -> str:
    """The chain as written (top row, one node per step) and after fusion (bottom row, one
    node per resampling pass spanning the steps it fuses), as SVG text.

    At most :data:`MAX_NODES` steps are drawn; the rest are summarised by one node.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> p = transfuse.lazy(np.ones((8, 8)), chunks=4).rotate(10).zoom(2).plan()
    >>> svg = chain_svg(p)
    >>> svg.startswith("<svg") and "rotate" in svg and "pass 1" in svg
    True
    """
    return _chain_svg(plan.logical, plan.runs, plan.passes)


def _chain_svg(chain, runs, passes=None) -> str:
    steps = list(chain.steps)
    run_of = []
    for k, run in enumerate(runs):
        run_of.extend([k] * len(run.steps))
    shown = steps[:MAX_NODES]
    extra = len(steps) - len(shown)
    w, h, gap, left = 118, 52, 22, 128
    ncols = len(shown) + (1 if extra else 0)
    width = left + ncols * (w + gap) + 110
    top, bottom = 24, 24 + h + 34
    height = bottom + h + 8
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' style='{_STYLE}'>",
        "<defs><marker id='tf-arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='6' "
        "markerHeight='6' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#555'/></marker>"
        "</defs>",
        f"<text x='4' y='14'>as written: {len(steps)} step(s)</text>",
        f"<text x='{left}' y='{bottom - 6}'>after fusion: {len(runs)} resampling pass(es)</text>",
    ]
    src = chain.source
    shape = "x".join(str(n) for n in src.shape)
    out.append(
        _node(
            4, top, left - 28, bottom + h - top, _NODE, ["source", _cut(shape, 14), str(src.dtype)]
        )
    )
    xs = [left + i * (w + gap) for i in range(ncols)]
    for i, step in enumerate(shown):
        out.append(
            _node(xs[i], top, w, h, _NODE, _step_lines(step), _cut(repr(step.transform), 300))
        )
        x0 = xs[i - 1] + w if i else left - 24
        out.append(_arrow(x0, top + h / 2, xs[i], top + h / 2))
    if extra:
        out.append(_node(xs[-1], top, w, h, _NODE, [f"+{extra} more", "step(s)"]))
        out.append(
            _arrow(xs[-2] + w if len(xs) > 1 else left - 24, top + h / 2, xs[-1], top + h / 2)
        )
    # bottom row: a pass spans the columns of its steps
    prev_end = left - 24
    summary_drawn = False
    for k, run in enumerate(runs):
        cols = [i for i, r in enumerate(run_of) if r == k]
        first, last = min(cols[0], ncols - 1), min(cols[-1], ncols - 1)
        reaches_summary = bool(extra) and last == ncols - 1
        if reaches_summary and summary_drawn:
            continue  # beyond the drawn columns: one node holds the remaining passes
        summary_drawn = reaches_summary
        x, span = xs[first], xs[last] + w - xs[first]
        o = run.options
        n = len(run.steps)
        lines = [
            f"pass {k + 1}: {n} step{'s' if n > 1 else ''}",
            _cut(f"order {o.order}, {o.mode}", 15),
        ]
        if passes is not None:
            lines.append(f"{passes[k].ntasks} tasks")
        if reaches_summary and k < len(runs) - 1:
            lines = [f"passes {k + 1}..{len(runs)}", f"{len(steps) - cols[0]} step(s)"]
        out.append(_node(x, bottom, span, h, _PASS, lines, _cut(repr(run.transform), 300)))
        out.append(_arrow(prev_end, bottom + h / 2, x, bottom + h / 2))
        prev_end = x + span
        for i in range(first, last + 1):  # which steps the pass fuses
            out.append(
                f"<line x1='{xs[i] + w / 2:.0f}' y1='{top + h}' x2='{xs[i] + w / 2:.0f}' "
                f"y2='{bottom}' stroke='#999' stroke-dasharray='3,3'/>"
            )
    out_x = xs[-1] + w + gap if xs else left
    if passes:
        geo = passes[-1].output
        oshape = "x".join(str(n) for n in geo.shape)
        out.append(_node(out_x, bottom, 96, h, _NODE, ["output", _cut(oshape, 14), str(geo.dtype)]))
        out.append(_arrow(prev_end, bottom + h / 2, out_x, bottom + h / 2))
    out.append("</svg>")
    return "".join(out)


# -- the footprint picture ---------------------------------------------------------------------


def _groups(sizes, max_cells):
    """Aggregate consecutive chunks into at most ``max_cells`` groups: per group the chunk
    index range and its extent."""
    n = len(sizes)
    g = max(1, math.ceil(n / max_cells))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for s in range(0, n, g):
        e = min(n, s + g)
        out.append((s, e, float(bounds[s]), float(bounds[e])))
    return out, g


def _runs(hits, groups):
    """Extents ``(start, end)`` of the runs of consecutive hit groups."""
    out = []
    for hit, (_, _, a, b) in zip(hits, groups, strict=True):
        if not hit:
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def default_block(pass_) -> tuple[int, ...]:
    """The output block in the middle of the block grid (a footprint worth looking at)."""
    nblocks = [len(c) for c in pass_.output.chunks]
    mid = tuple(n // 2 for n in nblocks)
    if mid in pass_.footprints:
        return mid
    return next(iter(pass_.footprints))


def footprint_svg(pass_, block=None, axes=None, max_cells: int = MAX_CELLS, size: int = 240):
    """The input chunks one output chunk reads, as SVG text.

    The grid is the pass's input (coefficient) chunks in the plane of two input ``axes``
    (default the last two), drawn to scale; chunks the output chunk ``block`` reads are
    filled, the dashed box is the range of its input coordinates (before the spline's
    support is added). A footprint is a product of per-axis chunk sets, so the picture in
    the plane is exact; the caption counts the chunks read over all axes. More than
    ``max_cells`` chunks along an axis are aggregated (a cell is filled if any of its chunks
    is read).

    Parameters
    ----------
    pass_ : PhysicalPass
    block : tuple of int, optional
        The output block index; default the middle one (:func:`default_block`).
    axes : pair of int, optional
    max_cells : int
        Cells per side at most.
    size : int
        Pixels of the longer side.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> p = transfuse.lazy(np.ones((40, 40)), chunks=10).rotate(30, order=1).plan()
    >>> svg = footprint_svg(p.passes[0])
    >>> "output block (3, 3) reads 4 of 16 input chunks" in svg
    True
    """
    if not pass_.footprints:
        return f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='20'></svg>"
    block = default_block(pass_) if block is None else tuple(block)
    fp = pass_.footprints[block]
    chunks = pass_.coefficient_chunks
    nd = len(chunks)
    if axes is None:
        axes = (nd - 2, nd - 1) if nd >= 2 else (None, 0)
    ay, ax = axes
    rows, gy = _groups(chunks[ay], max_cells) if ay is not None else ([(0, 1, 0.0, 1.0)], 1)
    cols, gx = _groups(chunks[ax], max_cells)
    extent_y = rows[-1][3] - rows[0][2]
    extent_x = cols[-1][3] - cols[0][2]
    scale = size / max(extent_y, extent_x, 1e-9)
    if ay is None:
        scale = size / extent_x
        extent_y = 12 / scale
    wpx, hpx = extent_x * scale, extent_y * scale
    pads = pass_.pads
    read_y = set(fp.axes[ay].chunks) if fp.axes is not None and ay is not None else set()
    read_x = set(fp.axes[ax].chunks) if fp.axes is not None else set()
    if ay is None and fp.axes is not None:
        read_y = {0}
    total = int(np.prod([len(c) for c in chunks]))
    nread = len(fp.dependencies) if fp.axes is not None else 0
    agg = f"; a cell = {gy}x{gx} chunks" if max(gy, gx) > 1 else ""
    caption = f"output block {block} reads {nread} of {total} input chunks{agg}"
    width = max(wpx + 8, 7.3 * len(caption) + 8)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{hpx + 40:.0f}' "
        f"style='{_STYLE}'>"
    ]
    hit_y = [
        bool(read_y) if ay is None else any(i in read_y for i in range(r0, r1))
        for r0, r1, _, _ in rows
    ]
    hit_x = [any(i in read_x for i in range(c0, c1)) for c0, c1, _, _ in cols]
    out.append(
        f"<rect x='4' y='4' width='{wpx:.1f}' height='{hpx:.1f}' fill='{_IDLE}' stroke='{_GRID}'/>"
    )
    for ry0, ry1 in _runs(hit_y, rows):  # the chunks read: a product of runs per axis
        for rx0, rx1 in _runs(hit_x, cols):
            out.append(
                f"<rect x='{4 + rx0 * scale:.1f}' y='{4 + ry0 * scale:.1f}' "
                f"width='{(rx1 - rx0) * scale:.1f}' height='{(ry1 - ry0) * scale:.1f}' "
                f"fill='{_READ}'/>"
            )
    lines = [f"M{4 + c[2] * scale:.1f} 4V{4 + hpx:.1f}" for c in cols[1:]]
    if ay is not None:
        lines += [f"M4 {4 + r[2] * scale:.1f}H{4 + wpx:.1f}" for r in rows[1:]]
    out.append(f"<path d='{''.join(lines)}' stroke='{_GRID}' stroke-width='0.5' fill='none'/>")
    if fp.axes is not None:  # the coordinate range, in coefficient-array positions
        wx = fp.axes[ax]
        x0, x1 = wx.first + pads[ax], wx.last + pads[ax]
        if ay is not None:
            wy = fp.axes[ay]
            y0, y1 = wy.first + pads[ay], wy.last + pads[ay]
        else:
            y0, y1 = 0.0, extent_y
        out.append(
            f"<rect x='{4 + x0 * scale:.1f}' y='{4 + y0 * scale:.1f}' "
            f"width='{max(x1 - x0, 0) * scale:.1f}' height='{max(y1 - y0, 0) * scale:.1f}' "
            "fill='none' stroke='#222' stroke-dasharray='4,2'/>"
        )
    out.append(f"<text x='4' y='{hpx + 20:.0f}'>{_e(caption)}</text>")
    plane = f"plane of axes ({ay}, {ax})" if ay is not None else f"axis {ax}"
    out.append(f"<text x='4' y='{hpx + 34:.0f}'>{_e(plane)}</text>")
    out.append("</svg>")
    return "".join(out)


# -- plans ------------------------------------------------------------------------------------


def _matrix_html(m) -> str:
    rows = "".join(
        "<tr>"
        + "".join(f"<td style='padding:0 6px;text-align:right'>{v:.4g}</td>" for v in row)
        + "</tr>"
        for row in m
    )
    return f"<table style='{_STYLE};border-left:1px solid;border-right:1px solid'>{rows}</table>"


def _dependency_counts(pass_) -> np.ndarray:
    return np.array(
        [
            0 if f.axes is None else math.prod(len(w.chunks) for w in f.axes)
            for f in pass_.footprints.values()
        ],
        dtype=np.int64,
    )


def _pass_html(k: int, pass_) -> str:
    affine = pass_.affine
    if affine is not None and affine.ndim_in <= 8:
        fused = f"fused matrix ({affine.form}):" + _matrix_html(affine.matrix)
    else:
        fused = "fused map: <code>" + _e(_cut(pass_.describe_map(), 400)) + "</code>"
    nprefilter = int(np.prod([len(c) for c in pass_.coefficient_chunks]))
    deps = _dependency_counts(pass_)
    empty = int((deps == 0).sum())
    layers = (
        f"prefilter: {nprefilter} tasks, resample: {pass_.ntasks} tasks"
        if pass_.needs_prefilter
        else f"resample: {pass_.ntasks} tasks"
    )
    geo = pass_.output
    rows = [
        ("output", _e(f"shape={geo.shape} dtype={geo.dtype} chunks={chunks_text(geo.chunks)}")),
        ("interpolation", _e(_options_text(pass_.options))),
        ("layers", _e(layers) + (f" ({empty} all-cval)" if empty else "")),
    ]
    if len(deps):
        nz = deps[deps > 0]
        stats = (
            f"max {deps.max()}, mean {deps.mean():.1f}, min {nz.min() if len(nz) else 0}"
            f" (of {nprefilter})"
        )
        rows.append(("input chunks per output chunk", _e(stats)))
    if pass_.batch_axes:
        rows.append(("slice by slice along axes", _e(pass_.batch_axes)))
    picture = footprint_svg(pass_) if pass_.footprints else ""
    return (
        f"<div style='margin:6px 0'><b>pass {k}</b><div style='display:flex;gap:16px;"
        f"align-items:flex-start'><div>{fused}{_table(rows)}</div><div>{picture}</div></div>"
        "</div>"
    )


def plan_html(plan) -> str:
    """The plan as HTML (with SVG inside): what ``Plan._repr_html_`` shows.

    The chain before and after fusion as a graph, then per resampling pass (at most
    :data:`MAX_NODES` passes) the fused matrix (or the map's stages), the output geometry,
    tasks per layer, input chunks per output chunk and a picture of the chunks the middle
    output chunk reads. Its size is bounded (under :data:`MAX_BYTES` for any plan).

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> p = transfuse.lazy(np.ones((40, 40)), chunks=10).rotate(30).zoom(0.5).plan()
    >>> text = plan_html(p)
    >>> "fused matrix" in text and "input chunks per output chunk" in text
    True
    >>> len(text) < MAX_BYTES
    True
    """
    head = (
        f"<b>Plan</b>: {len(plan.steps)} step(s) → {len(plan.passes)} resampling "
        f"pass(es), {plan.ntasks} tasks"
    )
    passes = [_pass_html(k, p) for k, p in enumerate(plan.passes[:MAX_NODES], 1)]
    if len(plan.passes) > MAX_NODES:
        passes.append(f"<div>… {len(plan.passes) - MAX_NODES} more pass(es)</div>")
    return f"<div style='{_STYLE}'>{head}<div>{chain_svg(plan)}</div>{''.join(passes)}</div>"


# -- lazy images ------------------------------------------------------------------------------


def _estimated_chunks(image) -> int:
    src = image._expr
    while hasattr(src, "child"):
        src = src.child
    size = [max(max(c), 1) if len(c) else 1 for c in src.chunks]
    shape = image.shape
    if len(size) != len(shape):
        return 1
    return int(np.prod([math.ceil(n / s) for n, s in zip(shape, size, strict=True)]))


def lazy_html(image) -> str:
    """A lazy image as HTML: shape, dtype, chunks, the steps and the passes they fuse into.

    The plan is built for the display only when it is cheap (at most
    :data:`MAX_PLAN_CHUNKS` output chunks, no free symbols); otherwise the display says so
    and shows the chain without tasks.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> img = transfuse.lazy(np.ones((40, 40)), chunks=10).rotate(30, reshape=False).zoom(0.5)
    >>> text = lazy_html(img)
    >>> "LazyImage" in text and "(20, 20)" in text and "1 resampling pass" in text
    True
    """
    steps = image.steps
    rows = [("shape", _e(image.shape)), ("dtype", _e(image.dtype))]
    free = sorted({s.name for st in steps for s in st.transform.free_symbols})
    plan = None
    note = ""
    if not steps:
        rows.append(("chunks", _e(chunks_text(image._array.chunks))))
        return f"<div style='{_STYLE}'><b>LazyImage</b> (no steps){_table(rows)}</div>"
    chain = logical(image._expr)
    runs = fuse(chain)
    if free:
        note = "bind " + ", ".join(free) + " to plan it"
    elif _estimated_chunks(image) > MAX_PLAN_CHUNKS:
        note = f"about {_estimated_chunks(image)} output chunks: call .plan() to see tasks"
    else:
        try:
            plan = image.plan()
        except ValueError as exc:  # an invalid chain shows why instead of failing the repr
            note = _cut(str(exc), 200)
    if plan is not None:
        rows.append(("chunks", _e(chunks_text(plan.passes[-1].output.chunks))))
        resample = sum(p.ntasks for p in plan.passes)
        split = f"{plan.ntasks - resample} prefilter + {resample} resample"
        rows.append(("tasks", _e(f"{plan.ntasks} ({split})")))
    else:
        rows.append(("input chunks", _e(chunks_text(chain.source.chunks))))
    rows.append(("steps", _e(f"{len(steps)} -> {len(runs)} resampling pass(es)")))
    if free:
        rows.append(("free symbols", _e(", ".join(free))))
    if note:
        rows.append(("plan", _e(note)))
    listing = "".join(
        f"<li>{_e(_cut(st.label or st.operation, 60))}: {_e(_cut(repr(st.transform), 100))}</li>"
        for st in steps[:MAX_NODES]
    )
    if len(steps) > MAX_NODES:
        listing += f"<li>… {len(steps) - MAX_NODES} more</li>"
    svg = _chain_svg(chain, runs, plan.passes if plan is not None else None)
    return (
        f"<div style='{_STYLE}'><b>LazyImage</b>{_table(rows)}"
        f"<details><summary>steps</summary><ol>{listing}</ol></details>{svg}</div>"
    )
