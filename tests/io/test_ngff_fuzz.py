"""Fuzzing the OME-NGFF readers: valid documents with keys deleted, replaced or retyped (in
the transformation, the coordinate systems and a field's own metadata) either read or raise
FormatError; nothing else escapes (issue 11, item 7)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import transfuse
from tests.strategies import examples
from transfuse.io.ngff import FormatError, from_ngff

FUZZ = examples(1.0, deadline=None)

SYSTEMS = [
    {"name": "in", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]},
    {"name": "out", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]},
]
FIELD_META = {
    "coordinateSystems": [
        {
            "name": "field",
            "axes": [
                {"name": "d", "type": "displacement"},
                {"name": "y", "type": "space"},
                {"name": "x", "type": "space"},
            ],
        }
    ],
    "datasets": [
        {
            "path": "0",
            "coordinateTransformations": [
                {
                    "type": "sequence",
                    "transformations": [
                        {"type": "scale", "scale": [1.0, 2.0, 2.0]},
                        {"type": "translation", "translation": [0.0, 1.0, -1.0]},
                    ],
                }
            ],
        }
    ],
}
BY_DIMENSION = {
    "type": "byDimension",
    "transformations": [
        {
            "transformation": {"type": "scale", "scale": [2.0]},
            "input_axes": ["y"],
            "output_axes": ["y"],
        },
        {
            "transformation": {"type": "translation", "translation": [1.0]},
            "input_axes": ["x"],
            "output_axes": ["x"],
        },
    ],
}
BASES = [
    {
        "type": "sequence",
        "input": {"name": "in"},
        "output": {"name": "out"},
        "transformations": [BY_DIMENSION, {"type": "rotation", "rotation": [[0, -1], [1, 0]]}],
    },
    {
        "type": "bijection",
        "input": {"name": "in"},
        "output": {"name": "out"},
        "forward": {"type": "affine", "affine": [[2.0, 0.0, 1.0], [0.0, 4.0, 0.0]]},
        "inverse": {"type": "affine", "affine": [[0.5, 0.0, -0.5], [0.0, 0.25, 0.0]]},
    },
    {"type": "inverseOf", "transformation": {"type": "displacements", "path": "field"}},
    {
        "type": "bijection",
        "forward": {"type": "coordinates", "path": "coords", "interpolation": "nearest"},
        "inverse": {"type": "coordinates", "path": "coords"},
    },
    [{"type": "scale", "scale": [0.5, 2.0]}, {"type": "translation", "translation": [1.0, 3.0]}],
    {"type": "mapAxis", "mapAxis": {"y": "x", "x": "y"}, "input": "in", "output": "out"},
]
JUNK = [
    None,
    True,
    -1,
    0,
    2**70,
    1e308,
    "",
    "x",
    "1.0",
    [],
    {},
    [None],
    ["y"],
    [[1, 0], [0]],
    {"name": 3},
    {"type": "scale"},
    {"name": "in"},
    [{"type": "identity"}],
]


def _slots(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


def _mutate(draw, doc):
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        if not slots:
            break
        parent, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "replace", "swap"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = copy.deepcopy(draw(st.sampled_from(JUNK)))
        else:
            other, other_key = draw(st.sampled_from(slots))
            parent[key] = copy.deepcopy(other[other_key])
    return doc


@st.composite
def documents(draw):
    """A (document, coordinate systems, field metadata) triple with 1 to 3 mutations in
    one of the three parts."""
    parts = [copy.deepcopy(draw(st.sampled_from(BASES))), copy.deepcopy(SYSTEMS)]
    parts.append(copy.deepcopy(FIELD_META))
    which = draw(st.sampled_from([0, 0, 1, 2]))
    wrapper = [parts[which]]
    _mutate(draw, wrapper)
    parts[which] = wrapper[0] if wrapper else None
    return tuple(parts)


def _read(doc, systems, meta):
    rng = np.random.default_rng(0)
    arrays = {"field": (rng.normal(size=(2, 4, 5)), meta), "coords": rng.normal(size=(2, 4, 5))}
    return from_ngff(doc, systems, arrays=arrays)


def test_bases_read():
    for doc in BASES:
        assert isinstance(_read(doc, SYSTEMS, FIELD_META), transfuse.Transform)


@pytest.mark.slow
@FUZZ
@given(documents())
def test_mutated_documents_raise_only_format_errors(parts):
    try:
        T = _read(*parts)
    except FormatError as exc:
        assert 0 < len(str(exc)) < 1000
        event(f"refused: {str(exc).split(': ', 1)[-1][:30]}")
    else:
        assert isinstance(T, transfuse.Transform)
        event("read")


@pytest.mark.parametrize(
    "systems",
    [
        [{"name": "in", "axes": [{"type": "space"}, {"name": "x"}]}],
        [{"name": "in", "axes": [{"name": 3}]}],
        [{"name": "in"}],
        [{"axes": []}],
        ["in"],
        {"in": None},
        [{"name": "in", "axes": "yx"}],
        0,
        1e308,
        True,
    ],
)
def test_malformed_coordinate_systems(systems):
    """A coordinate-system axis without a name (a KeyError once) and its relatives."""
    with pytest.raises(FormatError):
        from_ngff({"type": "scale", "scale": [1.0, 2.0], "input": "in"}, systems)


@pytest.mark.parametrize("interpolation", [[], {}, 3, None, "bicubic"])
def test_malformed_interpolation(interpolation):
    node = {"type": "displacements", "path": "field", "interpolation": interpolation}
    with pytest.raises(FormatError, match="interpolation="):
        _read({"type": "inverseOf", "transformation": node}, SYSTEMS, FIELD_META)
