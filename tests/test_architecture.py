"""The shape of the code (backends issue): dependency direction, a backend in one module,
the choice of backend, and what travels in a task."""

from __future__ import annotations

import ast
import pathlib
import pickle

import dask
import numpy as np
import pytest
import scipy.ndimage as ndi
import sympy

import transfuse as tf
import transfuse.ndinterp
from transfuse.executors import REGISTRY, NullExecutor, get_executor
from transfuse.executors.stages import compile_expression
from transfuse.planner.physical import ExprStage

PACKAGE = pathlib.Path(tf.__file__).parent


def _imports(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at any depth of the file (absolute names)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _files(sub: str):
    files = sorted((PACKAGE / sub).rglob("*.py"))
    assert files
    return files


@pytest.mark.parametrize("sub", ["transforms", "planner"])
def test_transforms_and_planner_import_neither_dask_nor_ndimage(sub):
    for path in _files(sub):
        for mod in _imports(path):
            assert not (mod == "dask" or mod.startswith("dask.")), (path, mod)
            assert not mod.startswith("scipy.ndimage"), (path, mod)
            assert not mod.startswith("transfuse.executors"), (path, mod)  # data flows one way


def test_transforms_do_not_import_the_planner_or_io():
    for path in _files("transforms"):
        for mod in _imports(path):
            assert not mod.startswith(("transfuse.planner", "transfuse.io", "transfuse.lazy")), (
                path,
                mod,
            )


def test_executors_never_import_sympy():
    for path in _files("executors"):
        for mod in _imports(path):
            assert not (mod == "sympy" or mod.startswith("sympy.")), (path, mod)


def test_the_check_itself_sees_imports():
    # the scan must find what it forbids, or the tests above prove nothing
    assert "dask.array" in _imports(PACKAGE / "executors" / "graph.py")
    assert "sympy" in _imports(PACKAGE / "planner" / "codegen.py")


# -- backends --------------------------------------------------------------------------------


def test_a_backend_is_one_module():
    for name, cls in REGISTRY.items():
        module = cls.__module__.split(".")
        assert module[:2] == ["transfuse", "executors"] and len(module) == 3, name
    assert NullExecutor.__module__ == "transfuse.executors.null"


def test_null_executor_records_every_task_and_reads_only_footprints():
    x = np.random.default_rng(0).random((40, 36))
    img = (
        tf.lazy(x, chunks=10).rotate(25, order=3, mode="nearest").zoom(0.8, order=3, mode="nearest")
    )
    plan = img.plan()
    (p,) = plan.passes
    null = NullExecutor()
    out = img.compute(executor=null)
    assert out.shape == img.shape and not out.any()
    resample = [r for r in null.records if r.kind == "resample"]
    prefilter = [r for r in null.records if r.kind == "prefilter"]
    assert len(resample) == p.ntasks
    assert len(prefilter) == int(np.prod([len(c) for c in p.coefficient_chunks]))
    by_box = {r.box: r for r in resample}
    for fp in p.footprints.values():
        assert by_box[fp.box].pieces == len(fp.dependencies)
        assert by_box[fp.box].stages == ("AffineStage",)


@pytest.mark.parametrize("order", [0, 1, 3])
def test_backends_agree_and_keys_differ(order):
    x = np.random.default_rng(1).random((30, 33)).astype(np.float32)
    img = tf.lazy(x, chunks=11).rotate(17, order=order, mode="reflect")
    ref = ndi.rotate(x, 17, order=order, mode="reflect")
    results = {}
    for name in ("scipy", "cpu"):
        arr = img.to_dask(executor=name)
        results[name] = (arr.name, arr.compute())
    assert results["scipy"][0] != results["cpu"][0]
    for _, value in results.values():
        if order < 2:
            np.testing.assert_array_equal(value, ref)
        else:
            np.testing.assert_allclose(value, ref, rtol=0, atol=1e-6)


def test_default_backend_from_dask_config():
    img = tf.lazy(np.ones((6, 6)), chunks=3).shift((1, 0), order=1)
    with dask.config.set({"transfuse.executor": "null"}):
        assert not img.compute().any()
        assert get_executor().name == "null"
    assert img.compute()[1:].all()
    with pytest.raises(ValueError, match="executor='gpu3'"):
        img.to_dask(executor="gpu3")


def test_ndinterp_takes_the_backend():
    x = np.arange(64.0).reshape(8, 8)
    null = NullExecutor()
    out = tf.ndinterp.affine_transform(x, np.eye(2), order=1, executor=null).compute()
    assert not out.any() and null.records
    null = NullExecutor()
    tf.ndinterp.spline_filter1d(x, order=3, axis=0, executor=null).compute()
    assert {r.kind for r in null.records} == {"prefilter"}


# -- what travels ----------------------------------------------------------------------------


def test_a_field_travels_once_not_in_every_task():
    rng = np.random.default_rng(2)
    u = rng.normal(0, 1.5, (2, 120, 120))  # 230 kB of field
    D = tf.DisplacementField(u, order=3)
    img = tf.lazy(rng.random((120, 120)), chunks=20).transform(D, order=1)
    arr = img.to_dask()
    graph = dict(arr.__dask_graph__())
    field_keys = [k for k in graph if str(k[0] if isinstance(k, tuple) else k).startswith("field")]
    assert len(field_keys) == 1
    tasks = [v for k, v in graph.items() if isinstance(k, tuple) and k[0] == arr.name]
    assert len(tasks) == 36
    sizes = [len(pickle.dumps(t)) for t in tasks]
    assert max(sizes) < 20_000 < u.nbytes  # measured: ~5 kB per task
    ref = ndi.map_coordinates(
        img._array.compute(),
        np.indices((120, 120)) + D.displacement(np.indices((120, 120))),
        order=1,
    )
    np.testing.assert_allclose(arr.compute(), ref, rtol=0, atol=1e-12)


def test_expression_source_is_checked_before_it_runs():
    bad = ExprStage(
        "def expression_map(x0):\n    return (__import__('os').getpid(),)",
        "expression_map",
        1,
        1,
        (),
        "bad",
    )
    with pytest.raises(ValueError, match="non-module|unknown name"):
        compile_expression(bad)
    sneaky = ExprStage(
        "def expression_map(x0):\n    return (numpy.__class__,)", "expression_map", 1, 1, (), ""
    )
    with pytest.raises(ValueError, match="private name"):
        compile_expression(sneaky)


def test_coordinates_named_like_constants_or_functions():
    # hardening: coordinates named pi, e or sin must not turn into the constants/functions
    pi, e, sin = sympy.symbols("pi e sin", real=True)
    T = tf.ExprMap([pi + 0.5 * e, e - 0.25 * sin, sin * 1.0], (pi, e, sin))
    pts = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(T(pts), [[2.0, 1.25, 3.0]])
    x = np.random.default_rng(3).random((6, 7, 8))
    out = tf.lazy(x, chunks=4).transform(T, order=1).compute()
    grid = np.indices(x.shape).astype(float)
    ref = ndi.map_coordinates(
        x, [grid[0] + 0.5 * grid[1], grid[1] - 0.25 * grid[2], grid[2]], order=1
    )
    np.testing.assert_array_equal(out, ref)


def test_an_output_dtype_ends_a_fused_run():
    # hardening: the uint8 cast between two rotations is where sequential scipy puts it
    x = np.random.default_rng(4).random((24, 24)) * 300
    img = tf.lazy(x, chunks=8).rotate(10, output=np.uint8, order=1).rotate(-10, order=1)
    assert len(img.plan().passes) == 2
    ref = ndi.rotate(ndi.rotate(x, 10, output=np.uint8, order=1), -10, order=1)
    np.testing.assert_array_equal(img.compute(), ref)
    plain = tf.lazy(x, chunks=8).rotate(10, order=1).rotate(-10, order=1)
    assert plain.to_dask().name != img.to_dask().name


def test_explain_says_what_each_backend_runs():
    img = tf.lazy(np.zeros((16, 16)), chunks=8).rotate(10, order=1).zoom(2, order=3)
    text = img.explain("physical", executor="scipy")
    assert text.count("backend scipy: pass") == 2 and "scipy.ndimage per chunk" in text
    cpu = img.explain("physical", executor="cpu").splitlines()
    assert "compiled kernel: matrix map, order 1" in cpu[-2]
    assert "compiled kernel: separable map, order 3" in cpu[-1]
    assert img.explain("physical", executor=False) == img.plan().explain("physical")
    assert img.explain("physical").endswith("\n".join(cpu[-2:]))  # the default backend
