"""The command line (issue 5): ``transfuse apply`` / ``explain`` end to end, errors, and
all-or-nothing outputs under failures and interrupts."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import tifffile
import zarr

import transfuse as tf
from transfuse.cli import main
from transfuse.io import arrays
from transfuse.io.recipes import Pipeline, write_recipe

FORMATS = ["npy", "tif", "zarr"]
SHAPE = (14, 19)
CENTER = tuple((n - 1) / 2 for n in SHAPE)


def _transform():
    return tf.Rotate(25, center=CENTER) @ tf.Scale((0.9, 1.1))


def _image(seed=0):
    return np.random.default_rng(seed).random(SHAPE)


def _save(x, path: Path) -> Path:
    if path.suffix == ".npy":
        np.save(path, x)
    elif path.suffix == ".tif":
        tifffile.imwrite(path, x)
    else:
        zarr.create_array(str(path), shape=x.shape, chunks=(5, 7), dtype=x.dtype)[...] = x
    return path


def _load(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".tif":
        return tifffile.imread(path)
    return zarr.open_array(str(path), mode="r")[...]


def _digest(path: Path) -> str:
    """A hash of a file or of every file in a directory (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def _write(transform, path: Path) -> Path:
    tf.write_transform(transform, path)
    return path


@pytest.fixture
def recipe(tmp_path):
    return str(_write(_transform(), tmp_path / "T.json"))


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, expected_code=2, contains=""):
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("transfuse: error: ")
    assert contains in lines[0]
    assert "Traceback" not in err


# -- end to end ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fin", FORMATS)
@pytest.mark.parametrize("fout", FORMATS)
def test_apply_matches_scipy(tmp_path, recipe, capsys, fin, fout):
    x = _image()
    src = _save(x, tmp_path / f"in.{fin}")
    before = _digest(src)
    dst = tmp_path / f"out.{fout}"
    code, out, err = _run(["apply", recipe, src, dst, "--chunks", "6,8"], capsys)
    assert code == 0, err
    expected = ndi.affine_transform(x, _transform().matrix(), order=3)
    np.testing.assert_allclose(_load(dst), expected, rtol=0, atol=1e-12)
    assert "100% Completed" in err and f"wrote {dst}" in err
    assert out == ""
    assert _digest(src) == before
    assert _leftovers(tmp_path) == []


def test_pipeline_options_and_overrides(tmp_path, capsys):
    x = _image(1)
    src = _save(x, tmp_path / "in.npy")
    pipe = Pipeline(_transform(), output_shape=(11, 23), order=1, mode="nearest")
    rec = write_recipe(pipe, tmp_path / "pipe.json")
    m = _transform().matrix()

    code, _, err = _run(["apply", rec, src, tmp_path / "a.npy", "-q"], capsys)
    assert code == 0 and err == ""
    want = ndi.affine_transform(x, m, output_shape=(11, 23), order=1, mode="nearest")
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), want, atol=1e-12)

    argv = ["apply", rec, src, tmp_path / "b.npy", "--order", "0", "--mode", "constant"]
    code, _, err = _run([*argv, "--cval", "-2.5", "-q"], capsys)
    assert code == 0, err
    want = ndi.affine_transform(x, m, output_shape=(11, 23), order=0, mode="constant", cval=-2.5)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), want)


def test_itk_recipe(tmp_path, capsys):
    x = _image(4)
    src = _save(x, tmp_path / "in.npy")
    rec = _write(_transform(), tmp_path / "T.tfm")
    code, _, err = _run(["apply", rec, src, tmp_path / "o.npy", "--order", "2", "-q"], capsys)
    assert code == 0, err
    want = ndi.affine_transform(x, _transform().matrix(), order=2)
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want, atol=1e-10)


def test_chunks_set_the_zarr_chunks(tmp_path, recipe, capsys):
    src = _save(_image(), tmp_path / "in.npy")
    code, _, err = _run(["apply", recipe, src, tmp_path / "o.zarr", "--chunks", "4", "-q"], capsys)
    assert code == 0, err
    assert zarr.open_array(str(tmp_path / "o.zarr"), mode="r").chunks == (4, 4)


def test_compressed_tiff_and_zarr_array_in_a_group(tmp_path, recipe, capsys):
    x = _image(2).astype(np.float32)
    tifffile.imwrite(tmp_path / "c.tif", x, compression="zlib", tile=(16, 16))
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("0", shape=x.shape, dtype=x.dtype, chunks=(8, 8))[...] = x
    want = ndi.affine_transform(x, _transform().matrix(), order=3)
    for src in (tmp_path / "c.tif", tmp_path / "g.zarr" / "0"):
        dst = tmp_path / f"from-{src.parent.name}.npy"
        code, _, err = _run(["apply", recipe, src, dst, "-q"], capsys)
        assert code == 0, err
        np.testing.assert_allclose(np.load(dst), want, atol=1e-5)


