"""OME-Zarr in and out (issue 11, item 6): written stores validate against the NGFF JSON
schemas (ngff-zarr's bundled copies, offline), read back with the same grid and data, write
chunk by chunk; rotated grids are refused by 0.4/0.5 and written as a 0.6 affine."""

from __future__ import annotations

import json

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

import transfuse
from transfuse import Grid
from transfuse.io.errors import FormatError
from transfuse.io.ome_zarr import read_ome_zarr, read_ome_zarr_grid, write_ome_zarr

nz = pytest.importorskip("ngff_zarr")
jsonschema = pytest.importorskip("jsonschema")

RNG = np.random.default_rng(4)
X = RNG.random((20, 24, 28)).astype(np.float32)
GRID = Grid(X.shape, spacing=(2.0, 0.5, 0.25), origin=(1.0, -2.0, 3.0), units="micrometer")
ROTATED = GRID.replace(direction=Rotation.from_rotvec([0.2, 0.1, -0.3]).as_matrix())


def _attrs(path, version):
    name = ".zattrs" if version == "0.4" else "zarr.json"
    doc = json.loads((path / name).read_text())
    return doc if version == "0.4" else doc["attributes"]


@pytest.mark.parametrize("version", ["0.4", "0.5", "0.6"])
def test_round_trip_validates_and_keeps_the_grid(tmp_path, version):
    path = tmp_path / "img.ome.zarr"
    write_ome_zarr(transfuse.lazy(X, grid=GRID), path, version=version, levels=3)
    attrs = _attrs(path, version)
    nz.validate(attrs, version=version, model="image", strict=False)
    img = read_ome_zarr(path)
    assert img.grid == GRID
    assert isinstance(img.to_dask(), da.Array)
    np.testing.assert_array_equal(img.compute(), X)
    # the pyramid: each level halves the samples and keeps the physical extent centred
    for level in (1, 2):
        g = read_ome_zarr_grid(path, level)[0]
        f = 2**level
        assert g.shape == tuple(s // f for s in X.shape)
        np.testing.assert_allclose(g.spacing, np.array(GRID.spacing) * f)
        np.testing.assert_allclose(
            g.origin, np.array(GRID.origin) + np.array(GRID.spacing) * (f - 1) / 2
        )
    ms = attrs["multiscales"][0] if version == "0.4" else attrs["ome"]["multiscales"][0]
    axes = ms["coordinateSystems"][0]["axes"] if version == "0.6" else ms["axes"]
    assert [(a["name"], a["type"], a["unit"]) for a in axes] == [
        (n, "space", "micrometer") for n in "zyx"
    ]


def test_the_schema_check_can_fail(tmp_path):
    path = tmp_path / "img.ome.zarr"
    write_ome_zarr(X, path, grid=GRID)
    attrs = _attrs(path, "0.5")
    del attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    with pytest.raises(jsonschema.ValidationError):
        nz.validate(attrs, version="0.5", model="image")


def test_rotated_grid_needs_0_6(tmp_path):
    image = transfuse.lazy(X, grid=ROTATED)
    for version in ("0.4", "0.5"):
        with pytest.raises(ValueError, match=f"version='{version}' stores only a per-axis"):
            write_ome_zarr(image, tmp_path / f"r{version}.ome.zarr", version=version)
        assert not (tmp_path / f"r{version}.ome.zarr").exists()
    path = tmp_path / "r.ome.zarr"
    write_ome_zarr(image, path, version="0.6", levels=2)
    attrs = _attrs(path, "0.6")
    nz.validate(attrs, version="0.6", model="image")
    ms = attrs["ome"]["multiscales"][0]
    assert [cs["name"] for cs in ms["coordinateSystems"]] == ["image-aligned", "physical"]
    assert ms["coordinateTransformations"][0]["type"] == "affine"
    back = read_ome_zarr(path)
    assert _same_space(back.grid, ROTATED, 1e-12)
    aligned = read_ome_zarr(path, system="image-aligned").grid
    assert aligned.is_axis_aligned() and aligned.spacing == GRID.spacing
    np.testing.assert_array_equal(back.compute(), X)


def test_a_resampled_result_is_written_chunk_by_chunk(tmp_path):
    """No task of the write holds the whole output: the resampling streams into the store."""
    x = RNG.random((64, 64, 64))
    src = transfuse.lazy(da.from_array(x, chunks=16), grid=GRID.replace(shape=x.shape))
    onto = Grid((48, 48, 48), spacing=(2.5, 0.6, 0.3), origin=(2.0, -1.0, 4.0), units="micrometer")
    result = src.resample(transfuse.Rotate(10, axes=(1, 2), ndim=3), onto=onto, order=1)
    sizes = []

    class Sizes(dask.callbacks.Callback):
        def _posttask(self, key, value, dsk, state, id):
            sizes.append(getattr(value, "nbytes", 0))

    path = tmp_path / "out.ome.zarr"
    with Sizes():
        write_ome_zarr(result, path, chunks=16)
    assert sizes and max(sizes) <= 16**3 * 8 * 8  # a few chunks' worth at most, never 48**3
    back = read_ome_zarr(path)
    assert back.grid == onto
    np.testing.assert_allclose(back.compute(), result.compute(), rtol=0, atol=0)


def test_unit_abbreviations_are_written_as_ngff_names(tmp_path):
    path = tmp_path / "u.ome.zarr"
    write_ome_zarr(np.zeros((4, 4)), path, grid=Grid((4, 4), units="mm"))
    assert read_ome_zarr(path).grid.units == ("millimeter", "millimeter")


def test_labels_pyramid_keeps_label_values(tmp_path):
    labels = RNG.integers(0, 4, size=(16, 16, 16)).astype(np.uint8)
    path = tmp_path / "labels.ome.zarr"
    write_ome_zarr(labels, path, grid=Grid(labels.shape), levels=2, labels=True)
    coarse = read_ome_zarr(path, level=1).compute()
    assert coarse.dtype == np.uint8 and set(np.unique(coarse)) <= set(range(4))


def test_reads_a_0_4_store_written_by_hand(tmp_path):
    """A zarr v2 store with 0.4 metadata as other tools write it (scale, then translation)."""
    import zarr

    path = tmp_path / "hand.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=X)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [2.0, 0.5, 0.25]},
                        {"type": "translation", "translation": [1.0, -2.0, 3.0]},
                    ],
                }
            ],
        }
    ]
    img = read_ome_zarr(path)
    assert img.grid == GRID
    # a physical resample of it equals scipy with the matrix composed by hand
    onto = Grid((10, 12, 14), spacing=(3.0, 0.8, 0.5), origin=(4.0, 0.0, 5.0))
    got = img.resample(onto=onto, order=1).compute()
    m = np.linalg.inv(GRID.physical_matrix()) @ onto.physical_matrix()
    want = ndimage.affine_transform(X, m, output_shape=onto.shape, order=1)
    np.testing.assert_allclose(got, want, atol=1e-6)


