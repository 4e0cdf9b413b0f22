"""Zarr to zarr, chunk by chunk (scale issue, item 2): ``LazyImage.to_zarr`` streams a
zarr input into a zarr output, reading only the input chunks the output needs, all or
nothing; and ``benchmarks/bench_out_of_core.py`` runs end to end on a tiny volume."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import transfuse as tf
from transfuse.io.arrays import ImageFileError, read_image

RNG = np.random.default_rng(3)
VOLUME = RNG.random((24, 30, 28)).astype(np.float32)


def _zarr_input(tmp_path: Path) -> str:
    path = str(tmp_path / "in.zarr")
    zarr.create_array(path, shape=VOLUME.shape, chunks=(8, 10, 7), dtype="float32")[...] = VOLUME
    return path


@pytest.mark.parametrize("order", [1, 3])
def test_zarr_to_zarr_equals_scipy_and_keeps_the_output_chunks(tmp_path, order):
    src = read_image(_zarr_input(tmp_path))
    img = tf.lazy(src).rotate(25, axes=(1, 2), order=order, reshape=False, output_chunks=9)
    out = tmp_path / "out.zarr"
    img.to_zarr(out)
    z = zarr.open_array(str(out), mode="r")
    assert z.chunks == (9, 9, 9) and z.dtype == np.float32
    expected = ndimage.rotate(VOLUME, 25, axes=(1, 2), order=order, reshape=False)
    if order == 1:
        np.testing.assert_array_equal(z[...], expected)
    else:
        np.testing.assert_allclose(z[...], expected, rtol=0, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["in.zarr", "out.zarr"]  # no partial left


class CountingArray:
    def __init__(self, values):
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim
        self.reads = []
        self.lock = threading.Lock()

    def __getitem__(self, key):
        out = self.values[key]
        if out.size:
            with self.lock:
                self.reads.append(tuple(s.start for s in key))
        return out


def test_streaming_reads_each_needed_input_chunk_once_and_no_other(tmp_path):
    source = CountingArray(VOLUME)
    arr = da.from_array(source, chunks=(8, 10, 7), name="counting-volume", asarray=True)
    img = tf.lazy(arr).rotate(10, axes=(1, 2), order=1, reshape=False)
    img[:8].to_zarr(tmp_path / "slab.zarr")  # the first slab of the output only
    assert len(source.reads) == len(set(source.reads))  # each chunk once
    # output rows 0-7 read input rows 0-8 (the order-1 taps of row 7 reach row 8)
    assert {r[0] for r in source.reads} == {0, 8}
    assert len(source.reads) < np.prod(arr.numblocks)


def test_to_zarr_refuses_other_paths_and_existing_outputs(tmp_path):
    img = tf.lazy(VOLUME, chunks=8).rotate(10, order=1)
    with pytest.raises(ValueError, match=r"path='.*out\.npy' must be a \.zarr path"):
        img.to_zarr(tmp_path / "out.npy")
    img.to_zarr(tmp_path / "out.zarr")
    with pytest.raises(ImageFileError, match="already exists"):
        img.to_zarr(tmp_path / "out.zarr")
    img.zoom(0.5, order=1).to_zarr(tmp_path / "out.zarr", overwrite=True)
    assert zarr.open_array(str(tmp_path / "out.zarr"), mode="r").shape == img.zoom(0.5).shape


def test_bench_out_of_core_runs_on_a_tiny_volume(tmp_path, capsys):
    pytest.importorskip("distributed")
    pytest.importorskip("psutil")
    path = Path(__file__).parents[1] / "benchmarks" / "bench_out_of_core.py"
    spec = importlib.util.spec_from_file_location("bench_out_of_core", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--size", "32", "--chunk", "16", "--orders", "1", "--submission-chunks", "64"]
    argv += ["--contestants", "threads", "distributed", "--workdir", str(tmp_path)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "threads vs distributed, sample chunks: bit for bit" in out
    assert "submission, load average" in out
    for reads in ("shared", "direct"):  # a line per graph kind: reads, 64 output chunks
        assert any(line.split()[:2] == [reads, "64"] for line in out.splitlines())
    assert os.listdir(tmp_path) == []  # the volume and the outputs are deleted


IMAGE = RNG.random((200, 220))


@pytest.mark.parametrize("mode", ["constant", "nearest", "mirror"])
def test_local_prefilter_gives_the_shared_coefficients_result(mode):
    """``transfuse.prefilter="local"``: every task filters its own window (no coefficient
    chunk is kept between tasks); the same halo rule, so scipy's result to 1e-10."""
    expected = ndimage.rotate(IMAGE, 25, order=3, mode=mode, reshape=False)
    arrays = {}
    for choice in ("auto", "local", "shared"):
        with dask.config.set({"transfuse.prefilter": choice}):
            arr = tf.lazy(IMAGE, chunks=40).rotate(25, order=3, mode=mode, reshape=False)
            arrays[choice] = arr.to_dask()
        np.testing.assert_allclose(arrays[choice].compute(), expected, rtol=0, atol=1e-10)
    layers = {c: set(a.__dask_graph__().layers) for c, a in arrays.items()}
    assert not any(n.startswith("spline-coefficients-local") for n in layers["shared"])
    assert not any(
        n.startswith("spline-coefficients-") and "local" not in n for n in layers["local"]
    )  # no shared coefficient layer at all
    assert len({a.name for a in arrays.values()}) == 3  # the choice is in the key


