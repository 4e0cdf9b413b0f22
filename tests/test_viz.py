"""Pictures (issue 10, item 3) and progress bars (item 5); optional dependencies stay
optional (never imported by ``import transfuse``)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import transfuse as tf
from transfuse import progress

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from transfuse import viz  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def test_compare_shows_planes_with_shared_limits():
    x = np.random.default_rng(0).random((10, 30, 40))
    img = tf.lazy(x, chunks=10).rotate(15, axes=(1, 2), reshape=False, order=1)
    fig = viz.compare(x, img, index=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    a, b = (ax.images[0] for ax in fig.axes)
    np.testing.assert_array_equal(a.get_array(), x[4])
    np.testing.assert_allclose(b.get_array(), img.compute()[4], atol=1e-12)
    assert a.get_clim() == b.get_clim()
    assert _png(fig)[:4] == b"\x89PNG"


def test_compare_small_multiples():
    ims = [np.full((8, 8), float(k)) for k in range(8)]
    fig = viz.compare(*ims, titles=[f"k={k}" for k in range(8)])
    titled = [ax.get_title() for ax in fig.axes if ax.images]
    assert titled == [f"k={k}" for k in range(8)] and len(fig.axes) == 12  # 2 rows of 6
    with pytest.raises(ValueError, match="2 title"):
        viz.compare(ims[0], ims[1], ims[2], titles=["a", "b"])


def test_checkerboard_alternates_tiles():
    a, b = np.zeros((12, 12)), np.ones((12, 12))
    board = viz.checkerboard(a, b, tiles=3).axes[0].images[0].get_array()
    expected = (np.add.outer(np.arange(12) // 4, np.arange(12) // 4) % 2).astype(float)
    np.testing.assert_array_equal(board, expected)
    with pytest.raises(ValueError, match="differ in shape"):
        viz.checkerboard(a, np.ones((12, 13)))


def test_difference_is_centred_and_titled():
    a = np.zeros((6, 6))
    b = a.copy()
    b[2, 3] = 0.25
    fig = viz.difference(a, b)
    im = fig.axes[0].images[0]
    assert im.get_clim() == (-0.25, 0.25)
    assert im.get_array()[2, 3] == -0.25
    assert "0.25" in fig.axes[0].get_title() and len(fig.axes) == 2  # with a colour bar


def test_warped_grid_maps_lines_through_the_transform():
    T = tf.Translate((2.0, -3.0))
    fig = viz.warped_grid(T, (20, 30), step=10)
    lines = fig.axes[0].lines
    assert len(lines) == 2 * (2 + 3)  # identity + mapped, for 2 rows and 3 columns
    ident, mapped = lines[0], lines[1]
    np.testing.assert_allclose(mapped.get_xdata(), ident.get_xdata() - 3.0)
    np.testing.assert_allclose(mapped.get_ydata(), ident.get_ydata() + 2.0)
    # a non-linear map bends them: y + 3 sin(x / 5) along the first row
    y, x = tf.symbols("y x")
    bend = tf.ExprMap(["y + 3 * sin(x / 5)", "x"], (y, x))
    row = viz.warped_grid(bend, (20, 30), step=10).axes[0].lines[1]
    np.testing.assert_allclose(row.get_ydata(), 3 * np.sin(row.get_xdata() / 5), atol=1e-12)


def test_warped_grid_of_a_volume_plane():
    T = tf.Rotate(30, axes=(1, 2), center=(5, 5, 5))
    fig = viz.warped_grid(T, (11, 11, 11), step=5, axes=(1, 2))
    first = fig.axes[0].lines[1]
    pts = np.stack([np.full(200, 5.0), np.zeros(200), np.linspace(0, 10, 200)], 1)
    want = T(pts)
    np.testing.assert_allclose(first.get_xdata(), want[:, 2])
    np.testing.assert_allclose(first.get_ydata(), want[:, 1])


def test_footprint_overlay_fills_the_chunks_read():
    img = tf.lazy(np.ones((80, 100)), chunks=20).rotate(25, reshape=False, order=1)
    plan = img.plan()
    fp = plan.passes[0].footprints[(2, 3)]
    fig = viz.footprint_overlay(img, (2, 3), image=np.zeros((80, 100)))
    filled = [p for p in fig.axes[0].patches if p.get_fill() and p.get_alpha() == 0.35]
    assert len(filled) == len(fp.dependencies)
    title = fig.axes[0].get_title()
    assert f"reads {len(fp.dependencies)} of 20 input chunks" in title
    # the mapped border of the output chunk lies inside the coordinate window (dashed)
    border = fig.axes[0].lines[-1]  # after the chunk grid lines
    wy, wx = fp.axes
    assert wx.first - 1e-9 <= border.get_xdata().min() <= border.get_xdata().max() <= wx.last + 1e-9
    assert wy.first - 1e-9 <= border.get_ydata().min() <= border.get_ydata().max() <= wy.last + 1e-9
    with pytest.raises(ValueError, match="not a block"):
        viz.footprint_overlay(plan, (9, 9))


def test_progress_bar_is_opt_in():
    img = tf.lazy(np.ones((64, 64)), chunks=16).rotate(10, order=1)
    buf = io.StringIO()
    with progress.progress_bar(out=buf, minimum=0):
        img.compute()
    assert "100%" in buf.getvalue() and "#" in buf.getvalue()
    buf = io.StringIO()
    with progress.progress_bar(False, out=buf, minimum=0):
        img.compute()
    assert buf.getvalue() == ""
    out = progress.compute(img, progress=False)
    np.testing.assert_array_equal(out, img.compute())


def test_optional_dependencies_are_not_imported_by_transfuse():
    code = (
        "import sys, transfuse, transfuse.display, transfuse.explore, transfuse.viz, "
        "transfuse.progress\n"
        "optional = ('matplotlib', 'ipywidgets', 'IPython', 'nbclient')\n"
        "bad = [m for m in optional if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_footprint_overlay_of_a_view_maps_the_border_through_the_view():
    x = np.zeros((40, 80, 80))
    img = tf.lazy(x, chunks=20).rotate(30, axes=(1, 2), reshape=False, order=1)[12, ::2, :]
    plan = img.plan()
    (p,) = plan.passes
    assert p.output.ndim == 2 and p.input.ndim == 3
    block = (0, 1)
    fp = p.footprints[block]
    fig = viz.footprint_overlay(plan, block, axes=(1, 2))
    border = fig.axes[0].lines[-1]
    wy, wx = fp.axes[1], fp.axes[2]
    # inside the input, the border lies in the window (which is clipped to the input)
    bx, by = np.clip(border.get_xdata(), 0, 79), np.clip(border.get_ydata(), 0, 79)
    assert wx.first - 1e-9 <= bx.min() <= bx.max() <= wx.last + 1e-9
    assert wy.first - 1e-9 <= by.min() <= by.max() <= wy.last + 1e-9
    # the border's corners are the view's corners mapped by the rotation
    (s0, e0), (s1, e1) = fp.box
    corner = np.array([[12.0, 2.0 * s0, float(s1)]])
    want = plan.runs[0].transform(corner)[0]
    np.testing.assert_allclose([border.get_ydata()[0], border.get_xdata()[0]], want[1:])


def test_lazy_compute_takes_progress_once_the_hook_lands(monkeypatch):
    import contextlib
    import inspect

    if "progress" not in inspect.signature(tf.LazyImage.compute).parameters:
        pytest.skip(
            "LazyImage.compute(progress=...) is a hook for lazy.py (see transfuse.progress)"
        )
    calls = []

    def recorder(enabled=True, **kwargs):
        calls.append(enabled)
        return contextlib.nullcontext()

    monkeypatch.setattr(progress, "progress_bar", recorder)
    img = tf.lazy(np.ones((16, 16)), chunks=8).rotate(10, order=1)
    img.compute(progress=True)
    img.compute()
    assert calls == [True, False]


def test_progress_arguments_are_checked():
    from transfuse.progress import progress_bar

    with pytest.raises(ValueError, match="progress='yes'"):
        progress_bar("yes")
    with pytest.raises(ValueError, match="minimum=-1"):
        progress_bar(True, minimum=-1)
    img = tf.lazy(np.ones((8, 8)), chunks=4).shift(1, order=1)
    with pytest.raises(ValueError, match="progress=1"):
        img.compute(progress=1)