def _store_with(tmp_path, mutate):
    path = tmp_path / "m.ome.zarr"
    write_ome_zarr(X, path, grid=GRID, overwrite=True)
    doc = json.loads((path / "zarr.json").read_text())
    mutate(doc["attributes"]["ome"]["multiscales"][0], doc)
    (path / "zarr.json").write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda ms, doc: ms.pop("datasets"), "datasets must be a non-empty list"),
        (
            lambda ms, doc: ms["datasets"][0].update(path="../../etc"),
            "must stay inside|leads outside|not found",
        ),
        (lambda ms, doc: ms["datasets"][0].update(path=7), "needs a string 'path'"),
        (lambda ms, doc: ms["axes"][0].pop("name"), "every axis needs a distinct string 'name'"),
        (lambda ms, doc: ms["axes"].pop(), "2 axes for a 3-D array"),
        (
            lambda ms, doc: ms["datasets"][0]["coordinateTransformations"][0].update(
                scale=[0, 1, 1]
            ),
            "has a zero",
        ),
        (lambda ms, doc: doc["attributes"]["ome"].update(version="0.3"), "version '0.3'"),
        (lambda ms, doc: doc["attributes"]["ome"].pop("multiscales"), "no OME-NGFF 'multiscales'"),
    ],
)
def test_malformed_metadata_is_a_format_error(tmp_path, mutate, match):
    path = _store_with(tmp_path, mutate)
    with pytest.raises(FormatError, match=match):
        read_ome_zarr(path)


def test_broken_array_metadata_is_a_format_error(tmp_path):
    path = tmp_path / "b.ome.zarr"
    write_ome_zarr(X, path, grid=GRID)
    array_path = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    (path / array_path["datasets"][0]["path"] / "zarr.json").write_text("{not json")
    with pytest.raises(FormatError, match="the array metadata at"):
        read_ome_zarr(path)


