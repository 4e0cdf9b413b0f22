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


def _default_signals():
    """In the child: the default dispositions, whatever the test runner inherited (a runner
    started in the background of a non-interactive shell ignores SIGINT, and a child would
    keep ignoring it)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _popen(cmd, **kwargs):
    return subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals, **kwargs
    )


@pytest.mark.parametrize(
    "sig, code, fmt",
    [
        (signal.SIGINT, 130, "npy"),
        (signal.SIGINT, 130, "zarr"),
        (signal.SIGTERM, 143, "npy"),
        (signal.SIGTERM, 143, "zarr"),
        (signal.SIGHUP, 129, "npy"),
    ],
)
def test_signal_while_computing(tmp_path, recipe, sig, code, fmt):
    src = _save(np.random.default_rng(0).random((64, 64)), tmp_path / "in.npy")
    before = _digest(src)
    dst = tmp_path / f"out.{fmt}"
    cmd = [sys.executable, "-c", SLOW_MAIN, "apply", recipe, str(src), str(dst), "--chunks", "8"]
    proc = _popen(cmd)
    deadline = time.monotonic() + 30
    while not _leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _leftovers(tmp_path), "the computation never started"
    time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)  # a cold numba cache compiles first (GIL held)
    assert proc.returncode == code, err
    assert (
        err.strip().splitlines()[-1]
        == "transfuse: error: "
        + {
            signal.SIGINT: "interrupted",
            signal.SIGTERM: "terminated",
            signal.SIGHUP: "hung up",
        }[sig]
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


# -- issue 9, item 17: the demo checks its output first, writes atomically, never overwrites --
DEMO = ["demo", "--size", "8", "--chunks", "4", "--output"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("demo.txt", "ending in .npy"),
        ("demo", "ending in .npy"),
        ("missing/demo.npy", "directory"),
    ],
)
def test_demo_refuses_a_bad_output_before_computing(tmp_path, monkeypatch, capsys, name, message):
    import transfuse.demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(transfuse.demo, "demo_volume", lambda *a: pytest.fail("computed"))
    code, out, err = _run([*DEMO, name], capsys)
    _assert_one_line_error(code, err, 2, message)
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    out = tmp_path / "demo.npy"
    out.write_bytes(b"keep me")
    code, _, err = _run([*DEMO, out], capsys)
    _assert_one_line_error(code, err, 2, "already exists (use --overwrite")
    assert out.read_bytes() == b"keep me"
    code, stdout, err = _run([*DEMO, out, "--overwrite"], capsys)
    assert code == 0, err
    assert np.load(out).shape == (8, 8, 8)
    assert f"to {out}" in stdout
    assert _leftovers(tmp_path) == []


def test_demo_reports_the_file_it_wrote(tmp_path, capsys):
    out = tmp_path / "result.NPY"
    code, stdout, _ = _run([*DEMO, out], capsys)
    assert code == 0
    assert stdout.strip().splitlines()[-1].endswith(f"to {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.NPY"]


def test_demo_write_is_atomic(tmp_path, monkeypatch, capsys):
    def failing_save(fh, array):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", failing_save)
    code, _, err = _run([*DEMO, tmp_path / "demo.npy"], capsys)
    _assert_one_line_error(code, err, 1, "No space left")
    assert list(tmp_path.iterdir()) == []


# -- issue 9, item 1: a full disk is exit 1 with one line, never SIGBUS ---------------------------
@pytest.mark.parametrize("fmt", ["npy", "tif"])
def test_disk_full_while_allocating_the_output(tmp_path, recipe, monkeypatch, capsys, fmt):
    src = _save(_image(), tmp_path / "in.npy")
    calls = []

    def full(fd, offset, length):
        calls.append((offset, length))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    code, _, err = _run(["apply", recipe, src, tmp_path / f"out.{fmt}"], capsys)
    _assert_one_line_error(code, err, 1, "No space left on device")
    assert len(calls) == 1 and calls[0][1] == _image().nbytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json", "in.npy"]


def test_preallocation_falls_back_to_writing_zeros(tmp_path, monkeypatch):
    import errno

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported, raising=False)
    path = tmp_path / "f"
    path.write_bytes(b"HEAD")
    arrays.preallocate(path, 4, 3 * 2**20 + 5)
    data = path.read_bytes()
    assert data[:4] == b"HEAD" and len(data) == 3 * 2**20 + 9 and not any(data[4:])


FSIZE_MAIN = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from transfuse.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("fmt", ["npy"])
def test_file_size_limit_is_exit_1(tmp_path, recipe, fmt):
    # RLIMIT_FSIZE (with SIGXFSZ ignored) makes writes past 100 kB fail with EFBIG, as a
    # full disk makes them fail with ENOSPC.
    src = _save(np.random.default_rng(0).random((200, 100)), tmp_path / "in.npy")
    dst = tmp_path / f"out.{fmt}"
    cmd = [sys.executable, "-c", FSIZE_MAIN, "apply", recipe, str(src), str(dst), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transfuse: error: writing"), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json", "in.npy"]


def _can_mount_a_tmpfs(directory) -> bool:
    """Whether an unprivileged user and mount namespace can mount a tmpfs here."""
    import shutil

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
        + [f"mount -t tmpfs -o size=64k tmpfs {directory}"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs in a user namespace: Linux only")
@pytest.mark.parametrize("fmt", ["npy"])
def test_really_full_disk_in_a_small_tmpfs(tmp_path, recipe, fmt):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _can_mount_a_tmpfs(mnt):
        pytest.skip("cannot mount a tmpfs in an unprivileged user and mount namespace")
    src = _save(np.random.default_rng(0).random((400, 400)), tmp_path / "in.npy")
    dst = mnt / f"out.{fmt}"
    script = (
        f"mount -t tmpfs -o size=512k tmpfs {mnt} && "
        f"{sys.executable} -m transfuse.cli apply {recipe} {src} {dst} -q; "
        f'code=$?; ls -A {mnt}; exit "$code"'
    )
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # was 135: SIGBUS
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.strip() == ""  # nothing left in the full file system


# -- issue 9, item 16: start-up interrupts, FIFOs, distributed interrupts ----------------------
SLOW_IMPORT = """
import sys, time
import transfuse_launcher
class SlowImport:
    def find_spec(self, name, path=None, target=None):
        if name == "transfuse.cli":
            print("importing", flush=True)
            time.sleep(60)
        return None
