"""The parameter explorer (issue 10, item 4): its callback recomputes only a preview plane,
fused into the plan, and the preview equals the plane of the full result."""

from __future__ import annotations

import numpy as np
import pytest

import transfuse as tf
from transfuse.executors import NullExecutor
from transfuse.explore import Explorer, _preview_image, explore, preview_plane

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")


def _volume(shape=(24, 40, 48), seed=0):
    return np.random.default_rng(seed).random(shape)


def _symbolic(x, order=1, chunks=8):
    theta = tf.symbols("theta")
    c = [(n - 1) / 2 for n in x.shape]
    R = tf.Rotate(theta, axes=(1, 2), center=(0, c[1], c[2]))
    return tf.lazy(x, chunks=chunks).transform(R, order=order).zoom(1.1, order=order)


@pytest.mark.parametrize("order", [1, 3])
def test_the_preview_is_the_plane_of_the_full_result(order):
    x = _volume()
    img = _symbolic(x, order)
    ex = explore(img, theta=(-45, 45), slice=7, max_size=20)
    got = ex.update(theta=17.0)
    full = img.bind(theta=17.0).compute()
    stride = int(np.ceil(max(full.shape[1:]) / 20))
    ref = full[7, ::stride, ::stride]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    if order == 1:  # a lazy view is bit-exact at orders 0 and 1
        np.testing.assert_array_equal(got, ref)


def test_the_callback_computes_only_the_preview():
    x = _volume((32, 48, 48))
    img = _symbolic(x, order=3)
    full_plan = img.bind(theta=10).plan()
    null = NullExecutor()
    ex = explore(img, theta=(-45, 45), slice=12, max_size=24, executor=null)
    ex.update(theta=10)
    resample = [r for r in null.records if r.kind == "resample"]
    prefilter = [r for r in null.records if r.kind == "prefilter"]
    view_plan = ex.preview_image().plan()
    (p,) = view_plan.passes
    # one task per preview chunk, each the size of a preview chunk of one plane
    assert len(resample) == p.ntasks < full_plan.passes[0].ntasks
    n = img.shape[1]  # 53 after the zoom: stride 3, an 18 x 18 preview
    assert sum(np.prod([e - s for s, e in r.box]) for r in resample) == (-(-n // 3)) ** 2
    assert all(len(r.box) == 2 for r in resample)  # a 2-D view: the sliced axis is dropped
    # only coefficients near the plane are prefiltered (slice 12, chunks of 8)
    read = {d for fp in p.footprints.values() for d in fp.dependencies}
    assert {d[0] for d in read} <= {0, 1, 2}
    assert all(r.box[0][0] < 24 for r in prefilter)
    full_prefilter = np.prod([len(c) for c in full_plan.passes[0].coefficient_chunks])
    assert 0 < len(prefilter) < full_prefilter
    # a second move recomputes a preview again, nothing more
    before = len(null.records)
    ex.update(theta=-30)
    again = [r for r in null.records[before:] if r.kind == "resample"]
    assert len(again) == ex.preview_image().plan().passes[0].ntasks
    assert sum(np.prod([e - s for s, e in r.box]) for r in again) == (-(-n // 3)) ** 2


def test_preview_order_skips_the_prefilter():
    img = _symbolic(_volume(), order=3)
    null = NullExecutor()
    ex = explore(img, theta=(-10, 10), max_size=16, executor=null, preview_order=1)
    ex.update(theta=5)
    assert {r.kind for r in null.records} == {"resample"}
    (run,) = ex.preview_image().plan().runs
    assert run.options.order == 1 and len(run.steps) == 2  # still one fused pass


def test_widgets_drive_the_callback():
    img = _symbolic(_volume(), order=1)
    ex = explore(img, theta=(-45, 45, 5), max_size=16)
    box = ex.widget
    slider = box.children[0]
    assert (slider.description, slider.min, slider.max, slider.step) == ("theta", -45, 45, 5)
    first = ex.image.copy()
    png = box.children[-2].value
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    slider.value = 30
    assert ex.values == {"theta": 30.0}
    assert not np.array_equal(ex.image, first)
    assert box.children[-2].value != png
    assert "theta=30" in box.children[-1].value
    assert len(ex.timings) == 2


def test_two_symbols_and_a_2d_image():
    a, s = tf.symbols("a s")
    x = _volume((40, 50))
    img = tf.lazy(x, chunks=16).transform(tf.Rotate(a, center=(19.5, 24.5)) @ tf.Scale(s), order=1)
    ex = explore(img, a=(-20, 20), s=(0.5, 2.0), max_size=25)
    assert ex.values == {"a": 0.0, "s": 1.25}
    got = ex.update(a=10)
    ref = img.bind(a=10, s=1.25).compute()[::2, ::2]
    np.testing.assert_array_equal(got, ref)


def test_a_coordinate_map_last_step():
    x = _volume((10, 12, 14))
    coords = np.indices(x.shape).astype(float) + 0.25
    k = tf.symbols("k")
    img = (
        tf.lazy(x, chunks=5)
        .transform(tf.Translate((k, 0.0, 0.0)), order=1)
        .transform(tf.CoordinateMap(coords), order=1)
    )
    assert _preview_image(img.bind(k=1), 8, 3).shape == (1, 6, 7)  # see _preview_image
    got = preview_plane(img.bind(k=1), max_size=7, index=3)
    ref = img.bind(k=1).compute()[3, ::2, ::2]
    np.testing.assert_array_equal(got, ref)


def test_no_steps_and_other_axes():
    x = _volume((6, 8, 10))
    np.testing.assert_array_equal(preview_plane(tf.lazy(x), None, 2, axis=1), x[:, 2, :])
    np.testing.assert_array_equal(preview_plane(tf.lazy(x), 5, -1, axis=-1), x[::2, ::2, -1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "give a range for every free symbol: theta"),
        ({"theta": (0, 1), "phi": (0, 1)}, "phi not among the free symbols"),
        ({"theta": (1, 0)}, "min must be below max"),
        ({"theta": 5}, r"must be \(min, max\)"),
        ({"theta": (0, 1, 0)}, "step must be positive"),
        ({"theta": (0, 1), "slice": 99}, "slice=99 is out of range"),
    ],
)
def test_explore_errors(kwargs, match):
    img = _symbolic(_volume(), order=1)
    with pytest.raises(ValueError, match=match):
        explore(img, **kwargs).update()


def test_explore_needs_free_symbols_and_a_lazy_image():
    with pytest.raises(ValueError, match="no free symbols"):
        explore(tf.lazy(np.ones((4, 4))).zoom(2, order=1))
    with pytest.raises(ValueError, match="not a LazyImage"):
        Explorer(np.ones((4, 4)), {})