def test_argument_errors(tmp_path):
    path = tmp_path / "a.ome.zarr"
    write_ome_zarr(X, path, grid=GRID)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ome_zarr(X, path, grid=GRID)
    with pytest.raises(ValueError, match=r"level=3: the store has 1 levels"):
        read_ome_zarr(path, level=3)
    with pytest.raises(ValueError, match="version='0.7'"):
        write_ome_zarr(X, tmp_path / "b.ome.zarr", version="0.7")
    with pytest.raises(ValueError, match=r"grid.shape=\(3, 3\) differs"):
        write_ome_zarr(X, tmp_path / "b.ome.zarr", grid=Grid((3, 3)))
    with pytest.raises(ValueError, match="levels= or scale_factors="):
        write_ome_zarr(X, tmp_path / "b.ome.zarr", levels=2, scale_factors=[2])
    with pytest.raises(FormatError, match="not a zarr store"):
        read_ome_zarr(tmp_path / "missing.ome.zarr")


def test_cli_reads_and_writes_ome_zarr(tmp_path):
    from transfuse.cli import main

    src = tmp_path / "in.ome.zarr"
    write_ome_zarr(X, src, grid=GRID)
    recipe = tmp_path / "shift.json"
    transfuse.write_transform(transfuse.Translate((1.0, 2.0, 0.5)), recipe)
    out = tmp_path / "out.ome.zarr"
    assert (
        main(["apply", str(recipe), str(src), str(out), "--order", "1", "-q", "--levels", "2"]) == 0
    )
    back = read_ome_zarr(out)
    assert back.grid == GRID  # an index-space recipe keeps the input's grid
    want = ndimage.shift(X, (-1.0, -2.0, -0.5), order=1)
    np.testing.assert_allclose(back.compute(), want, atol=1e-6)
    assert read_ome_zarr_grid(out, 1)[2]["levels"] == 2
    nz.validate(_attrs(out, "0.5"), version="0.5", model="image")
    # .ome.zarr in, .npy out
    assert (
        main(["apply", str(recipe), str(src), str(tmp_path / "o.npy"), "--order", "1", "-q"]) == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want, atol=1e-6)


# -- fuzz: mutated metadata of a real store raises FormatError (or reads) --------------------
def _mutations():
    from hypothesis import strategies as st

    junk = st.sampled_from(
        [None, True, -1, 0, 2.5, "", "x", "../x", [], {}, [None], ["z"], {"type": "scale"}]
    )

    @st.composite
    def mutated(draw):
        doc = {"attributes": json.loads(json.dumps(_BASE_ATTRS))}
        for _ in range(draw(st.integers(1, 3))):
            slots = _slots(doc, [])
            if not slots:
                break
            parent, key = draw(st.sampled_from(slots))
            if draw(st.booleans()):
                del parent[key]
            else:
                parent[key] = json.loads(json.dumps(draw(junk)))  # never share a junk object
        return doc

    return mutated()


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


_BASE_ATTRS = {
    "ome": {
        "version": "0.6",
        "multiscales": [
            {
                "coordinateSystems": [
                    {
                        "name": "aligned",
                        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
                    },
                    {"name": "physical", "axes": [{"name": n, "type": "space"} for n in "zyx"]},
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {
                                "type": "sequence",
                                "input": {"path": "0"},
                                "output": {"name": "aligned"},
                                "transformations": [
                                    {"type": "scale", "scale": [2.0, 0.5, 0.25]},
                                    {"type": "translation", "translation": [1.0, 2.0, 3.0]},
                                ],
                            }
                        ],
                    }
                ],
                "coordinateTransformations": [
                    {
                        "type": "rotation",
                        "rotation": [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                        "input": {"name": "aligned"},
                        "output": {"name": "physical"},
                    }
                ],
            }
        ],
    }
}


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    import zarr

    path = tmp_path_factory.mktemp("fuzz") / "f.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("0", data=np.zeros((4, 5, 6), np.float32))
    return path


def test_fuzz_base_reads(fuzz_store):
    (fuzz_store / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": _BASE_ATTRS})
    )
    g = read_ome_zarr_grid(fuzz_store)[0]
    assert g.shape == (4, 5, 6) and not g.is_axis_aligned()


