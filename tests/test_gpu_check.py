"""``benchmarks/gpu_check.py --simulate``: the device check's logic on tiny arrays in
numba-cuda's simulator, so that the script a lent GPU runs is known to work end to end."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_simulated_device_check_runs_and_reports(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "figures.json"
    results = module.main(["--simulate", "--orders", "3", "--json", str(out)])
    printed = capsys.readouterr().out
    for label in (
        "cupyx whole volume, order 3",
        "transfuse gpu chunks 4^3, order 3",
        "transfuse gpu 3 steps fused",
        "transfuse gpu affine @ field",
        "transfuse gpu out of core",
    ):
        assert label in results and label in printed
        assert results[label]["median_s"] > 0
    assert results["tests"] == "skipped (simulate)"
    assert json.loads(out.read_text())["device"].startswith("simulator")
    # the transfuse runs agree with the whole-array contestant (scipy.ndimage here)
    assert results["transfuse gpu chunks 4^3, order 3"]["max_diff"] < 1e-5
    assert results["transfuse gpu affine @ field"]["max_diff"] < 1e-5
