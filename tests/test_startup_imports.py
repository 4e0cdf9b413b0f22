"""What a fresh process imports (issue 12, start-up): ``import transfuse`` and a plain
resample leave sympy, pandas, xarray, networkx, matplotlib and numba unimported; the
symbolic features import sympy when they are used and work from a process that never
imported it; dask.array, imported without its side import of xarray, still unwraps a
dask-backed ``xarray.DataArray`` in ``from_array``; the "cpu" backend's cold start runs
small passes by the reference, bit for bit scipy's, until its budget is spent, and then
loads the kernels. Each check runs in its own fresh interpreter (this test process has
imported most of these modules already, and turns the cold start off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: imported only where used (each costs 0.1-0.5 s of a fresh process; numba: where a
#: compiled kernel runs, which small passes of a fresh process do not)
HEAVY = (
    "sympy",
    "pandas",
    "xarray",
    "networkx",
    "matplotlib",
    "distributed",
    "dask.dataframe",
    "numba",
)

REPORT = f"""
import json, sys
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def run_python(source: str) -> str:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def imported_heavy(source: str) -> list[str]:
    """The modules of HEAVY imported after running ``source`` in a fresh process."""
    return json.loads(run_python(source + REPORT).splitlines()[-1])


def test_the_check_sees_an_import():
    # the property below can fail: a process that imports one of them is reported
    assert imported_heavy("import transfuse, sympy") == ["sympy"]


def test_import_transfuse_imports_none_of_the_heavy_modules():
    assert imported_heavy("import transfuse") == []


@pytest.mark.parametrize("executor", ["cpu", "scipy"])
def test_a_plain_resample_imports_none_of_them(executor):
    # building, explaining and computing affine work never needs sympy (nor pandas ...);
    # nor numba for small passes at orders 0 and 1 (the cold start; order 3 runs compiled)
    source = f"""
import numpy as np, scipy.ndimage as ndi, transfuse as tf
x = np.random.default_rng(0).random((12, 13, 9)).astype(np.float32)
for order in (0, 1):
    img = tf.lazy(x, chunks=6).rotate(20, axes=(0, 1), reshape=False, order=order)
    img = img.zoom(1.1, order=order).shift((0.5, 0, 0), order=order)
    img.explain()
    img.compute(executor={executor!r})
ref = ndi.rotate(x, 20, axes=(0, 1), reshape=False, order=1)
got = tf.lazy(x, chunks=6).rotate(20, axes=(0, 1), reshape=False, order=1).compute(
    executor={executor!r}
)
assert np.array_equal(got, ref)
tf.Affine(np.eye(2) * 1.5).inverse() @ tf.Rotate(10) @ tf.Translate((1, 2))
if {executor!r} == "scipy":  # the reference never needs numba, at any order
    tf.lazy(x, chunks=6).rotate(20, axes=(0, 1), reshape=False, order=3).compute(executor="scipy")
"""
    assert imported_heavy(source) == []


def test_symbolic_features_import_sympy_when_used():
    # a process that never imported sympy itself: symbols, exact matrices, binding,
    # string expressions and their inverse all work, and only then is sympy imported
    source = """
import numpy as np, transfuse as tf
assert str(tf.Rotate(30).matrix(2, exact=True)[0, 0]) == "sqrt(3)/2"
theta = tf.symbols("theta")
R = tf.Rotate(theta)
assert R.free_symbols == {theta}
np.testing.assert_allclose(R.bind(theta=90).matrix(2), tf.Rotate(90).matrix(2), atol=1e-15)
B = tf.ExprMap(["y + x**2 / 50", "x"], "y x")
x = np.random.default_rng(1).random((10, 10))
out = tf.lazy(x, chunks=5).transform(B, order=1).compute()
assert out.shape == x.shape and np.isfinite(out).all()
assert np.allclose(B.inverse()(B([[2.0, 3.0]])), [[2.0, 3.0]])
"""
    # the expression chain runs compiled whatever its size (the cold start takes only
    # passes the reference computes bit for bit): numba too
    assert imported_heavy(source) == ["numba", "sympy"]


