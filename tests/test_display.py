"""Rich displays (issue 10, item 2): LaTeX of transforms, HTML/SVG of lazy images and plans.

Every HTML and SVG text must parse as XML (so any front end renders it), say what the plan
says, and stay bounded in size however many chunks the plan has."""

from __future__ import annotations

import ast
import pathlib
import time
import xml.etree.ElementTree as ET

import dask.array as da
import numpy as np
import pytest

import transfuse as tf
from transfuse import display
from transfuse.transforms.latex import transform_latex

SVG = "{http://www.w3.org/2000/svg}"


def _xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # raises on any unbalanced tag or bad entity


# -- LaTeX -----------------------------------------------------------------------------------


def test_latex_of_a_symbolic_chain_keeps_its_symbols():
    theta, s = tf.symbols("theta s")
    T = tf.Rotate(theta, ndim=2) @ tf.Scale((s, 2.0)) @ tf.Translate((1.0, -3.5))
    text = T._repr_latex_()
    assert text.startswith("$") and text.endswith("$")
    assert r"\frac{\pi \theta}{180}" in text and r"s \cos" in text
    assert r"\begin{matrix}" in text
    # the offset column: Translate's -3.5 scaled by 2 and rotated
    assert r"- 7.0 \cos" in text


def test_latex_of_numbers_is_compact():
    text = transform_latex(tf.Rotate(30, ndim=2))
    assert "0.866" in text and "0.5" in text and "0.8660254037844" not in text
    assert "-0.5" in text and text.count("&") == 6  # a 3x3 matrix: two & per row


def test_latex_of_non_linear_parts():
    y, x, k = tf.symbols("y x k")
    E = tf.ExprMap([y + k * x**2, x], (y, x))
    field = tf.DisplacementField(np.zeros((2, 4, 5)), spacing=8)
    text = (tf.Scale((2.0, 1.0)) @ E @ field @ tf.Rotate(10))._repr_latex_()
    assert r"\mapsto" in text and "k x^{2}" in text
    assert "4x5 grid" in text and "spacing (8, 8)" in text
    assert text.count(r"\circ") == 3
    assert r"^{-1}" in tf.InverseExprMap(E.bind(k=0.1))._repr_latex_()


def test_latex_when_the_dimension_is_not_fixed():
    assert "(as 2-D)" in tf.Rotate(45)._repr_latex_()


def test_latex_of_a_long_chain_is_cut():
    T = tf.Translate((1.0, 0.0))
    for _ in range(40):
        T = T @ tf.ExprMap(["y", "x"], "y x")
    text = T._repr_latex_()
    assert "more)" in text and len(text) < 3000


# -- HTML and SVG ----------------------------------------------------------------------------


def _chain(n=200, chunks=20):
    return (
        tf.lazy(np.ones((n, n)), chunks=chunks)
        .rotate(30, reshape=False)
        .zoom(0.5)
        .shift((1, 2), order=1)
        .rotate(5, order=1)
    )


def test_plan_html_parses_and_says_what_the_plan_says():
    plan = _chain().plan()
    text = plan._repr_html_()
    root = _xml(text)
    assert "4 step(s) → 2 resampling pass(es)" in text
    assert f"{plan.ntasks} tasks" in text
    # one matrix table per pass, holding the fused matrix
    m = plan.passes[0].affine.matrix
    assert f"{m[0, 2]:.4g}" in text and text.count("fused matrix") == 2
    assert "input chunks per output chunk" in text
    svgs = root.findall(f".//{SVG}svg")
    assert len(svgs) == 3  # the chain, one footprint picture per pass


def test_chain_svg_has_a_node_per_step_and_per_pass():
    plan = _chain().plan()
    root = _xml(display.chain_svg(plan))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert sum(1 for t in texts if t and t.startswith("pass ")) == len(plan.passes) == 2
    assert texts.count("rotate") == 2 and texts.count("zoom") == 1 and "shift" in texts
    # the fused steps are tied to their pass by a dashed line each
    dashed = [e for e in root.iter(f"{SVG}line") if e.get("stroke-dasharray")]
    assert len(dashed) == 4


def test_a_long_chain_is_summarised():
    img = tf.lazy(np.ones((30, 30)), chunks=10)
    for i in range(25):
        img = img.rotate(3, reshape=False, order=1 if i % 3 else 3)
    plan = img.plan()
    root = _xml(display.chain_svg(plan))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert f"+{25 - display.MAX_NODES} more" in texts
    assert sum(1 for t in texts if t == "rotate") == display.MAX_NODES
    assert any(t and t.startswith("passes ") for t in texts)


def _area(rect) -> float:
    return float(rect.get("width")) * float(rect.get("height"))


def test_footprint_picture_fills_exactly_the_chunks_read():
    img = tf.lazy(np.ones((120, 160)), chunks=20).rotate(25, reshape=False, order=1)
    (p,) = img.plan().passes
    for block in [(0, 0), (2, 3), (5, 7)]:
        fp = p.footprints[block]
        root = _xml(display.footprint_svg(p, block))
        read = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == display._READ]
        scale = 240 / 160  # the longer side is 240 px
        chunk_area = (20 * scale) ** 2
        assert sum(_area(r) for r in read) / chunk_area == pytest.approx(len(fp.dependencies))
        assert f"reads {len(fp.dependencies)} of 48 input chunks" in ET.tostring(root, "unicode")


