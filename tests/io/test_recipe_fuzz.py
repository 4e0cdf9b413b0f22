"""Fuzzing the recipe loader: mutated and random recipes raise RecipeError or load; nothing
else escapes, every example is quick, and loading leaves no trace on disk."""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import tempfile
import time
from datetime import timedelta

import numpy as np
import pytest
import sympy
from hypothesis import event, given
from hypothesis import strategies as st

import transfuse
from tests.strategies import examples
from transfuse.io.errors import RecipeError
from transfuse.io.recipes import Pipeline, dumps, from_dict, loads, write_recipe

# 1.25 times the profile's examples (250 in CI); the deadline is part of what is checked
FUZZ = examples(1.25, deadline=timedelta(milliseconds=500))
CODE = [
    "__import__('os').system('touch pwned')",
    "eval",
    "exec('1')",
    "lambda: 0",
    "../../etc/passwd",
    "/etc/passwd",
    "x.npy",
    "NaN",
    "Infinity",
    "1e999",
    "Symbol('x')",
]

theta, phi = transfuse.symbols("theta phi")
r = transfuse.symbols("r", positive=True)
TRANSFORMS = [
    transfuse.Rotate(theta, center=(1.0, phi)) @ transfuse.Translate((1e-300, 5e-324)),
    transfuse.Scale((2.0, r)) @ transfuse.Shear(sympy.sin(theta) ** 2 / 3, ndim=2),
    transfuse.Affine(sympy.Matrix([[sympy.cos(theta), 0, sympy.pi], [0, sympy.exp(r), 1]])),
    transfuse.Flip((0, 1), center=(1.5, 2.0)) @ transfuse.Permute((1, 0)) @ transfuse.Identity(),
    transfuse.Rotate(sympy.atan2(theta, r) + sympy.Float("0.1", 40), axes=(1, 0), ndim=3),
    transfuse.CoordinateMap(np.linspace(0, 1, 24).reshape(2, 3, 4)),
    transfuse.DisplacementField(np.full((2, 3, 3), 0.5), spacing=2.0, order=3, mode="mirror"),
    transfuse.ExprMap(
        [theta + phi * sympy.cos(r), r + phi**2 / 3], (theta, r), parameters=("phi",)
    ).inverse(method="numeric"),
]
PIPELINE = Pipeline(TRANSFORMS[0], output_shape=(4, 5), order=1, output_chunks=(2, 5))

# A directory with a recipe whose array lives in a .npy file beside it.
_TMP = tempfile.mkdtemp(prefix="transfuse-fuzz-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_NPY_RECIPE = write_recipe(
    transfuse.CoordinateMap(np.linspace(0, 5, 2 * 50 * 50).reshape(2, 50, 50)),
    os.path.join(_TMP, "field.json"),
    indent=None,
).read_text()
BASES = [dumps(T, indent=None) for T in TRANSFORMS] + [dumps(PIPELINE), _NPY_RECIPE]


def _listing():
    return sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(_TMP))


_BEFORE = _listing()

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(CODE),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)
    ),
    max_leaves=12,
)


def _slots(node, out):
    """Every (container, key) in a JSON value."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


def _retype(value):
    return [
        None,
        True,
        -1,
        2**300,
        1e308,
        "1.0",
        [value],
        {"expr": value},
        {"op": "Add", "args": [value]},
        {"array": value},
        {"type": value},
    ]


@st.composite
def mutated_docs(draw):
    doc = json.loads(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        if not slots:
            break
        parent, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "replace", "retype", "insert", "code", "swap"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "retype":
            parent[key] = draw(st.sampled_from(_retype(copy.deepcopy(parent[key]))))
        elif action == "code":
            parent[key] = draw(st.sampled_from(CODE))
        elif action == "swap":
            other_parent, other_key = draw(st.sampled_from(slots))
            parent[key] = copy.deepcopy(other_parent[other_key])
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["type", "expr", "op", "args", "npy", "data", "x"]))] = (
                draw(json_values)
            )
        else:
            parent.insert(key, draw(json_values))
    return doc


def _load_only_recipe_errors(load):
    start = time.perf_counter()
    try:
        result = load()
    except RecipeError as exc:
        assert str(exc)
        event(f"refused: {exc.reason[:30]}")
    else:
        assert isinstance(result, transfuse.Transform | Pipeline)
        event("loaded")
    assert time.perf_counter() - start < 0.5
    assert _listing() == _BEFORE
    assert not os.path.exists("pwned")


@pytest.mark.slow
@FUZZ
@given(mutated_docs())
def test_mutated_recipes_raise_only_recipe_errors(doc):
    _load_only_recipe_errors(lambda: loads(json.dumps(doc), base_dir=_TMP))
    _load_only_recipe_errors(lambda: from_dict(doc, base_dir=_TMP))


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(BASES), st.data())
def test_corrupted_text_raises_only_recipe_errors(text, data):
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 8)))
    junk = data.draw(
        st.one_of(st.text(max_size=6), st.sampled_from(["{", "]", '"', "NaN", "1e999"]))
    )
    _load_only_recipe_errors(lambda: loads(text[:i] + junk + text[j:], base_dir=_TMP))


@pytest.mark.slow
@FUZZ
@given(json_values)
def test_random_json_raises_only_recipe_errors(value):
    _load_only_recipe_errors(lambda: loads(json.dumps(value), base_dir=_TMP))
    wrapped = {"transfuse": "recipe", "version": 1, "transform": value}
    _load_only_recipe_errors(lambda: from_dict(wrapped, base_dir=_TMP))
    expr = {
        "transfuse": "recipe",
        "version": 1,
        "transform": {"type": "Rotate", "angle": {"expr": value}},
    }
    _load_only_recipe_errors(lambda: from_dict(expr))


@pytest.mark.slow
@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_recipe_errors(blob):
    _load_only_recipe_errors(lambda: loads(blob))


def test_bases_load():
    for text in BASES:
        assert loads(text, base_dir=_TMP) is not None