def test_star_import_and_lazy_names_still_resolve():
    source = """
import transfuse
from transfuse import *
missing = [n for n in transfuse.__all__ if n not in globals()]
assert not missing, missing
"""
    run_python(source)


def test_dask_from_array_still_unwraps_an_xarray_imported_later():
    pytest.importorskip("xarray")
    source = """
import transfuse, sys
import dask.array as da, numpy as np
assert "xarray" not in sys.modules
plain = da.from_array(np.arange(6.0), chunks=3)  # before xarray: no import of it
assert "xarray" not in sys.modules
import xarray as xr
inner = da.ones((4, 4), chunks=2)
wrapped = xr.DataArray(inner, dims=("y", "x"))
assert da.from_array(wrapped) is inner  # dask's own xarray rule, as without transfuse
print("ok")
"""
    assert run_python(source).split()[-1] == "ok"


def test_cold_start_runs_small_passes_by_the_reference_then_loads_the_kernels():
    # budget 3000 voxels: a 12^3 pass (1728) runs cold, the next one would exceed it and
    # loads the kernels; both equal scipy bit for bit (order 1), and explain() says which ran
    source = """
import sys, dask, numpy as np, scipy.ndimage as ndi, transfuse as tf
from transfuse.executors import numba_loader
x = np.random.default_rng(2).random((12, 12, 12)).astype(np.float32)
ref = ndi.rotate(x, 20, axes=(0, 1), reshape=False, order=1)
img = tf.lazy(x, chunks=6).rotate(20, axes=(0, 1), reshape=False, order=1)
with dask.config.set({"transfuse.cold_start_voxels": 3000}):
    assert "no compiled kernel is loaded" in img.explain(executor="cpu")
    cold = img.to_dask()
    assert np.array_equal(cold.compute(), ref)
    assert "numba" not in sys.modules and not numba_loader.kernels_loaded()
    assert "compiled kernel: matrix map" in img.explain(executor="cpu")  # budget spent
    warm = img.to_dask()
    assert warm.name == cold.name  # the same bits: the same key, whoever computed it
    assert np.array_equal(warm.compute(), ref)
    assert numba_loader.kernels_loaded()
    assert "compiled kernel: matrix map" in img.explain(executor="cpu")
print("ok")
"""
    assert run_python(source).split()[-1] == "ok"


def test_cold_start_only_where_the_bits_are_the_same():
    # order 3 (prefilter) and chains always run compiled: the reference would agree only
    # within the accuracy contract, and keys must not depend on what the process ran before
    source = """
import numpy as np, sympy, transfuse as tf
from transfuse.executors import cold_start, numba_loader
x = np.random.default_rng(4).random((14, 13, 12)).astype(np.float32)
z, y, w = sympy.symbols("z y w")
wave = tf.ExprMap([z + 0.5 * sympy.sin(w / 3), y, w], (z, y, w))
small = tf.lazy(x, chunks=7)
(linear,) = small.rotate(20, axes=(0, 1), reshape=False, order=1).plan().passes
(cubic,) = small.rotate(20, axes=(0, 1), reshape=False, order=3).plan().passes
(chain,) = small.transform(tf.Rotate(10, axes=(0, 1)) @ wave, order=1).plan().passes
assert not numba_loader.kernels_loaded()
assert cold_start.runs_cold(linear)
assert not cold_start.runs_cold(cubic) and not cold_start.runs_cold(chain)
print("ok")
"""
    assert run_python(source).split()[-1] == "ok"


def test_a_bad_cold_start_budget_is_refused_naming_the_key():
    import dask
    import numpy as np

    import transfuse as tf

    img = tf.lazy(np.zeros((4, 4))).shift(1)
    with dask.config.set({"transfuse.cold_start_voxels": -1}):
        with pytest.raises(ValueError, match="transfuse.cold_start_voxels=-1"):
            img.to_dask()