@pytest.mark.slow
def test_mutated_store_metadata_raises_only_format_errors(fuzz_store):
    from hypothesis import given, settings

    @settings(derandomize=True, max_examples=150, deadline=None, database=None)
    @given(_mutations())
    def check(doc):
        (fuzz_store / "zarr.json").write_text(
            json.dumps({"zarr_format": 3, "node_type": "group", **doc})
        )
        try:
            read_ome_zarr_grid(fuzz_store)
        except FormatError:
            pass

    check()


def test_a_scene_store_resamples_its_images_into_each_other(tmp_path):
    """A 0.6 scene: two image subgroups (one on a rotated grid, written here) and a
    registration between their systems; each image resampled into the other's grid equals
    scipy with the matrix composed by hand."""
    from transfuse.io.ome_zarr import read_ome_zarr_scene

    store = tmp_path / "scene.ome.zarr"
    store.mkdir()
    fixed_grid = GRID.replace(shape=(12, 14, 16))
    fixed = RNG.random(fixed_grid.shape)
    write_ome_zarr(transfuse.lazy(X, grid=ROTATED), store / "moving", version="0.6")
    write_ome_zarr(fixed, store / "fixed", grid=fixed_grid, version="0.6")
    shift = np.array([0.5, -1.0, 2.0])
    scene = {
        "version": "0.6",
        "scene": {
            "coordinateTransformations": [
                {
                    "type": "translation",
                    "translation": shift.tolist(),
                    "input": {"name": "intrinsic", "path": "fixed"},
                    "output": {"name": "physical", "path": "moving"},
                }
            ]
        },
    }
    (store / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"ome": scene}})
    )
    cs = read_ome_zarr_scene(store)
    assert sorted(cs.images) == ["fixed", "moving"]
    assert cs.path("fixed/intrinsic", "moving/image-aligned") == [
        "fixed/intrinsic",
        "moving/physical",
        "moving/image-aligned",
    ]
    got = cs.resample("moving", into="fixed/intrinsic", onto=fixed_grid, order=1).compute()
    t = np.eye(4)
    t[:3, 3] = shift
    m = np.linalg.inv(ROTATED.physical_matrix()) @ t @ fixed_grid.physical_matrix()
    want = ndimage.affine_transform(X, m, output_shape=fixed_grid.shape, order=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    back = cs.resample(
        "fixed",
        into="moving/image-aligned",
        onto=read_ome_zarr(store / "moving", system="image-aligned").grid,
        order=1,
    ).compute()
    m = np.linalg.inv(fixed_grid.physical_matrix()) @ np.linalg.inv(t) @ ROTATED.physical_matrix()
    want = ndimage.affine_transform(fixed, m, output_shape=X.shape, order=1)
    np.testing.assert_allclose(back, want, atol=1e-9)
    with pytest.raises(FormatError, match="no OME-NGFF 'scene'"):
        read_ome_zarr_scene(store / "fixed")


def _same_space(a, b, tol):
    """Same shape and index->physical map, to ``tol`` (axis names and units aside)."""
    return a.shape == b.shape and np.allclose(
        a.physical_matrix(), b.physical_matrix(), rtol=tol, atol=tol * 100
    )


def test_a_scene_array_is_bounded_before_it_is_read(tmp_path, monkeypatch):
    import zarr

    from transfuse.io import recipe_limits
    from transfuse.io.ome_zarr import read_ome_zarr_scene

    store = tmp_path / "scene.ome.zarr"
    store.mkdir()
    rows = np.array([[1.0, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0]])
    zarr.create_array(str(store / "reg"), data=rows)
    scene = {
        "version": "0.6",
        "scene": {
            "coordinateSystems": [
                {"name": s, "axes": [{"name": a, "type": "space"} for a in "zyx"]}
                for s in ("a", "b")
            ],
            "coordinateTransformations": [
                {"type": "affine", "path": "reg", "input": "a", "output": "b"}
            ],
        },
    }
    (store / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"ome": scene}})
    )
    cs = read_ome_zarr_scene(store)
    np.testing.assert_array_equal(cs.transform("a", "b").matrix()[:3], rows)
    monkeypatch.setattr(recipe_limits, "MAX_NPY_BYTES", rows.nbytes - 1)
    with pytest.raises(FormatError, match="'reg' holds 96 bytes"):
        read_ome_zarr_scene(store)