sys.meta_path.insert(0, SlowImport())
sys.argv = ["transfuse", "explain", "x.json"]
sys.exit(transfuse_launcher.main())
"""
SLOW_START = """
import sys, time
import transfuse.cli as cli
def slow(path, args):
    print("loading", flush=True)
    time.sleep(60)
cli._load_pipeline = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "script, sig, code",
    [
        (SLOW_IMPORT, signal.SIGINT, 130),
        (SLOW_START, signal.SIGINT, 130),
        (SLOW_START, signal.SIGHUP, 129),
    ],
    ids=["import-int", "start-int", "start-hup"],
)
def test_signal_during_start_up_is_one_line(tmp_path, script, sig, code):
    cmd = [sys.executable, "-c", script, "explain", str(tmp_path / "x.json")]
    proc = _popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() in ("importing", "loading")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [
        "transfuse: error: " + {130: "interrupted", 143: "terminated", 129: "hung up"}[code]
    ]


def test_the_command_starts_through_the_launcher(monkeypatch, capsys):
    import tomllib

    import transfuse_launcher

    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as fh:
        meta = tomllib.load(fh)
    assert meta["project"]["scripts"]["transfuse"] == "transfuse_launcher:main"
    monkeypatch.setattr(sys, "argv", ["transfuse", "--help"])
    assert transfuse_launcher.main() == 0
    assert "exit codes" in capsys.readouterr().out


def test_ignored_signals_stay_ignored(tmp_path, recipe):
    # nohup: SIGHUP ignored when the command starts must not end it
    src = _save(np.random.default_rng(0).random((16, 16)), tmp_path / "in.npy")
    dst = tmp_path / "out.npy"
    cmd = [sys.executable, "-c", SLOW_MAIN, "apply", recipe, str(src), str(dst), "--chunks", "8"]

    def ignore_hup():
        _default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=ignore_hup)
    deadline = time.monotonic() + 30
    while not _leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert dst.exists()


@pytest.mark.parametrize("role", ["INPUT", "RECIPE", "OUTPUT"])
def test_fifos_are_refused_without_blocking(tmp_path, recipe, capsys, role):
    src = _save(_image(), tmp_path / "in.npy")
    argv = {"RECIPE": recipe, "INPUT": str(src), "OUTPUT": str(tmp_path / "out.npy")}
    fifo = tmp_path / {"INPUT": "pipe.npy", "RECIPE": "pipe.json", "OUTPUT": "pipe.npy"}[role]
    os.mkfifo(fifo)
    argv[role] = str(fifo)
    result = {}

    def run():
        result["code"] = main(
            ["apply", argv["RECIPE"], argv["INPUT"], argv["OUTPUT"], "-q", "--overwrite"]
        )

    import threading

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the command blocked on the FIFO"
    _, err = capsys.readouterr()
    _assert_one_line_error(result["code"], err, 2, "not a regular file")
    assert fifo.exists() and not fifo.is_file()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_as_input_is_refused_without_reading(tmp_path, recipe, capsys):
    os.symlink("/dev/zero", tmp_path / "zero.npy")
    code, _, err = _run(["apply", recipe, tmp_path / "zero.npy", tmp_path / "o.npy"], capsys)
    _assert_one_line_error(code, err, 2, "not a regular file")
    arrays.check_output(tmp_path / "zero.npy", overwrite=True)  # a link is replaced, not its target


DISTRIBUTED_MAIN = """
import sys, time
from distributed import LocalCluster
from transfuse.io import arrays
store = arrays.store_image
def slow_block(block):
    time.sleep(0.25)
    return block
def slow_store(array, path, fmt, **kwargs):
    return store(array.map_blocks(slow_block, dtype=array.dtype), path, fmt, **kwargs)
arrays.store_image = slow_store
from transfuse.cli import main
with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                  dashboard_address=None) as cluster:
    code = main([*sys.argv[1:], "--scheduler", cluster.scheduler_address])
sys.exit(code)
"""


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130)])
def test_interrupt_under_a_distributed_scheduler_is_one_line(tmp_path, recipe, sig, code):
    pytest.importorskip("distributed")
    src = _save(np.random.default_rng(0).random((64, 64)), tmp_path / "in.npy")
    dst = tmp_path / "out.npy"
    cmd = [sys.executable, "-c", DISTRIBUTED_MAIN, "apply", recipe, str(src), str(dst)]
    proc = _popen([*cmd, "--chunks", "8"])
    deadline = time.monotonic() + 60
    while not _leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _leftovers(tmp_path), "the computation never started"
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "Task exception" not in err, err
    assert err.strip().splitlines()[-1].startswith("transfuse: error: ")
    assert not dst.exists() and _leftovers(tmp_path) == []
