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
# ... and one whose .npy file is referred to three times (read once, issue 9 item 7).
_field = np.linspace(0, 5, 2 * 50 * 50).reshape(2, 50, 50)
_REPEATED_NPY_RECIPE = write_recipe(
    transfuse.CoordinateMap(_field)
    @ transfuse.CoordinateMap(_field)
    @ transfuse.CoordinateMap(_field),
    os.path.join(_TMP, "field.json"),
    indent=None,
).read_text()
BASES = [dumps(T, indent=None) for T in TRANSFORMS] + [
    dumps(PIPELINE),
    _NPY_RECIPE,
    _REPEATED_NPY_RECIPE,
    dumps(transfuse.Rotate(sympy.Integer(30)) @ transfuse.Translate((sympy.Rational(1, 2), 0))),
]


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
    assert time.perf_counter() - start < 10  # a hang guard (bounded work), not a speed test
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


# -- numeric expression trees: loading and then evaluating stay quick (issue 9, item 3) --------
_NUMERIC_LEAVES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.sampled_from([0.5, 1.5, -2.25, 1e300, 1e-300, 2**255, -(2**255)]),
    st.sampled_from([{"op": "pi"}, {"op": "E"}, {"symbol": "theta", "real": True}]),
)
_EXPONENTS = st.sampled_from([2, 3, 1000, -1, -1000, 0.5, [1, 3], 1e3])


def _numeric_node(children):
    def op(name, n):
        return st.lists(children, min_size=n, max_size=n).map(
            lambda args: {"op": name, "args": args}
        )

    return st.one_of(
        op("Add", 2),
        op("Mul", 2),
        st.tuples(children, st.one_of(_EXPONENTS, children)).map(
            lambda be: {"op": "Pow", "args": list(be)}
        ),
        *(op(name, 1) for name in ("floor", "ceiling", "exp", "sin", "log", "Abs")),
    )


numeric_trees = st.recursive(_NUMERIC_LEAVES, _numeric_node, max_leaves=10)


# sympy's first evaluation of a function imports and caches things: the time limit is
# the alarm below (a hang), not hypothesis's per-example deadline
FUZZ_NO_DEADLINE = type(FUZZ)(FUZZ, deadline=None)  # FUZZ's examples, without a deadline