def test_overwrite_replaces_files_and_stores(tmp_path, recipe, capsys):
    x = _image()
    src = _save(x, tmp_path / "in.npy")
    want = ndi.affine_transform(x, _transform().matrix(), order=3)
    for name in ("o.npy", "o.zarr"):
        dst = tmp_path / name
        _save(np.zeros((3, 3)), dst)
        code, _, err = _run(["apply", recipe, src, dst, "-q"], capsys)
        _assert_one_line_error(code, err, 2, "already exists (use --overwrite")
        assert _load(dst).shape == (3, 3)
        code, _, err = _run(["apply", recipe, src, dst, "-q", "--overwrite"], capsys)
        assert code == 0, err
        np.testing.assert_allclose(_load(dst), want, atol=1e-12)
    assert _leftovers(tmp_path) == []


def test_subprocess_end_to_end(tmp_path, recipe):
    x = _image(3)
    src = _save(x, tmp_path / "in.tif")
    dst = tmp_path / "out.zarr"
    cmd = [sys.executable, "-m", "transfuse.cli", "apply", recipe, str(src), str(dst)]
    proc = subprocess.run([*cmd, "--order", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    want = ndi.affine_transform(x, _transform().matrix(), order=1)
    np.testing.assert_allclose(_load(dst), want, atol=1e-12)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("transfuse: error: OUTPUT")
    assert "Traceback" not in proc.stderr


# -- explain ------------------------------------------------------------------------------------
def test_explain_with_a_placeholder(recipe, capsys):
    code, out, err = _run(
        ["explain", recipe, "--shape", "300,400", "--chunks", "100", "--dtype", "float32"],
        capsys,
    )
    assert code == 0, err
    assert "source: shape=(300, 400) dtype=float32 chunks=(100x3, 100x4)" in out
    assert "1 resampling pass(es)" in out


def test_explain_without_shape(tmp_path, capsys):
    theta = tf.symbols("theta")
    rec = _write(tf.Rotate(theta), tmp_path / "sym.json")
    code, out, _ = _run(["explain", rec], capsys)
    assert code == 0
    assert "transform: Rotate(angle=theta" in out and "free symbols: theta" in out
    rec = write_recipe(Pipeline(tf.Scale((2.0, 0.5)), order=1), tmp_path / "p.json")
    code, out, _ = _run(["explain", rec, "--mode", "wrap"], capsys)
    assert code == 0
    assert "matrix (output index -> input index" in out
    assert "order=1 mode=wrap" in out


# -- errors -------------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    """A 2-D input, a 3-D recipe, a bad recipe, garbage files and an existing output."""
    _save(_image(), tmp_path / "in.npy")
    _write(tf.Rotate(10, ndim=3), tmp_path / "r3.json")
    (tmp_path / "bad.json").write_text('{"transfuse": "recipe", "version": 1, "transform": 5}')
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    (tmp_path / "garbage.tif").write_bytes(b"not a tiff")
    (tmp_path / "exists.npy").write_bytes(b"keep me")
    return tmp_path


ERRORS = [
    (["apply", "nope.json", "in.npy", "o.npy"], "recipe 'nope.json': no such file"),
    (["apply", "bad.json", "in.npy", "o.npy"], "bad recipe 'bad.json': transform:"),
    (["apply", "in.npy", "in.npy", "o.npy"], "unknown transform file type"),
    (["apply", "T.json", "nope.npy", "o.npy"], "INPUT 'nope.npy': no such file"),
    (["apply", "T.json", "in.png", "o.npy"], "unknown image file type"),
    (["apply", "T.json", "garbage.npy", "o.npy"], "not a .npy file"),
    (["apply", "T.json", "garbage.tif", "o.npy"], "not a readable tiff image"),
    (["apply", "T.json", "in.npy", "o.png"], "OUTPUT 'o.png': unknown image file type"),
    (["apply", "T.json", "in.npy", "no/o.npy"], "directory 'no' does not exist"),
    (["apply", "T.json", "in.npy", "exists.npy"], "already exists"),
    (["apply", "T.json", "in.npy", "in.npy", "--overwrite"], "would overwrite INPUT"),
    (["apply", "r3.json", "in.npy", "o.npy"], "Rotate has ndim=3, not ndim=2"),
    (["apply", "T.json", "in.npy", "o.npy", "--chunks", "2,2,2"], "--chunks has 3 entries"),
    (["apply", "T.json", "in.npy", "o.npy", "--order", "6"], "order=6"),
    (["explain", "T.json", "--dtype", "int8"], "--chunks and --dtype need --shape"),
    (["explain", "r3.json", "--shape", "4,5"], "ndim=3, not ndim=2"),
]


@pytest.mark.parametrize("argv, message", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_input_errors_are_one_line(files, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(files)
    _write(_transform(), files / "T.json")
    before = {p.name: _digest(p) for p in files.iterdir()}
    code, out, err = _run(argv, capsys)
    _assert_one_line_error(code, err, 2, message)
    assert {p.name: _digest(p) for p in files.iterdir()} == before  # nothing written


def test_missing_distributed_is_one_line(files, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    monkeypatch.chdir(files)
    _write(_transform(), files / "T.json")
    argv = ["apply", "T.json", "in.npy", "o.npy", "--scheduler", "tcp://127.0.0.1:8786"]
    code, _, err = _run(argv, capsys)
    _assert_one_line_error(code, err, 2, "dask.distributed is not installed")
    assert not (files / "o.npy").exists()


def test_usage_errors_and_help(capsys):
    assert main(["apply", "--order", "x", "a.json", "b.npy", "c.npy"]) == 2
    assert main(["apply", "a.json", "b.npy", "c.npy", "--mode", "sideways"]) == 2
    assert main(["--help"]) == 0
    assert "exit codes" in capsys.readouterr().out


# -- failures and interrupts never leave an output ----------------------------------------------
def _interrupting_writer(monkeypatch, fmt, exc, seen):
    """Make the ``fmt`` writer raise ``exc`` in its last block, after the others are done."""
    original = arrays._WRITERS[fmt]

    def writer(array, path, kwargs):
        last = tuple(len(c) - 1 for c in array.chunks)

        def block(x, block_info=None):
            if block_info[None]["chunk-location"] == last:
                seen.append(os.path.lexists(path))
                raise exc
            return x

        mapped = array.map_blocks(block, dtype=array.dtype)
        return original(mapped, path, {**kwargs, "scheduler": "synchronous"})

    monkeypatch.setitem(arrays._WRITERS, fmt, writer)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "exc, code, message",
    [(KeyboardInterrupt(), 130, "interrupted"), (OSError(28, "No space left"), 1, "failed")],
)
def test_failure_midway_leaves_nothing(
    tmp_path, recipe, monkeypatch, capsys, fmt, exc, code, message
):
    src = _save(_image(), tmp_path / "in.npy")
    before = _digest(src)
    seen = []
    _interrupting_writer(monkeypatch, {"tif": "tiff"}.get(fmt, fmt), exc, seen)
    dst = tmp_path / f"out.{fmt}"
    code_, _, err = _run(["apply", recipe, src, dst, "--chunks", "5"], capsys)
    assert code_ == code
    assert err.strip().splitlines()[-1].startswith("transfuse: error: ")
    assert message in err and "Traceback" not in err
    assert seen == [True]  # the partial output existed when the failure struck
    assert not dst.exists()
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json", "in.npy"]
    assert _digest(src) == before


# Runs ``transfuse.cli.main`` with every output block slowed down, so that a signal surely
# arrives while the threads are computing and writing.
SLOW_MAIN = """
import sys, time
from transfuse.io import arrays
store = arrays.store_image
def slow_block(block):
    time.sleep(0.25)
    return block
def slow_store(array, path, fmt, **kwargs):
    return store(array.map_blocks(slow_block, dtype=array.dtype), path, fmt, **kwargs)
arrays.store_image = slow_store
from transfuse.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("fmt", ["npy", "zarr"])
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_computing(tmp_path, recipe, sig, code, fmt):
    src = _save(np.random.default_rng(0).random((64, 64)), tmp_path / "in.npy")
    before = _digest(src)
    dst = tmp_path / f"out.{fmt}"
    cmd = [sys.executable, "-c", SLOW_MAIN, "apply", recipe, str(src), str(dst), "--chunks", "8"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not _leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _leftovers(tmp_path), "the computation never started"
    time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == "transfuse: error: " + (
        "interrupted" if sig == signal.SIGINT else "terminated"
    )
    assert "Traceback" not in err
    assert not dst.exists()
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json", "in.npy"]
    assert _digest(src) == before


def test_demo_still_runs(tmp_path, capsys):
    out = tmp_path / "demo.npy"
    assert main(["demo", "--size", "8", "--chunks", "4", "--output", str(out)]) == 0
    assert np.load(out).shape == (8, 8, 8)
    assert main(["demo", "--size", "2"]) == 2