def test_auto_filters_every_window_locally_above_the_coefficient_bound(monkeypatch):
    """Under ``"auto"``, a pass whose shared coefficient chunks would exceed
    ``SHARED_COEFFICIENT_BYTES`` gets the ``"local"`` graph's tasks (the same floats); below
    the bound the shared chunks stay."""
    from transfuse.executors import graph

    def build():
        return tf.lazy(IMAGE, chunks=40).rotate(25, order=3, reshape=False).to_dask()

    def layer_kinds(arr):
        names = {k[0] for k in dict(arr.__dask_graph__()) if isinstance(k, tuple)}
        local = any(n.startswith("spline-coefficients-local") for n in names)
        shared = any(n.startswith("spline-coefficients-") and "local" not in n for n in names)
        return local, shared

    small = build()
    assert layer_kinds(small) == (False, True)  # 200 x 220: far below the bound
    coefficient_bytes = 200 * 220 * 8  # float64; mode constant has no pre-padding
    monkeypatch.setattr(graph, "SHARED_COEFFICIENT_BYTES", coefficient_bytes - 1)
    big = build()
    assert layer_kinds(big) == (True, False)
    with dask.config.set({"transfuse.prefilter": "local"}):
        local = build()
    assert len({big.name, local.name, small.name}) == 3  # the rule and its bound: in the key
    np.testing.assert_array_equal(big.compute(), local.compute())
    monkeypatch.setattr(graph, "SHARED_COEFFICIENT_BYTES", coefficient_bytes)
    assert layer_kinds(build()) == (False, True)


def test_coordinates_spread_over_a_large_input_keep_the_shared_coefficients(monkeypatch):
    """Above the bound, a task whose points spread over the whole input would filter all of
    it on its own: it reads the shared coefficient chunks instead (each filtered once)."""
    from transfuse.executors import graph
    from transfuse.ndinterp import map_coordinates

    monkeypatch.setattr(graph, "SHARED_COEFFICIENT_BYTES", 0)
    image = da.from_array(IMAGE, chunks=40)
    points = np.random.default_rng(5).random((2, 400)) * np.array([[199], [219]])
    arr = map_coordinates(image, da.from_array(points, chunks=(2, 10)), order=3)
    keys = {k[0] for k in dict(arr.__dask_graph__()) if isinstance(k, tuple)}
    assert not any(k.startswith("spline-coefficients-local") for k in keys)
    expected = ndimage.map_coordinates(IMAGE, points, order=3)
    np.testing.assert_allclose(arr.compute(), expected, rtol=0, atol=1e-10)


def test_an_unknown_prefilter_choice_is_refused():
    with dask.config.set({"transfuse.prefilter": "everywhere"}):
        with pytest.raises(ValueError, match="transfuse.prefilter='everywhere'"):
            tf.lazy(IMAGE, chunks=40).rotate(25, order=3).to_dask()


def test_a_large_zarr_output_is_computed_region_by_region(tmp_path, monkeypatch):
    """Rows of output chunks one region at a time: the same array, and no region's
    tasks wait for another's (each region is its own compute)."""
    from transfuse.io import arrays

    monkeypatch.setattr(arrays, "ZARR_REGION_BYTES", 9 * 30 * 28 * 4)  # one chunk row
    computes = []
    original = arrays.dask.compute

    def counting(*args, **kwargs):
        computes.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(arrays.dask, "compute", counting)
    src = read_image(_zarr_input(tmp_path))
    img = tf.lazy(src).rotate(25, axes=(1, 2), order=1, reshape=False, output_chunks=9)
    img.to_zarr(tmp_path / "out.zarr")
    assert len(computes) == len(arrays.zarr_regions(img.to_dask())) == 3
    z = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert z.chunks == (9, 9, 9)
    expected = ndimage.rotate(VOLUME, 25, axes=(1, 2), order=1, reshape=False)
    np.testing.assert_array_equal(z[...], expected)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    chunks=st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=5), min_size=1, max_size=4),
    target=st.integers(1, 4000),
)
def test_zarr_regions_tile_the_output_in_whole_chunks(chunks, target):
    """Regions cover every element once, start and stop on chunk boundaries, and hold at
    least twice the region bytes only where no axis is left to split them along."""
    from transfuse.io import arrays

    x = da.zeros(tuple(sum(c) for c in chunks), chunks=tuple(map(tuple, chunks)), dtype="f4")
    cover = np.zeros(x.shape, dtype=np.int64)
    bounds = [set(np.cumsum((0, *c)).tolist()) for c in chunks]
    original = arrays.ZARR_REGION_BYTES
    try:
        arrays.ZARR_REGION_BYTES = target
        regions = arrays.zarr_regions(x)
    finally:
        arrays.ZARR_REGION_BYTES = original
    for region in regions:
        assert all(s.start in b and s.stop in b for s, b in zip(region, bounds, strict=False))
        cover[region] += 1
        nbytes = cover[region].size * 4
        assert nbytes < 2 * target or len(region) == x.ndim
    assert (cover == 1).all()


