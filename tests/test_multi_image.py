"""Several images onto one grid in one plan: per-image options, labels, a shared map."""

import dask
import numpy as np
import pytest
import scipy.ndimage as ndi

import transfuse
from transfuse import DisplacementField, Grid, Rotate, Translate
from transfuse.executors.scipy_backend import ScipyExecutor
from transfuse.planner.physical import CoordinateArrayStage


def _images(shape=(24, 26), seed=0):
    rng = np.random.default_rng(seed)
    intensity = rng.random(shape)
    labels = rng.integers(0, 5, size=shape).astype(np.int32) * 7  # values 0, 7, ..., 28
    mask = intensity > 0.3
    return intensity, labels, mask


def _field(shape=(2, 6, 7), seed=1):
    return np.random.default_rng(seed).normal(scale=1.5, size=shape)


def test_each_image_equals_its_own_resample():
    g_in = Grid((24, 26), spacing=(0.5, 0.6), origin=(1.0, 2.0))
    onto = Grid((20, 21), spacing=0.7, origin=(1.5, 2.5))
    T = Rotate(12.0, axes=(0, 1), center=(6.0, 8.0)) @ Translate((0.3, -0.2))
    intensity, labels, mask = _images()
    imgs = [transfuse.lazy(a, chunks=8, grid=g_in) for a in (intensity, labels, mask)]
    out = transfuse.resample(imgs, T, onto=onto, order=(3, 0, 1), output=(None, None, np.uint8))
    got = transfuse.compute_all(out)
    ref = [
        imgs[0].resample(T, onto=onto, order=3).compute(),
        imgs[1].resample(T, onto=onto, order=0).compute(),
        imgs[2].resample(T, onto=onto, order=1, output=np.uint8).compute(),
    ]
    for a, b in zip(got, ref, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert all(o.grid == onto for o in out)


def test_labels_stay_integers_with_no_new_values():
    intensity, labels, _ = _images()
    T = Rotate(33.0, axes=(0, 1), center=(11.5, 12.5)) @ DisplacementField(_field(), spacing=4.0)
    seg = transfuse.resample([intensity, labels], T, space="index", labels=[1])[1]
    assert seg.plan().passes[0].options.order == 0
    got = seg.compute()
    assert got.dtype == np.int32
    assert set(np.unique(got)) <= set(np.unique(labels)) | {0}
    # nearest-neighbour reads of the input, brute force
    idx = np.indices(labels.shape).reshape(2, -1).T.astype(float)
    src = T(idx)
    expected = ndi.map_coordinates(labels, src.T, order=0).reshape(labels.shape)
    np.testing.assert_array_equal(got, expected)


def test_label_defaults_and_refusals():
    intensity, labels, _ = _images()
    a, b = transfuse.resample(
        [intensity, labels], Translate((0.5, 0.5)), labels=[1], mode="nearest"
    )
    assert a.plan().passes[0].options.mode == "nearest"
    assert b.plan().passes[0].options.mode == "constant"
    with pytest.raises(ValueError, match="label"):
        transfuse.resample([intensity, labels], None, order=(3, 1), labels=[1])
    with pytest.raises(ValueError, match="labels"):
        transfuse.resample([intensity, labels], None, labels=[0])  # float labels
    with pytest.raises(ValueError, match="order"):
        transfuse.resample([intensity, labels], None, order=(3, 0, 1))
    with pytest.raises(TypeError, match="images"):
        transfuse.resample(transfuse.lazy(intensity), None)
    with pytest.raises(ValueError, match="labels"):
        transfuse.resample([intensity, labels], None, labels=[5])


def test_non_affine_map_is_computed_once_for_all_images():
    intensity, labels, mask = _images()
    T = DisplacementField(_field(), spacing=4.0) @ Rotate(10.0, axes=(0, 1), center=(11.0, 12.0))
    arrays = [intensity, labels, mask.astype(np.float64)]
    out = transfuse.resample(
        [transfuse.lazy(a, chunks=8) for a in arrays],
        T,
        space="index",
        order=(3, 0, 1),
        labels=[False, True, False],
    )
    graphs = [o.to_dask().__dask_graph__() for o in out]
    map_keys = [
        {k for k in g if isinstance(k, tuple) and "fused-coordinates" in k[0]} for g in graphs
    ]
    assert map_keys[0] and map_keys[0] == map_keys[1] == map_keys[2]
    calls = []

    class Counting(ScipyExecutor):
        def coordinates(self, stages, box):
            if not isinstance(stages[0], CoordinateArrayStage):  # evaluates the map
                calls.append(tuple(map(tuple, box)))
            return super().coordinates(stages, box)

    with dask.config.set(scheduler="synchronous"):
        transfuse.compute_all(out, executor=Counting())
    assert len(calls) == len(set(calls)) == len(map_keys[0])  # once per chunk, not per image
    # and the results equal resampling each image alone
    got = transfuse.compute_all(out)
    for a, arr, order in zip(got, arrays, (3, 0, 1), strict=True):
        alone = transfuse.lazy(arr, chunks=8).resample(T, space="index", order=order).compute()
        np.testing.assert_allclose(a, alone, rtol=0, atol=1e-12)


def test_affine_maps_are_not_materialised():
    intensity, labels, _ = _images()
    out = transfuse.resample([intensity, labels], Translate((0.5, 0.5)), labels=[1])
    graph = out[0].to_dask().__dask_graph__()
    assert not any(isinstance(k, tuple) and "fused-coordinates" in k[0] for k in graph)


def test_shared_and_unshared_results_have_different_keys():
    intensity, _, _ = _images()
    T = DisplacementField(_field(), spacing=4.0)
    alone = transfuse.lazy(intensity).resample(T, space="index", order=1).to_dask()
    shared = transfuse.resample([intensity, intensity], T, space="index", order=1)[0].to_dask()
    assert alone.name != shared.name


@pytest.mark.parametrize("mode", ["constant", "grid-constant", "nearest", "wrap", "reflect"])
@pytest.mark.parametrize("executor", ["scipy", "cpu"])
def test_shared_map_equals_each_image_alone_in_every_mode(mode, executor):
    rng = np.random.default_rng(3)
    x = rng.random((30, 31))
    labels = rng.integers(0, 4, (30, 31)).astype(np.uint8)
    T = Translate((20.0, 0.0)) @ DisplacementField(rng.normal(size=(2, 5, 5)), spacing=8.0)
    imgs = [transfuse.lazy(a, chunks=8) for a in (x, labels)]
    out = transfuse.resample(imgs, T, space="index", mode=mode, cval=0.5, labels=[1])
    got = transfuse.compute_all(out, executor=executor)
    alone = [
        imgs[0].resample(T, space="index", mode=mode, cval=0.5).compute(executor=executor),
        imgs[1].resample(T, space="index", order=0).compute(executor=executor),
    ]
    for a, b in zip(got, alone, strict=True):
        assert a.dtype == b.dtype
        if executor == "scipy" or a.dtype.kind in "iu":
            np.testing.assert_array_equal(a, b)
        else:  # the shared map runs the compiled kernel, a lone field pass the reference:
            # equal within the accuracy contract (1e-10 x max|input| in float64, order 3)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.abs(x).max())