@FUZZ_NO_DEADLINE
@given(numeric_trees)
def test_numeric_expressions_load_and_evaluate_quickly(tree):
    import signal

    doc = {
        "transfuse": "recipe",
        "version": 1,
        "transform": {"type": "Rotate", "angle": {"expr": tree}},
    }
    start = time.perf_counter()

    def too_slow(signum, frame):
        raise AssertionError(f"evaluating {json.dumps(tree)[:200]} took over 5 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(5)
    try:
        try:
            T = from_dict(doc)
        except RecipeError as exc:
            event(f"refused: {exc.reason[:30]}")
            return
        try:
            if T.free_symbols:
                T = T.bind(theta=1.5)
            m = T.matrix(2)
        except ValueError:  # not a finite real number: refused when the plan is built
            event("not finite")
            return
        assert m.dtype == np.float64 and np.isfinite(m).all()
        event("evaluated")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < 5


# -- ITK transform files: only FormatError, never a file outside, never its text ----------------
_ITK_DIR = tempfile.mkdtemp(prefix="transfuse-fuzz-itk-")
atexit.register(shutil.rmtree, _ITK_DIR, ignore_errors=True)
_SECRET = "root:x:0:0:FUZZ-SECRET:/root:/bin/bash"
_OUTSIDE = os.path.join(tempfile.mkdtemp(prefix="transfuse-fuzz-outside-"), "passwd")
atexit.register(shutil.rmtree, os.path.dirname(_OUTSIDE), ignore_errors=True)
with open(_OUTSIDE, "w") as _fh:
    _fh.write(_SECRET + "\n")
os.symlink(_OUTSIDE, os.path.join(_ITK_DIR, "link.tfm"))
os.mkfifo(os.path.join(_ITK_DIR, "fifo.tfm"))
os.mkdir(os.path.join(_ITK_DIR, "sub"))
with open(os.path.join(_ITK_DIR, "secret-inside.tfm"), "w") as _fh:
    _fh.write("#Insight Transform File V1.0\n" + _SECRET + "\n")
with open(os.path.join(_ITK_DIR, "part.tfm"), "w") as _fh:
    _fh.write(
        "#Insight Transform File V1.0\nTransform: TranslationTransform_double_2_2\n"
        "Parameters: 1 2\n"
    )
_ITK_LINES = [
    "#Insight Transform File V1.0",
    "#Transform 0",
    "Transform: CompositeTransform_double_2_2",
    "Transform: AffineTransform_double_2_2",
    "Parameters: 1 0 0 1 3 4",
    "FixedParameters: 0 0",
    "Transform: AffineTransform_double_40000_40000",
    "Transform: AffineTransform_double_" + "9" * 30 + "_" + "9" * 30,
    "Transform: Euler3DTransform_double_3_3",
    "Parameters: nan inf 1e999",
    "Parameters: 1_0 \u0661 0x10",
    "Transform: AffineTransform_double_\u0662_\u0662",
    "ComponentTransformFile: part.tfm",
    f"ComponentTransformFile: {_OUTSIDE}",
    "ComponentTransformFile: ../" + os.path.basename(os.path.dirname(_OUTSIDE)) + "/passwd",
    "ComponentTransformFile: link.tfm",
    "ComponentTransformFile: fifo.tfm",
    "ComponentTransformFile: sub",
    "ComponentTransformFile: secret-inside.tfm",
    "ComponentTransformFile: /dev/zero",
    "ComponentTransformFile: missing.tfm",
    _SECRET,
]
itk_files = st.lists(
    st.one_of(
        st.sampled_from(_ITK_LINES),
        st.text(max_size=20),
        st.binary(max_size=8).map(lambda b: b.decode("latin-1")),
    ),
    max_size=8,
).map(lambda lines: ["#Insight Transform File V1.0", *lines])


@FUZZ
@given(itk_files, st.booleans())
def test_itk_files_raise_only_format_errors(lines, invalid_utf8):
    from transfuse.io.itk import FormatError, read_itk

    data = "\n".join(lines).encode("utf-8", "surrogatepass") + (b"\xff\n" if invalid_utf8 else b"")
    path = os.path.join(_ITK_DIR, "main.tfm")
    with open(path, "wb") as fh:
        fh.write(data)
    start = time.perf_counter()
    try:
        T = read_itk(path)
    except FormatError as exc:
        assert "FUZZ-SECRET" not in str(exc) or _SECRET in "\n".join(lines)
        assert len(str(exc)) < 1000
        event(f"refused: {str(exc).split(': ', 2)[-1][:30]}")
    else:
        assert isinstance(T, transfuse.Transform)
        event("loaded")
    assert time.perf_counter() - start < 10  # a hang guard (bounded work), not a speed test


# -- OME-NGFF documents: only FormatError, bounded messages ----------------------------------
NGFF_BASES = [
    [{"type": "scale", "scale": [0.5, 2.0]}, {"type": "translation", "translation": [1.0, 3.0]}],
    {
        "type": "sequence",
        "transformations": [
            {"type": "mapAxis", "mapAxis": [1, 0]},
            {"type": "affine", "affine": [[1.0, 0.5, 2.0], [0.0, 1.0, -1.0]]},
            {"type": "rotation", "rotation": [[0.0, -1.0], [1.0, 0.0]]},
        ],
    },
    {
        "type": "bijection",
        "forward": {"type": "scale", "scale": [0.5, 0.5]},
        "inverse": {"type": "inverseOf", "transformation": {"type": "scale", "path": "s"}},
    },
    {
        "type": "byDimension",
        "input": "in",
        "output": "out",
        "transformations": [
            {"type": "scale", "scale": [2.0], "input_axes": ["y"], "output_axes": ["y"]},
            {
                "type": "translation",
                "translation": [1.0],
                "input_axes": ["x"],
                "output_axes": ["x"],
            },
        ],
    },
]
NGFF_SYSTEMS = [{"name": "in", "axes": ["y", "x"]}, {"name": "out", "axes": ["y", "x"]}]


@st.composite
def mutated_ngff(draw):
    doc = copy.deepcopy(draw(st.sampled_from(NGFF_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        if not slots:
            break
        parent, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "replace", "retype", "nest", "big"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "retype":
            parent[key] = draw(
                st.sampled_from(
                    [["1", "2"], [True, 1], [[1, 0, 0], [0, 1]], [10**30], "x" * 10_000, 1e308]
                )
            )
        elif action == "nest":
            node = parent[key]
            for _ in range(draw(st.sampled_from([2, 70]))):
                node = {"type": "inverseOf", "transformation": node}
            parent[key] = node
        else:
            parent[key] = [1.0] * draw(st.sampled_from([3, 40, 5000]))
    return doc


@FUZZ
@given(mutated_ngff())
def test_ngff_documents_raise_only_format_errors(doc):
    from transfuse.io.ngff import FormatError, from_ngff

    start = time.perf_counter()
    try:
        T = from_ngff(doc, NGFF_SYSTEMS, arrays={"s": np.array([0.5, 0.5])})
    except FormatError as exc:
        assert len(str(exc)) < 1000
        event(f"refused: {str(exc).split(': ', 1)[-1][:30]}")
    else:
        assert isinstance(T, transfuse.Transform)
        event("loaded")
    assert time.perf_counter() - start < 10  # a hang guard (bounded work), not a speed test