def _resampling_tasks(arr):
    graph = dict(arr.__dask_graph__())
    return {k: v for k, v in graph.items() if isinstance(k, tuple) and k[0] == arr.name}


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", ["constant", "nearest", "mirror", "grid-wrap"])
def test_direct_zarr_reads_give_the_shared_reads_result_bit_for_bit(tmp_path, order, mode):
    """``transfuse.zarr_reads="direct"``: each resampling task reads the input chunks it
    needs from the zarr array itself (through the process's cache of decoded chunks); no
    task per input chunk, no dependency but the stored array's, and the same floats as
    the chunks arriving from their tasks (and at order 0-1, as scipy)."""
    src = read_image(_zarr_input(tmp_path))
    arrays = {}
    for choice in ("shared", "direct"):
        with dask.config.set({"transfuse.zarr_reads": choice}):
            img = tf.lazy(src).rotate(25, axes=(1, 2), order=order, mode=mode, reshape=False)
            arrays[choice] = img.zoom(1.2, order=order, mode=mode).to_dask()
    shared, direct = (arrays[c].compute(scheduler="threads") for c in ("shared", "direct"))
    np.testing.assert_array_equal(direct.view(np.uint32), shared.view(np.uint32))
    assert arrays["direct"].name != arrays["shared"].name  # the choice is in the key
    graph = dict(arrays["direct"].__dask_graph__())
    original = "original-" + src.name
    assert set(graph) == {original, *_resampling_tasks(arrays["direct"])}
    assert all(t.dependencies == {original} for t in _resampling_tasks(arrays["direct"]).values())
    if order == 1 and mode == "constant":  # the reference
        with dask.config.set({"transfuse.zarr_reads": "direct"}):
            rotated = tf.lazy(src).rotate(25, axes=(1, 2), order=1, reshape=False).compute()
        expected = ndimage.rotate(VOLUME, 25, axes=(1, 2), order=1, reshape=False)
        np.testing.assert_array_equal(rotated, expected)


def test_direct_reads_apply_only_to_zarr_inputs_without_shared_coefficients(tmp_path):
    """Where direct reads do not apply (a numpy or computed input, order > 1 with shared
    coefficient chunks) the graph is the shared one, key included."""
    src = read_image(_zarr_input(tmp_path))
    cases = {
        "numpy": lambda: tf.lazy(VOLUME, chunks=8).rotate(10, order=1),
        "computed": lambda: tf.lazy(src + 1).rotate(10, order=1),
        "order 3": lambda: tf.lazy(src).rotate(10, order=3),
    }
    for name, build in cases.items():
        with dask.config.set({"transfuse.zarr_reads": "direct"}):
            direct = build().to_dask()
        assert direct.name == build().to_dask().name, name


@pytest.mark.parametrize("mode", ["constant", "mirror"])
def test_tasks_filtering_their_own_window_read_their_chunks_directly(tmp_path, mode):
    """At order 3 with ``transfuse.prefilter="local"``, direct reads: each prefilter task
    reads its input chunks itself (no input-chunk task), and the coefficients, so the
    result, are the ones from the chunks arriving from their tasks, bit for bit."""
    src = read_image(_zarr_input(tmp_path))
    arrays = {}
    for reads in ("shared", "direct"):
        config = {"transfuse.zarr_reads": reads, "transfuse.prefilter": "local"}
        with dask.config.set(config):
            img = tf.lazy(src).rotate(25, axes=(1, 2), order=3, mode=mode, reshape=False)
            arrays[reads] = img.to_dask()
    shared, direct = (arrays[c].compute(scheduler="threads") for c in ("shared", "direct"))
    np.testing.assert_array_equal(direct.view(np.uint32), shared.view(np.uint32))
    assert arrays["direct"].name != arrays["shared"].name
    graph = dict(arrays["direct"].__dask_graph__())
    assert not [k for k in graph if isinstance(k, tuple) and k[0] == src.name]
    assert [k for k in dict(arrays["shared"].__dask_graph__()) if k[0] == src.name]


def test_an_unknown_zarr_reads_choice_is_refused(tmp_path):
    src = read_image(_zarr_input(tmp_path))
    with dask.config.set({"transfuse.zarr_reads": "sometimes"}):
        with pytest.raises(ValueError, match="transfuse.zarr_reads='sometimes'"):
            tf.lazy(src).rotate(10, order=1).to_dask()
