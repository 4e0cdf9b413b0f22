"""The planner's named stages, each tested alone, and snapshots of ``explain(stage=...)``.

Snapshots live in ``tests/planner/snapshots``; after an intended change of the text,
regenerate them with ``TRANSFUSE_UPDATE_SNAPSHOTS=1 python -m pytest tests/planner`` and
review the diff.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import transfuse as tf
from transfuse.executors.spline import field_coefficients
from transfuse.planner import STAGES, fuse, logical, lower
from transfuse.planner.physical import AffineStage, ExprStage, FieldStage

SNAPSHOTS = pathlib.Path(__file__).parent / "snapshots"
Y, X = tf.symbols("y x")


def _chains():
    rng = np.random.default_rng(0)
    x2 = np.zeros((40, 48))
    x3 = np.zeros((12, 20, 16), dtype=np.float32)
    field = np.stack([np.full((5, 6), 0.5), np.linspace(-1, 1, 30).reshape(5, 6)])
    return {
        "affine_chain": tf.lazy(x2, chunks=16).rotate(20, reshape=False).zoom(1.25).shift((2, -3)),
        "two_passes": tf.lazy(x2, chunks=16).rotate(30, order=1).zoom(0.5, order=3),
        "rotate_3d": tf.lazy(x3, chunks=8).rotate(15, axes=(1, 2), order=1),
        "zoom_alone": tf.lazy(x2, chunks=(16, 24)).zoom(2, order=0, grid_mode=True),
        "nonlinear": tf.lazy(x2, chunks=16).transform(
            tf.Rotate(5, center=(20, 24))
            @ tf.DisplacementField(field, spacing=8, order=3)
            @ tf.ExprMap([Y + 0.01 * (X - 24) ** 2, X], (Y, X)),
            order=1,
            mode="mirror",
        ),
        "cast": tf.lazy(rng.random((10, 10)), chunks=5)
        .shift(0.5, order=1, output=np.uint8)
        .shift(0.5, order=1),
    }


CHAINS = _chains()


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_explain_snapshots(name, stage):
    text = CHAINS[name].explain(stage=stage, executor=False) + "\n"  # the plan alone
    path = SNAPSHOTS / f"{name}.{stage}.txt"
    if os.environ.get("TRANSFUSE_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing snapshot {path.name}: run with TRANSFUSE_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text()


def test_explain_all_is_the_stages_in_order():
    img = CHAINS["affine_chain"]
    assert img.explain() == "\n".join(img.explain(stage=s) for s in STAGES)
    with pytest.raises(ValueError, match="stage='lowered'"):
        img.explain(stage="lowered")


def test_logical_keeps_the_chain_as_written():
    img = CHAINS["affine_chain"]
    chain = logical(img._expr)
    assert [s.operation for s in chain.steps] == ["rotate", "zoom", "shift"]
    assert [type(s.transform).__name__ for s in chain.steps] == ["Rotate", "Scale", "Translate"]
    assert chain.source.shape == (40, 48)


def test_fuse_splits_on_options_and_casts_only():
    assert [len(r.steps) for r in fuse(logical(CHAINS["affine_chain"]._expr))] == [3]
    assert [len(r.steps) for r in fuse(logical(CHAINS["two_passes"]._expr))] == [1, 1]
    assert [len(r.steps) for r in fuse(logical(CHAINS["cast"]._expr))] == [1, 1]
    same = tf.lazy(np.zeros((4, 4))).shift(1, output=np.float64).shift(1)
    assert [len(r.steps) for r in fuse(logical(same._expr))] == [2]  # no cast: one run


def test_fuse_composes_in_chain_order():
    img = CHAINS["affine_chain"]
    (run,) = fuse(logical(img._expr))
    expected = np.linalg.multi_dot([s.transform.matrix(2) for s in img.steps])
    np.testing.assert_allclose(run.transform.matrix(2), expected)


def test_lower_is_numbers_and_stages_only():
    img = CHAINS["nonlinear"]
    chain = logical(img._expr)
    (p,) = lower(chain, fuse(chain), spline_filter=field_coefficients)
    kinds = [type(s) for s in p.stages]
    assert kinds == [AffineStage, ExprStage, FieldStage, AffineStage]
    src = p.stages[1].source
    assert src.startswith("def expression_map(x0, x1, c0):") and "sympy" not in src
    assert p.stages[1].constants == (0.01,)
    assert p.stages[2].coefficients.flags.writeable is False
    assert p.output.shape == (40, 48) and p.ntasks == 9
    with pytest.raises(ValueError, match="spline_filter"):
        lower(chain, fuse(chain))  # an order-3 field needs its coefficients


def test_lone_zoom_and_shift_use_scipys_separable_arithmetic():
    (p,) = CHAINS["zoom_alone"].plan().passes
    assert p.affine.form == "separable"
    assert [k for k, _ in p.affine.ops] == ["add", "mul", "add"]
    (q,) = CHAINS["affine_chain"].plan().passes  # fused: one matrix
    assert q.affine.form == "matrix"


def test_rotate_of_a_volume_works_plane_by_plane():
    (p,) = CHAINS["rotate_3d"].plan().passes
    assert p.batch_axes == (0,)
    assert p.plane_stages[0].linear.shape == (2, 2)