def test_footprint_picture_of_a_3d_pass_and_a_1d_pass():
    img = tf.lazy(np.ones((40, 40, 40)), chunks=10).rotate(20, axes=(0, 2), order=1)
    (p,) = img.plan().passes
    text = display.footprint_svg(p, axes=(0, 2))
    _xml(text)
    assert "plane of axes (0, 2)" in text
    one = tf.lazy(np.ones(50), chunks=10).shift(3.5, order=1).plan().passes[0]
    root = _xml(display.footprint_svg(one))
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("fill") == display._READ]) == 1


@pytest.fixture(scope="module")
def huge_plan():
    # 320 x 320 = 102,400 output chunks (planning takes a few seconds)
    arr = da.zeros((3200, 3200), chunks=10)
    return tf.lazy(arr).rotate(10, order=1, reshape=False).plan()


def test_a_plan_of_100k_chunks_renders_small_and_fast(huge_plan):
    assert huge_plan.passes[0].ntasks == 102_400
    text = huge_plan._repr_html_()
    _xml(text)
    assert len(text.encode()) < display.MAX_BYTES
    assert len(text.encode()) < 12_000  # measured: ~5.8 kB
    svg = display.footprint_svg(huge_plan.passes[0])
    root = _xml(svg)
    (grid,) = [e for e in root.iter(f"{SVG}path")]
    assert grid.get("d").count("M") <= 2 * display.MAX_CELLS  # aggregated: 5x5 chunks a cell
    assert "a cell = 5x5 chunks" in svg


def test_lazy_html_shows_geometry_steps_and_passes():
    img = _chain()
    text = img._repr_html_()
    _xml(text)
    plan = img.plan()
    resample = sum(p.ntasks for p in plan.passes)
    assert f"{plan.ntasks} ({plan.ntasks - resample} prefilter + {resample} resample)" in text
    assert plan.ntasks > resample  # the order-3 pass has a prefilter layer
    assert display.chunks_text(plan.passes[-1].output.chunks) in text
    assert "4 -&gt; 2 resampling pass(es)" in text and str(img.shape) in text
    assert "float64" in text


def test_lazy_html_of_a_symbolic_or_huge_image_does_not_plan(monkeypatch):
    theta = tf.symbols("theta")
    sym = tf.lazy(np.ones((20, 20)), chunks=10).transform(tf.Rotate(theta, center=(9.5, 9.5)))
    text = sym._repr_html_()
    _xml(text)
    assert "bind theta to plan it" in text and "free symbols" in text
    big = tf.lazy(da.zeros((20_000, 20_000), chunks=10)).rotate(3, order=1)
    monkeypatch.setattr(tf.LazyImage, "plan", lambda self: pytest.fail("planned in a repr"))
    text = big._repr_html_()  # the patched plan() proves nothing was planned
    assert "call .plan() to see tasks" in text
    plain = tf.lazy(np.ones((3, 4)))._repr_html_()
    assert "no steps" in plain and "(3, 4)" in plain


def test_plain_text_reprs_stay_short():
    img = _chain()
    assert len(repr(img)) < 80
    assert len(repr(tf.Rotate(30) @ tf.Scale(2.0))) < 120


def test_display_imports_nothing_heavy():
    # display renders in any front end: no dask, no executors, no matplotlib
    tree = ast.parse(pathlib.Path(display.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    assert not {n for n in names if n.split(".")[0] in ("dask", "matplotlib", "scipy")}
    assert not {n for n in names if "executors" in n}
    latex = pathlib.Path(tf.__file__).parent / "transforms" / "latex.py"
    assert "transfuse.display" not in latex.read_text()


def test_displays_of_views_and_rank_changing_matrices():
    x = np.ones((40, 60, 60))
    view = tf.lazy(x, chunks=20).rotate(30, axes=(1, 2), reshape=False, order=1)[12]
    text = view.plan()._repr_html_()
    _xml(text)
    assert "shape=(60, 60)" in text and "plane of axes (1, 2)" in text
    _xml(view._repr_html_())
    m = np.array([[0.0, 0.0, 10.0], [1.0, 0.2, 0.0], [0.0, 1.0, 0.0]])  # (n_in, n_out + 1)
    flat = tf.lazy(x, chunks=20).affine_transform(m, output_shape=(50, 50), order=1)
    text = flat.plan()._repr_html_()
    _xml(text)
    assert text.count("<tr><td") == 4  # the fused (n_in + 1, n_out + 1) matrix: 4 rows


def test_latex_of_a_long_symbolic_chain_is_quick():
    a, b, c, s = tf.symbols("a b c s")
    T = (
        tf.Rotate(a, center=(10, 10))
        @ tf.Scale((s, s))
        @ tf.Rotate(b, center=(5, 5))
        @ tf.Translate((c, 1.0))
        @ tf.Rotate(a + b)
        @ tf.Shear(0.2, axes=(0, 1))
    )
    start = time.perf_counter()
    text = T._repr_latex_()
    assert time.perf_counter() - start < 3  # ~0.1 s; a full simplify takes 4 s or more
    assert all(sym in text for sym in (" a", " b", " c", " s"))
    # small products are simplified as T.matrix() simplifies them
    R = tf.Rotate(a, ndim=2) @ tf.Rotate(b)
    text = R._repr_latex_()
    assert r"\cos{\left(\pi \left(\frac{a}{180} + \frac{b}{180}\right) \right)}" in text
    assert text.count(r"\cos") == 2  # one angle a + b, not products of cos a and cos b
