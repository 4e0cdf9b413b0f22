"""JSON recipes: exact round trips, schema conformance, arrays, limits and hostile input."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import sympy
from hypothesis import given, reject
from hypothesis import strategies as st

import transfuse
from tests.strategies import examples
from transfuse import (
    Affine,
    Compose,
    CoordinateMap,
    DisplacementField,
    ExprMap,
    Flip,
    Identity,
    Permute,
    Rotate,
    Scale,
    Shear,
    Translate,
    symbols,
)
from transfuse.io import expressions, recipes
from transfuse.io.errors import RecipeError
from transfuse.io.recipes import (
    ARRAY,
    Pipeline,
    dumps,
    from_dict,
    loads,
    read_recipe,
    register_node,
    to_dict,
    write_recipe,
)
from transfuse.transforms.base import Transform

jsonschema = pytest.importorskip("jsonschema")
VALIDATOR = jsonschema.Draft202012Validator(recipes.recipe_schema())
SETTINGS = examples(0.3)

theta, phi = symbols("theta phi")
yy, xx, kk = symbols("y x k")
r = symbols("r", positive=True)
u = sympy.Symbol("u")  # no assumptions at all
SPECIAL = [
    -0.0,
    0.0,
    1e-300,
    -1e-300,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
]
SPECIAL += [0.1, 1 / 3, -2.5, 90.0]


# -- helpers ------------------------------------------------------------------------------------
def validate(doc):
    errors = sorted(VALIDATOR.iter_errors(doc), key=str)
    assert not errors, errors[0]


def assert_round_trip(obj):
    text = obj.to_json()
    back = loads(text)
    assert type(back) is type(obj)
    assert back == obj
    if isinstance(obj, Transform):
        assert back.key == obj.key  # float.hex and srepr of every parameter: bit for bit
    assert dumps(back) == text
    assert from_dict(to_dict(obj)) == obj
    validate(json.loads(text))
    return back


def refused(text_or_doc, *where, base_dir=None):
    """Loading must raise RecipeError whose message mentions every string in ``where``."""
    with pytest.raises(RecipeError) as info:
        if isinstance(text_or_doc, str | bytes):
            loads(text_or_doc, base_dir=base_dir)
        else:
            from_dict(text_or_doc, base_dir=base_dir)
    for w in where:
        assert w in str(info.value), str(info.value)
    return info.value


def doc(node):
    return {"transfuse": "recipe", "version": 1, "transform": node}


# -- examples of every node type -------------------------------------------------------------
EXAMPLES = [
    Identity(),
    Identity(3),
    Translate((1.0, -2.5, 1e-300)),
    Translate((theta, 5e-324)),
    Scale(2.0),
    Scale(r),
    Scale((2.0, 0.5)),
    Scale((theta, 1 / r)),
    Rotate(30.0),
    Rotate(theta),
    Rotate(theta * 2 + 1, axes=(2, 0), center=(1.0, phi, 3.0)),
    Rotate(45.0, axes=(-1, 0), ndim=3),
    Shear(0.5),
    Shear(theta, axes=(1, 0), ndim=2),
    Affine([[1, 2, 3], [4, 5, 6]]),
    Affine([2.0, 3.0], offset=1.0),
    Affine(sympy.Matrix([[sympy.cos(theta), -sympy.sin(theta), 0], [sympy.sin(theta), 1, r]])),
    Flip(0),
    Flip((0, 2), center=(1.5, phi)),
    Flip(-1, center=2.0, ndim=3),
    Permute((2, 0, 1)),
    Rotate(theta) @ Translate((1.0, phi)) @ Scale(2.0),
    Compose((Rotate(10.0),)),
    CoordinateMap(np.arange(24.0).reshape(2, 3, 4) / 7),
    Rotate(theta) @ CoordinateMap(np.full((2, 70, 70), 5e-324)),
    DisplacementField(np.full((2, 4, 5), 0.25), spacing=(2.0, 0.5), origin=(1.0, -3.0)),
    DisplacementField(np.ones((1, 5000)) / 3, order=3, mode="grid-wrap", cval=1e-300),
    ExprMap([10 + (yy - 10) * (1 + kk * xx**2), xx + sympy.sin(yy) / 7], (yy, xx)),
    ExprMap([yy + kk, xx * sympy.Float("0.1", 30)], (yy, xx), parameters=("k",)),
    ExprMap([yy + kk * xx, xx], "y x").bind(k=0.01),
    ExprMap([yy + sympy.sin(xx) / 10, xx + yy**2 / 200], (yy, xx)).inverse(tol=1e-8),
    Rotate(theta) @ ExprMap([yy, xx + sympy.atan2(yy, 3)], (yy, xx)) @ Scale(2.0),
    (Rotate(theta) @ Translate((phi, 1.0))).bind(theta=30.0),  # partially bound
    Rotate(sympy.pi / 7 + sympy.sqrt(2) * theta),
    Translate((sympy.Float("0.1", 30) * theta, sympy.Rational(-7, 3) * u)),
]


@pytest.mark.parametrize("T", EXAMPLES, ids=lambda T: repr(T)[:60])
def test_round_trip_examples(T):
    assert_round_trip(T)


def test_every_builtin_node_type_has_an_example():
    covered = {type(p).__name__ for T in EXAMPLES for p in (T, *T.parts)}
    assert set(transfuse.transforms.__all__) & set(recipes.registered_types()) <= covered


def test_document_layout_and_node_shape():
    d = to_dict(Rotate(theta) @ Translate((1.0, 2.0)))
    assert list(d) == ["transfuse", "version", "transform"]
    assert d["transform"]["type"] == "Compose"
    assert d["transform"]["transforms"][0] == {
        "type": "Rotate",
        "angle": {"expr": {"symbol": "theta", "real": True}},
        "axes": [0, 1],
        "center": None,
        "ndim": None,
    }


@pytest.mark.parametrize("value", SPECIAL)
def test_special_floats_bit_for_bit(value):
    back = assert_round_trip(Translate((value, 1.0)))
    assert back.vector[0].hex() == (value + 0.0).hex()
    if value:
        assert assert_round_trip(Scale(value)).factors.hex() == value.hex()


def test_negative_zero_survives_where_transfuse_keeps_it():
    # transforms normalise -0.0 to 0.0; the recipe layer itself keeps the sign
    back = loads(dumps(Pipeline(Translate((1.0,)), cval=-0.0)))
    assert str(back.cval) == "-0.0"
    assert expressions.decode_expr(-0.0) == sympy.Float(0.0)


def test_hand_written_recipe_with_defaults_and_ints():
    T = loads(json.dumps(doc({"type": "Rotate", "angle": 90})))
    assert T == Rotate(90.0)


# -- sympy expressions ---------------------------------------------------------------------------
EXPRESSIONS = [
    theta,
    r,
    u,
    sympy.Symbol("v", real=True, positive=True),
    sympy.Symbol("w", positive=False),
    sympy.Symbol("θ", real=True),
    sympy.pi * theta / 180,
    sympy.E**theta,
    sympy.sqrt(r) + sympy.cbrt(theta),
    sympy.Rational(3, 7) * theta**-3,
    sympy.Float(0.1) * theta + sympy.Float("1e-300"),
    sympy.Float("1e-400", 53) * theta,
    sympy.Float("1e400", 53) * theta,
    sympy.Float("0.1", 50) * theta,
    sympy.Integer(2**200) * theta,
    theta**1000,
    sympy.atan2(theta, r),
    sympy.Min(theta, 1, phi),
    sympy.Max(theta, r),
    sympy.log(r) + sympy.exp(-theta) + sympy.Abs(phi) + sympy.sign(theta),
    sympy.floor(theta) + sympy.ceiling(phi),
    sympy.tan(theta) + sympy.asin(theta) + sympy.acos(theta) + sympy.atan(theta),
    sympy.sinh(theta) + sympy.cosh(theta) + sympy.tanh(theta),
    sympy.pi**2 + sympy.E,
    sympy.sqrt(2) * theta,
    sympy.Add(theta, theta, evaluate=False),  # unevaluated trees come back unevaluated
]


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=str)
def test_expression_round_trip_exact(expr):
    tree = expressions.encode_expr(expr)
    back = expressions.decode_expr(json.loads(json.dumps(tree)))
    assert back == expr
    assert sympy.srepr(back) == sympy.srepr(expr)  # symbol assumptions, float precisions
    validate(doc({"type": "Rotate", "angle": {"expr": tree}}))


def test_sqrt_is_accepted_on_reading():
    tree = {"op": "sqrt", "args": [{"symbol": "r", "positive": True}]}
    assert expressions.decode_expr(tree) == sympy.sqrt(r)


@pytest.mark.parametrize(
    "expr",
    [
        sympy.I * theta,
        sympy.oo,
        sympy.zoo * theta,
        sympy.Dummy("d"),
        sympy.Symbol("n", integer=True),
        sympy.Integral(theta, theta),
        sympy.Function("f")(theta),
        theta**1001,
        sympy.Integer(2**300) * theta,
        sympy.gamma(theta),
    ],
    ids=str,
)
def test_expressions_that_cannot_be_written(expr):
    with pytest.raises(RecipeError):
        expressions.encode_expr(expr)


def test_unwritable_parameter_names_its_path():
    T = Rotate(10.0) @ Translate((1.0, 2.0)) @ Rotate(sympy.gamma(theta))
    with pytest.raises(RecipeError, match=r"transform\.transforms\[2\]\.angle"):
        T.to_json()


def test_unregistered_node_type_is_refused_when_writing():
    @dataclasses.dataclass(frozen=True, repr=False)
    class Mystery(Transform):
        pass

    with pytest.raises(RecipeError, match="register_node"):
        dumps(Mystery())


# -- hypothesis: chains of every node type, numeric and symbolic ---------------------------------
FINITE = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(SPECIAL))
FUNCS = [sympy.sin, sympy.cos, sympy.exp, sympy.Abs, sympy.sqrt, sympy.atan, sympy.floor]
SMALL = st.one_of(
    st.floats(-1e6, 1e6), st.sampled_from([-0.0, 1e-300, 5e-324, -5e-324, 0.1, 1 / 3])
)
ATOMS = st.one_of(
    st.sampled_from([theta, phi, r, u, sympy.pi, sympy.E, sympy.Rational(1, 3)]),
    st.integers(-(10**12), 10**12).map(sympy.Integer),
    SMALL.map(sympy.Float),
)


def _safe(op):
    """``op`` on sympy values, or nan (filtered out below) when sympy gives up."""

    def apply(args):
        try:
            return op(*args)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError):
            return sympy.nan

    return apply


def _grow(children):
    pair = st.tuples(children, children)
    return st.one_of(
        pair.map(_safe(lambda a, b: a + b)),
        pair.map(_safe(lambda a, b: a * b)),
        st.tuples(children, st.integers(-3, 3)).map(_safe(lambda a, n: a**n)),
        st.tuples(st.sampled_from(FUNCS), children).map(_safe(lambda f, a: f(a))),
        pair.map(_safe(sympy.atan2)),
        pair.map(_safe(sympy.Min)),
    )


FORBIDDEN = (sympy.zoo, sympy.oo, -sympy.oo, sympy.nan, sympy.I)


def _writable_expr(e) -> bool:
    """Free of non-finite atoms and within the documented number limits."""
    if e.has(*FORBIDDEN):
        return False
    floats_ok = all(abs(f._mpf_[2]) <= expressions.MAX_FLOAT_EXPONENT for f in e.atoms(sympy.Float))
    ints_ok = all(
        max(abs(q.p), q.q).bit_length() <= expressions.MAX_INT_BITS for q in e.atoms(sympy.Rational)
    )
    try:  # exact arithmetic bounded (exp(8192) would build a 12,000-bit number)
        expressions.check_size(e)
    except RecipeError:
        return False
    return floats_ok and ints_ok


EXPRS = st.recursive(ATOMS, _grow, max_leaves=6).filter(_writable_expr)
SCALARS = st.one_of(FINITE, FINITE, EXPRS)


def _vector(n):
    return st.lists(SCALARS, min_size=n, max_size=n).map(tuple)


@st.composite
def elementary(draw, n):
    kinds = ["Identity", "Translate", "Scale", "Affine", "Flip", "Permute"]
    kinds += ["Rotate", "Shear"] if n >= 2 else []
    kind = draw(st.sampled_from(kinds))
    own_ndim = draw(st.sampled_from([None, n]))
    axes = draw(st.permutations(range(n)))
    try:
        if kind == "Identity":
            return Identity(own_ndim)
        if kind == "Translate":
            return Translate(draw(_vector(n)))
        if kind == "Scale":
            return Scale(draw(st.one_of(SCALARS, _vector(n))))
        if kind == "Rotate":
            center = draw(st.one_of(st.none(), _vector(n)))
            return Rotate(draw(SCALARS), axes=tuple(axes[:2]), center=center, ndim=own_ndim)
        if kind == "Shear":
            return Shear(draw(SCALARS), axes=tuple(axes[:2]), ndim=own_ndim)
        if kind == "Affine":
            rows = [list(draw(_vector(n + 1))) for _ in range(n)]
            if any(isinstance(v, sympy.Basic) for row in rows for v in row):
                return Affine(sympy.Matrix(rows))
            return Affine(np.array(rows))
        if kind == "Flip":
            k = draw(st.integers(1, n))
            center = draw(st.one_of(FINITE, _vector(k)))
            return Flip(tuple(axes[:k]), center=center, ndim=own_ndim)
        return Permute(tuple(axes))
    except (ValueError, OverflowError):
        reject()


@st.composite
def chains(draw):
    n = draw(st.integers(1, 3))
    parts = draw(st.lists(elementary(n), min_size=1, max_size=4))
    T = parts[0] if len(parts) == 1 else Compose(tuple(parts))
    free = sorted(T.free_symbols, key=str)
    bound = draw(st.lists(st.sampled_from(free), unique=True)) if free else []
    if bound:
        try:
            T = T.bind(**{s.name: draw(st.floats(-10, 10)) for s in bound})
        except (ValueError, TypeError, ZeroDivisionError):
            reject()
    return T


def _writable(T) -> bool:
    def values(v):
        if isinstance(v, tuple):
            return [x for item in v for x in values(item)]
        return [v]

    for part in T.parts:
        for v in values(tuple(part.params().values())):
            if isinstance(v, sympy.Basic) and not _writable_expr(v):
                return False
    return True


@SETTINGS
@given(chains())
def test_round_trip_generated_chains(T):
    if not _writable(T):
        reject()
    assert_round_trip(T)


@SETTINGS
@given(st.lists(FINITE, min_size=1, max_size=5))
def test_any_finite_float_round_trips_bit_for_bit(values):
    back = loads(dumps(Translate(tuple(values))))
    assert [v.hex() for v in back.vector] == [(v + 0.0).hex() for v in values]


@SETTINGS
@given(EXPRS)
def test_generated_expressions_round_trip(expr):
    tree = json.loads(json.dumps(expressions.encode_expr(expr)))
    assert sympy.srepr(expressions.decode_expr(tree)) == sympy.srepr(expr)


# -- pipelines ------------------------------------------------------------------------------------
PIPELINES = [
    Pipeline(Rotate(30.0, center=(2.0, 2.0))),
    Pipeline(
        Rotate(theta) @ Scale(2.0),
        output_shape=(5, 6),
        order=1,
        mode="grid-mirror",
        cval=-1e-300,
        prefilter=False,
        output_chunks=((2, 3), (3, 3)),
    ),
    Pipeline(Translate((1.0, 2.0)), output_chunks=4),
]


@pytest.mark.parametrize("P", PIPELINES, ids=range(len(PIPELINES)))
def test_pipeline_round_trip(P):
    assert_round_trip(P)
    assert json.loads(P.to_json())["pipeline"]["mode"] == P.mode


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": 6},
        {"order": True},
        {"mode": "eval"},
        {"cval": float("nan")},
        {"prefilter": 1},
        {"output_shape": (-1, 3)},
        {"output_shape": (3, 3), "output_chunks": (2,)},
        {"output_chunks": (0, 2)},
    ],
)
def test_pipeline_validation(kwargs):
    with pytest.raises(ValueError):
        Pipeline(Translate((1.0, 2.0)), **kwargs)
    good = Pipeline(Translate((1.0, 2.0))).to_dict()
    key = next(iter(kwargs))
    value = kwargs[key]
    if isinstance(value, float):
        return  # NaN cannot be written in JSON at all
    good["pipeline"].update({k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})
    refused(good, "pipeline")


def test_pipeline_apply_matches_lazy_transform():
    lazy_mod = pytest.importorskip("transfuse.lazy")
    x = np.arange(36.0).reshape(6, 6)
    P = loads(Pipeline(Rotate(90.0, center=(2.5, 2.5)), order=1, output_chunks=3).to_json())
    expected = lazy_mod.lazy(x).transform(P.transform, order=1, output_chunks=3).compute()
    np.testing.assert_array_equal(np.asarray(P.apply(x).compute()), expected)


# -- arrays (through a node registered here, as issue-4 nodes will be) ----------------------------
@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class ArrayNode(Transform):
    field: object = None

    def __eq__(self, other):
        return (
            type(other) is type(self)
            and self.field.dtype == other.field.dtype
            and np.array_equal(self.field, other.field, equal_nan=self.field.dtype.kind == "f")
        )


register_node(ArrayNode, {"field": ARRAY}, name="TestArrayNode", required=("field",))
ARRAYS = [
    np.arange(6.0).reshape(2, 3),
    np.array([-0.0, 5e-324, 1e-300, np.pi], dtype=">f8"),
    np.array([1.5, -2.25], dtype=np.float32),
    np.array([0.5], dtype=np.float16),
    np.array([[True, False]]),
    np.array([-(2**63), 2**63 - 1]),
    np.array([2**64 - 1], dtype=np.uint64),
    np.zeros((0, 3), dtype=np.int8),
    np.zeros((2, 3, 2), dtype=np.uint16),
]


@pytest.mark.parametrize("a", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_inline_arrays_round_trip(a):
    T = ArrayNode(a)
    text = dumps(T)
    back = loads(text)
    assert back == T and back.field.tobytes() == a.tobytes() and back.key == T.key
    assert "data" in text


@pytest.mark.parametrize(
    "a",
    [np.random.default_rng(0).normal(size=(3, 40, 50)), np.array([np.nan, np.inf, 1.0])],
    ids=["large", "non-finite"],
)
def test_large_or_non_finite_arrays_go_to_npy(tmp_path, a):
    T = ArrayNode(a)
    path = write_recipe(T, tmp_path / "field.json")
    npys = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert len(npys) == 1 and npys[0].startswith("field.")
    d = json.loads(path.read_text())
    assert d["transform"]["field"]["array"]["npy"] == npys[0]
    validate(doc({"type": "CoordinateMap", "coords": d["transform"]["field"]}))
    assert read_recipe(path) == T
    # moving the directory keeps the reference valid (it is relative)
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in tmp_path.glob("field*"):
        p.rename(moved / p.name)
    assert read_recipe(moved / "field.json") == T
    with pytest.raises(RecipeError, match="non-finite|NaN|inline|write_recipe"):
        dumps(T) if not np.isfinite(a).all() else dumps(ArrayNode(np.zeros(2**20 + 1)))


def test_small_arrays_stay_inline_with_write_recipe(tmp_path):
    write_recipe(ArrayNode(np.ones(4096)), tmp_path / "a.json")
    assert not list(tmp_path.glob("*.npy"))
    write_recipe(ArrayNode(np.ones(4097)), tmp_path / "b.json")
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_unsupported_dtypes_cannot_be_written():
    for a in (np.array(["x"]), np.array([object()]), np.array([1j])):
        with pytest.raises(RecipeError):
            dumps(ArrayNode(a))


def _array_doc(spec):
    return doc({"type": "TestArrayNode", "field": {"array": spec}})


@pytest.mark.parametrize(
    "ref",
    [
        "../../etc/passwd",
        "../outside.npy",
        "sub/../../outside.npy",
        "/etc/passwd.npy",
        "//server/share.npy",
        "C:\\evil.npy",
        "..\\evil.npy",
        "a.txt",
        "",
        "x\x00.npy",
        7,
    ],
)
def test_npy_references_must_stay_inside(tmp_path, ref):
    inside = tmp_path / "inside"
    inside.mkdir()
    np.save(tmp_path / "outside.npy", np.zeros(3))
    spec = {"dtype": "<f8", "shape": [3], "npy": ref}
    refused(json.dumps(_array_doc(spec)), "transform.field.array.npy", base_dir=inside)


def test_npy_symlink_out_of_the_directory_is_refused(tmp_path):
    inside = tmp_path / "inside"
    inside.mkdir()
    np.save(tmp_path / "secret.npy", np.zeros(3))
    os.symlink(tmp_path / "secret.npy", inside / "link.npy")
    spec = {"dtype": "<f8", "shape": [3], "npy": "link.npy"}
    refused(json.dumps(_array_doc(spec)), "outside", base_dir=inside)


def test_npy_reference_needs_a_directory():
    spec = {"dtype": "<f8", "shape": [3], "npy": "a.npy"}
    refused(json.dumps(_array_doc(spec)), "read_recipe")


def test_npy_content_must_match_and_never_unpickles(tmp_path):
    np.save(tmp_path / "ints.npy", np.arange(3))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "short.npy").write_bytes((tmp_path / "ints.npy").read_bytes()[:-4])
    for name, dtype, shape in [
        ("ints.npy", "<f8", [3]),
        ("ints.npy", "<i8", [4]),
        ("obj.npy", "<f8", [1]),
        ("junk.npy", "<f8", [3]),
        ("short.npy", "<i8", [3]),
        ("missing.npy", "<f8", [3]),
    ]:
        spec = {"dtype": dtype, "shape": shape, "npy": name}
        refused(json.dumps(_array_doc(spec)), "npy", base_dir=tmp_path)


@pytest.mark.parametrize(
    "spec, where",
    [
        ({"dtype": "<f8", "shape": [2], "data": [1.0]}, "data"),
        ({"dtype": "<f8", "shape": [2], "data": [1.0, "2"]}, "data"),
        ({"dtype": "|b1", "shape": [1], "data": [1]}, "data"),
        ({"dtype": "|i1", "shape": [1], "data": [300]}, "data"),
        ({"dtype": "<i8", "shape": [1], "data": [1.5]}, "data"),
        ({"dtype": "<f2", "shape": [1], "data": [1e300]}, "data"),
        ({"dtype": "|O", "shape": [1], "data": [1]}, "dtype"),
        ({"dtype": "<f8", "shape": [-1], "data": []}, "shape"),
        ({"dtype": "<f8", "shape": [2**20 + 1], "data": []}, "data"),
        ({"dtype": "<f8", "shape": [1] * 33, "data": [0.0]}, "shape"),
        ({"dtype": "<f8", "shape": [1], "data": [0.0], "npy": "a.npy"}, "array"),
        ({"dtype": "<f8", "shape": [1]}, "array"),
    ],
)
def test_bad_inline_arrays(spec, where):
    refused(json.dumps(_array_doc(spec)), "transform.field.array", where)


def test_every_transform_class_is_registered_except_callables():
    classes = {
        name
        for name in transfuse.transforms.__all__
        if isinstance(getattr(transfuse.transforms, name), type)
        and issubclass(getattr(transfuse.transforms, name), Transform)
    }
    abstract = {"Transform", "AffineTransform", "NonlinearTransform"}
    missing = classes - abstract - set(recipes.registered_types())
    assert missing <= {"FunctionMap"}, missing


def test_function_maps_cannot_be_written():
    with pytest.raises(RecipeError, match="FunctionMap"):
        dumps(transfuse.transforms.FunctionMap(lambda c: c, ndim=2))


# -- hostile recipes -------------------------------------------------------------------------------
CODE = "__import__('os').system('touch /tmp/transfuse-pwned')"
ROT = {"type": "Rotate", "angle": 1.0}
HOSTILE = [
    (doc({"type": "Eval", "code": CODE}), "unknown node type"),
    (doc({"type": CODE}), "transform"),
    (doc({"type": "Rotate", "angle": CODE}), "transform.angle"),
    (doc({"type": "Rotate", "angle": {"expr": CODE}}), "transform.angle.expr"),
    (doc({"type": "Rotate", "angle": {"expr": {"symbol": CODE}}}), "transform.angle.expr"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "__import__", "args": ["os"]}}}), "op"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "Add", "args": [1, CODE]}}}), "args[1]"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "sympify", "args": [1]}}}), "unknown"),
    (doc({"type": "Rotate", "angle": {"expr": {"symbol": "x", "commutative": False}}}), "expr"),
    (doc({"type": "Rotate", "angle": {"expr": {"symbol": "x", "real": "yes"}}}), "real"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "Pow", "args": [2, 10**9]}}}), "exponent"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "Pow", "args": [[1, 3], 5]}}}), "power"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "sin", "args": []}}}), "sin"),
    (doc({"type": "Rotate", "angle": {"expr": {"op": "Add", "args": [1]}}}), "Add"),
    (doc({"type": "Rotate", "angle": {"expr": [1, 0]}}), "denominator"),
    (doc({"type": "Rotate", "angle": {"expr": [1, 2, 3]}}), "rational"),
    (doc({"type": "Rotate", "angle": {"expr": {"float": [1, 10**6, 53]}}}), "exponent"),
    (doc({"type": "Rotate", "angle": {"expr": 1.0, "extra": 1}}), "expr"),
    (doc({"type": "Rotate", "angle": True}), "transform.angle"),
    (doc({"type": "Rotate", "angle": None}), "transform.angle"),
    (doc({"type": "Rotate", "angle": [1.0]}), "transform.angle"),
    (doc({"type": "Rotate"}), "needs the fields"),
    (doc({"type": "Rotate", "angle": 1.0, "ndim": "3"}), "transform.ndim"),
    (doc({"type": "Rotate", "angle": 1.0, "ndim": 10**6}), "transform.ndim"),
    (doc({"type": "Rotate", "angle": 1.0, "axes": [0, 0]}), "invalid Rotate"),
    (doc({"type": "Rotate", "angle": 1.0, "__class__": "x"}), "unknown fields"),
    (doc({"type": "Compose", "transforms": []}), "transform.transforms"),
    (
        doc({"type": "Compose", "transforms": [ROT, ROT, {"type": "Rotate", "angle": "x"}]}),
        "transform.transforms[2].angle",
    ),
    (doc({"type": "Translate", "vector": {"expr": 1}}), "transform.vector"),
    (doc({"type": "Affine", "linear": [[1.0, 0.0]], "offset": [0.0]}), "invalid Affine"),
    (doc({"type": "Scale", "factors": {"expr": {"op": "log", "args": [-1]}}}), "Scale"),
    (doc({"type": "ExprMap", "expressions": [{"expr": 1}], "coords": [{"expr": 1}]}), "coords"),
    (
        doc({"type": "ExprMap", "expressions": [CODE], "coords": [{"expr": {"symbol": "y"}}]}),
        "transform.expressions[0]",
    ),
    (
        doc(
            {
                "type": "ExprMap",
                "expressions": [{"expr": 1}],
                "coords": [{"expr": {"symbol": "y"}}],
                "parameters": [CODE],
            }
        ),
        "transform.parameters[0]",
    ),
    (doc({"type": "InverseExprMap", "forward": ROT}), "invalid InverseExprMap"),
    (
        doc(
            {
                "type": "DisplacementField",
                "field": {"array": {"dtype": "<f8", "shape": [1, 2], "data": [0.0, 1.0]}},
                "mode": CODE,
            }
        ),
        "invalid DisplacementField",
    ),
    (doc(ROT) | {"version": 2}, "newer"),
    (doc(ROT) | {"version": "1"}, "version"),
    (doc(ROT) | {"extra": 1}, "unknown top-level"),
    ({"version": 1, "transform": ROT}, "not a transfuse recipe"),
    (doc(ROT) | {"pipeline": {"transform": ROT}}, "exactly one"),
    ({"transfuse": "recipe", "version": 1}, "exactly one"),
    ([ROT], "JSON object"),
    (
        {"transfuse": "recipe", "version": 1, "pipeline": {"transform": ROT, "order": "3"}},
        "pipeline.order",
    ),
    (
        {"transfuse": "recipe", "version": 1, "pipeline": {"transform": ROT, "eval": 1}},
        "unknown pipeline fields",
    ),
]


@pytest.mark.parametrize("bad, where", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_recipes_are_refused(bad, where):
    refused(json.dumps(bad), where)
    refused(bad, where)
    assert not os.path.exists("/tmp/transfuse-pwned")


@pytest.mark.parametrize(
    "text, where",
    [
        (
            '{"transfuse": "recipe", "version": 1, "transform": {"type": "Scale", "factors": NaN}}',
            "NaN",
        ),
        (
            '{"transfuse": "recipe", "version": 1, "transform": {"type": "Scale", "factors": '
            "Infinity}}",
            "Infinity",
        ),
        (
            '{"transfuse": "recipe", "version": 1, "transform": {"type": "Scale", "factors": '
            "-Infinity}}",
            "Infinity",
        ),
        (
            '{"transfuse": "recipe", "version": 1, "transform": {"type": "Scale", "factors": '
            "1e999}}",
            "overflows",
        ),
        (
            '{"transfuse": "recipe", "version": 1, "transform": {"type": "Scale", "factors": 1'
            + "0" * 5000
            + "}}",
            "digits",
        ),
        (
            '{"transfuse": "recipe", "version": 1, "version": 1, '
            '"transform": {"type": "Identity"}}',
            "duplicate",
        ),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe{", "not valid JSON"),
        ("", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "nested"),
        ("[" * 70 + "]" * 70, "nested deeper"),
    ],
    ids=range(11),
)
def test_hostile_texts_are_refused(text, where):
    refused(text, where)


def test_non_json_python_values_are_refused():
    for bad in (np.float64(1.0), (1.0,), float("nan"), {1: 2}, b"x", 2**300):
        refused(doc({"type": "Scale", "factors": bad}), "transform.factors")


def test_limits():
    big_text = " " * (recipes.MAX_TEXT_BYTES + 1)
    refused(big_text, "exceeds")
    deep = {"type": "Rotate", "angle": 1.0}
    tree = 1
    for _ in range(40):
        tree = {"op": "sin", "args": [tree]}
    refused(doc({"type": "Rotate", "angle": {"expr": tree}}), "nested")
    many = doc({"type": "Compose", "transforms": [deep] * (recipes.MAX_NODES + 1)})
    refused(many, "transform nodes")
    wide = {"op": "Add", "args": [{"symbol": "x"}] * (expressions.MAX_EXPR_NODES + 1)}
    refused(doc({"type": "Rotate", "angle": {"expr": wide}}), "nodes in one expression")
    ten = {"op": "Add", "args": [{"symbol": "x"}] * 9_000}
    refused(doc({"type": "Translate", "vector": [{"expr": ten}] * 12}), "expression nodes")
    refused(doc({"type": "Rotate", "angle": {"expr": 2**257}}), "bits")
    refused(
        doc({"type": "Rotate", "angle": {"expr": {"op": "Pow", "args": [1, 1001]}}}), "exponent"
    )


def test_read_recipe_size_limit_and_missing_file(tmp_path):
    p = tmp_path / "big.json"
    with open(p, "wb") as fh:
        fh.truncate(recipes.MAX_TEXT_BYTES + 1)
    with pytest.raises(RecipeError, match="exceeds"):
        read_recipe(p)
    with pytest.raises(OSError):
        read_recipe(tmp_path / "missing.json")


def test_write_recipe_writes_nothing_when_encoding_fails(tmp_path):
    T = Compose((ArrayNode(np.ones(5000)), Rotate(sympy.gamma(theta))))
    with pytest.raises(RecipeError):
        write_recipe(T, tmp_path / "x.json")
    assert not list(tmp_path.iterdir())


def test_errors_are_value_errors_with_a_path():
    err = refused(doc({"type": "Rotate", "angle": "x"}), "transform.angle")
    assert isinstance(err, ValueError)
    assert err.path == "transform.angle"


def test_loader_does_not_need_jsonschema(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "jsonschema", None)
    assert loads(Rotate(theta).to_json()) == Rotate(theta)


def test_schema_rejects_what_the_loader_rejects():
    for bad, _ in HOSTILE[:6]:
        assert list(VALIDATOR.iter_errors(bad))


def test_dask_backed_arrays_are_not_written():
    da = pytest.importorskip("dask.array")
    with pytest.raises(RecipeError, match="dask"):
        dumps(CoordinateMap(da.zeros((2, 4, 4), chunks=2)))


def test_zero_to_a_negative_power_is_refused():
    tree = {"op": "Mul", "args": [0.0, {"op": "Pow", "args": [0.0, -1]}]}
    refused(doc({"type": "Rotate", "angle": {"expr": tree}}), "division by zero")


def test_npy_names_are_safe_for_any_recipe_name(tmp_path):
    T = CoordinateMap(np.zeros((2, 50, 50)))
    path = write_recipe(T, tmp_path / "my: field\\x.json")
    (npy,) = tmp_path.glob("*.npy")
    assert all(c.isalnum() or c in "._-" for c in npy.name)
    assert read_recipe(path) == T


def test_top_level_names():
    assert transfuse.loads(transfuse.dumps(Rotate(theta))) == Rotate(theta)
    assert transfuse.RecipeError is RecipeError
    assert transfuse.Pipeline is Pipeline


# -- files: regular only, each .npy read once, a total budget (issue 9, items 2 and 7) ---------
def _field_refs(name, count):
    nodes = [
        {
            "type": "DisplacementField",
            "field": {"array": {"dtype": "<f8", "shape": [2, 40, 50], "npy": name}},
        }
        for _ in range(count)
    ]
    return doc({"type": "Compose", "transforms": nodes})


def test_one_npy_referred_to_many_times_is_loaded_once(tmp_path, monkeypatch):
    import tracemalloc

    field = np.random.default_rng(0).normal(size=(2, 40, 50))
    np.save(tmp_path / "f.npy", field)
    reads = []
    original = np.fromfile
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: reads.append(1) or original(*a, **k))
    tracemalloc.start()
    try:
        T = from_dict(_field_refs("f.npy", 60), base_dir=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(reads) == 1
    assert peak < 6 * field.nbytes  # was one copy per reference (60 x)
    fields = [part.field for part in T.transforms]
    assert all(f is fields[0] for f in fields)
    np.testing.assert_array_equal(fields[0], field)
    assert not fields[0].flags.writeable
    # the same content from a user's array still gives the same key, and is copied
    user = field.copy()
    D = transfuse.DisplacementField(user)
    assert D.field is not user and D.key == T.transforms[0].key
    user[0, 0, 0] += 1  # the transform does not see changes to the caller's array
    assert D.key == T.transforms[0].key and D.field[0, 0, 0] == field[0, 0, 0]


def test_npy_total_budget(tmp_path, monkeypatch):
    from transfuse.io import recipe_arrays

    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, np.zeros((2, 40, 50)))
    monkeypatch.setattr(recipe_arrays, "MAX_TOTAL_NPY_BYTES", 50_000)
    assert from_dict(_field_refs("a.npy", 5), base_dir=tmp_path) is not None  # counted once
    two = _field_refs("a.npy", 2)
    two["transform"]["transforms"][1]["field"]["array"]["npy"] = "b.npy"
    refused(two, "in all", base_dir=tmp_path)


def test_one_npy_referred_to_with_two_shapes_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 40, 50)))
    d = _field_refs("a.npy", 2)
    d["transform"]["transforms"][1]["field"]["array"]["shape"] = [2, 50, 40]
    refused(d, "transforms[1]", "holds", base_dir=tmp_path)


def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    import threading

    os.mkfifo(tmp_path / "pipe.npy")
    os.mkfifo(tmp_path / "pipe.json")
    os.symlink("/dev/zero", tmp_path / "zero.npy")
    outcome = {}

    def run():
        for key, load in {
            "npy": lambda: from_dict(_field_refs("pipe.npy", 1), base_dir=tmp_path),
            "device": lambda: from_dict(_field_refs("zero.npy", 1), base_dir=tmp_path),
            "recipe": lambda: read_recipe(tmp_path / "pipe.json"),
        }.items():
            try:
                load()
            except RecipeError as exc:
                outcome[key] = str(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "reading blocked"
    assert "not a regular file" in outcome["npy"]
    assert "leads outside" in outcome["device"]
    assert "not a regular file" in outcome["recipe"]


# -- exact arithmetic is bounded (issue 9, item 3) --------------------------------------------
def _pow(b, e):
    return {"op": "Pow", "args": [b, e]}


def _op(name, *args):
    return {"op": name, "args": list(args)}


THREE = _op("Add", 1, 2)
THETA = {"symbol": "theta", "real": True}
PI = {"op": "pi"}
HEAVY = {
    "nested powers (the 232-byte recipe)": _pow(_pow(_pow(THREE, 1000), 1000), 1000),
    "nested powers of a symbol": _pow(_pow(_pow(_op("Add", THETA, 2), 1000), 1000), 1000),
    "nested powers of a float": _pow(_pow(1.5, 1000), 1000),
    "a huge computed exponent": _pow(THREE, _op("floor", _op("Mul", PI, 2**255))),
    "an unbounded floor": _pow(THREE, _op("floor", _pow(_op("sin", {"op": "E"}), -1))),
    "a tower of exp": _op("exp", _op("exp", _op("exp", 1000))),
    "a product of big powers, powered": _pow(
        _op("Mul", *[_pow(THREE, 1000) for _ in range(30)]), 1000
    ),
}


@pytest.mark.parametrize("tree", HEAVY.values(), ids=HEAVY.keys())
def test_expressions_with_huge_exact_values_are_refused_quickly(tree):
    import time

    text = json.dumps(doc({"type": "Rotate", "angle": {"expr": tree}}))
    start = time.perf_counter()
    refused(text, "transform.angle.expr", f"more than {expressions.MAX_EXACT_BITS} bits")
    assert time.perf_counter() - start < 0.5


def test_the_232_byte_recipe_no_longer_hangs_the_cli(tmp_path, capsys):
    from transfuse.cli import main

    path = tmp_path / "hang.json"
    path.write_text(
        json.dumps(doc({"type": "Rotate", "angle": {"expr": HEAVY[next(iter(HEAVY))]}}))
    )
    assert len(path.read_bytes()) < 300
    for argv in (["explain", path], ["explain", path, "--shape", "4,4"]):
        assert main([str(a) for a in argv]) == 2
        assert "more than 16384 bits" in capsys.readouterr().err


LIGHT = {
    "3**1000 / 3**999": (_op("Mul", _pow(THREE, 1000), _pow(THREE, -999)), 3),
    "pi**1000 / pi**999": (_op("Mul", _pow(PI, 1000), _pow(PI, -999)), math.pi),
    "1 / sin(E)": (_pow(_op("sin", {"op": "E"}), -1), 1 / math.sin(math.e)),
    "exp(700) / exp(699)": (_op("Mul", _op("exp", 700), _op("exp", -699)), math.e),
    "floor(pi * 100)": (_op("floor", _op("Mul", PI, 100)), 314),
    "30 as an expression": (30, 30),
}


@pytest.mark.parametrize("tree, angle", LIGHT.values(), ids=LIGHT.keys())
def test_moderate_constant_expressions_load_and_plan(tree, angle):
    import scipy.ndimage as ndi

    T = loads(json.dumps(doc({"type": "Rotate", "angle": {"expr": tree}})))
    np.testing.assert_allclose(T.matrix(2), Rotate(angle).matrix(2), rtol=0, atol=1e-12)
    x = np.random.default_rng(1).random((7, 8))
    out = transfuse.lazy(x, chunks=4).transform(T, order=1).compute()
    np.testing.assert_allclose(out, ndi.affine_transform(x, T.matrix(2), order=1), atol=1e-12)


def test_writing_checks_the_same_bound():
    e = sympy.Pow(
        sympy.Pow(sympy.Add(1, 2, evaluate=False), 1000, evaluate=False), 1000, evaluate=False
    )
    with pytest.raises(RecipeError, match="bits"):
        dumps(Rotate(e))


# -- messages quote at most a little of what a recipe holds (issue 9, item 18) ----------------
LONG = "k" * 2**20
LONG_KEYS = [
    {"transfuse": "recipe", "version": 1, "transform": {"type": "Identity"}, LONG: 1},
    doc({"type": "Identity", LONG: 1}),
    doc({"type": "Identity", **{f"{LONG[:1000]}{i}": i for i in range(1000)}}),
    {"transfuse": "recipe", "version": 1, "pipeline": {"transform": {"type": "Identity"}, LONG: 1}},
    doc({"type": "Rotate", "angle": {"expr": {"op": "Add", "args": [1, 2], LONG: 0}}}),
    doc({"type": "Rotate", "angle": {"expr": {"symbol": "t", LONG: True}}}),
    doc({"type": "CoordinateMap", "coords": {"array": {"dtype": "<f8", LONG: 0}}}),
]


@pytest.mark.parametrize("d", LONG_KEYS, ids=range(len(LONG_KEYS)))
def test_unknown_keys_are_quoted_short(d):
    err = refused(d, "unknown" if "coords" not in json.dumps(d)[:300] else "needs")
    assert len(str(err)) < 600
