"""The fastMRI single-coil loader on tiny HDF5 volumes written in the real layout."""

import h5py
import numpy as np
import pytest

from lps_keras.data import (
    CorruptDatasetError,
    DatasetNotFoundError,
    build_dataset,
    dataset_info,
    fastmri,
    mri,
)
from lps_keras.evaluation.loading import load_arrays
from tests.data.mri_reference import np_fft2c, np_ifft2c

H, W, SLICES, TARGET, CROP = 40, 24, 3, 20, 16
FILES = {"train": ["file1000001.h5", "file1000002.h5"],
         "validation": ["file1000010.h5", "file1000011.h5"]}




def _crop(x, h, w):
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def _volume(seed, height=H, width=W):
    """A smooth complex image stack, its centred k-space and a 20x20 magnitude target."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / np.array([height, width])[:, None, None]
    images = np.stack([
        (1 + rng.uniform() * np.sin(2 * np.pi * (yy * rng.integers(1, 4) + xx)))
        * np.exp(1j * rng.uniform(0, 3) * yy)
        + 0.1 * rng.normal(size=(height, width))
        for _ in range(SLICES)])
    kspace = np_fft2c(images).astype(np.complex64)
    target = _crop(np.abs(images), min(TARGET, height), min(TARGET, width))
    return kspace, target.astype(np.float32) * 1.1


def write_volume(path, kspace, target, **extra):
    with h5py.File(path, "w") as f:
        if kspace is not None:
            f["kspace"] = kspace
        if target is not None:
            f["reconstruction_esc"] = target
        for key, value in extra.items():
            f[key] = value
        f.attrs["max"] = float(np.max(target)) if target is not None else 0.0
        f.attrs["acquisition"] = "CORPD_FBK"
        f.attrs["patient_id"] = "abc"


@pytest.fixture(scope="module")
def fastmri_dir(tmp_path_factory):
    """`root/singlecoil_{train,val}/` with 2 volumes of 3 slices each; returns
    `(root, {split: [(file name, kspace, target), ...]})`."""
    root = tmp_path_factory.mktemp("fastmri")
    volumes = {}
    for s, (split, names) in enumerate(FILES.items()):
        folder = root / fastmri.FASTMRI_SPLIT_FOLDERS[split]
        folder.mkdir()
        volumes[split] = []
        for i, name in enumerate(names):
            kspace, target = _volume(10 * s + i)
            write_volume(str(folder / name), kspace, target)
            volumes[split].append((name, kspace, target))
    (root / "singlecoil_val" / "README.txt").write_text("not a volume")
    return str(root), volumes


def _expected(name, kspace, target, crop=CROP):
    """The normalised (input, target) pairs of one volume, computed with numpy.fft."""
    mask = mri.random_mask(kspace.shape[-1], 4, 0.08, seed=tuple(map(ord, name)))
    image = np.abs(_crop(np_ifft2c(kspace * mask), crop, crop))
    mean = image.mean(axis=(1, 2), keepdims=True)
    std = image.std(axis=(1, 2), ddof=1, keepdims=True)
    x = np.clip((image - mean) / (std + 1e-11), -6, 6)
    y = np.clip((_crop(target, crop, crop) - mean) / (std + 1e-11), -6, 6)
    return x[..., None], y[..., None]


def _arrays(ds):
    batches = list(ds)
    return (np.concatenate([b[0].numpy() for b in batches]),
            np.concatenate([b[1].numpy() for b in batches]))


def test_registry_entry():
    info = dataset_info("fastmri")
    assert (info.task, info.num_classes, info.image_shape) == ("regression", None,
                                                              (320, 320, 1))
    assert info.splits == ("train", "validation") and info.protocol == "reconstruction"
    assert fastmri.FASTMRI_SPLIT_FOLDERS == {"train": "singlecoil_train",
                                             "validation": "singlecoil_val"}


def test_validation_examples_match_an_independent_numpy_reconstruction(fastmri_dir):
    root, volumes = fastmri_dir
    ds = build_dataset("fastmri", "validation", 4, data_dir=root, crop_size=CROP)
    assert int(ds.cardinality()) == 2  # 6 slices, batches of 4, no drop_remainder
    x, y = _arrays(ds)
    assert x.shape == y.shape == (2 * SLICES, CROP, CROP, 1)
    assert x.dtype == y.dtype == np.float32
    ref = [_expected(*v) for v in volumes["validation"]]
    np.testing.assert_allclose(x, np.concatenate([r[0] for r in ref]), atol=1e-4)
    np.testing.assert_allclose(y, np.concatenate([r[1] for r in ref]), atol=1e-4)
    # Deterministic: a second pass (and a new pipeline) gives the same masks and data.
    np.testing.assert_array_equal(_arrays(ds)[0], x)
    np.testing.assert_array_equal(
        _arrays(build_dataset("fastmri", "validation", 6, data_dir=root, crop_size=CROP))[0], x)
    lx, ly = load_arrays("fastmri", "validation", data_dir=root, crop_size=CROP)
    np.testing.assert_array_equal(lx, x)
    np.testing.assert_array_equal(ly, y)


def test_training_masks_are_random_per_epoch_and_seeded(fastmri_dir):
    root, volumes = fastmri_dir
    ds = fastmri.fastmri_dataset(root, "train", crop_size=CROP, seed=3)  # random masks
    first = [(a.numpy(), b.numpy()) for a, b in ds]
    second = [(a.numpy(), b.numpy()) for a, b in ds]
    assert len(first) == 2 * SLICES
    assert all(a.shape == b.shape == (CROP, CROP, 1) for a, b in first)
    assert not all(np.array_equal(f[0], s[0]) for f, s in zip(first, second, strict=True))
    rerun = [a.numpy() for a, _ in fastmri.fastmri_dataset(root, "train", crop_size=CROP,
                                                           seed=3)]
    for f, r in zip(first, rerun, strict=True):
        np.testing.assert_array_equal(f[0], r)
    # The targets are the (normalised) reconstruction_esc slices, whatever the mask: up to
    # the input's statistics, they are an affine image of the stored target (where the
    # clamp to [-6, 6] does not bite).
    _, target = volumes["train"][0][1:]
    for (_, y), t in zip(first[:SLICES], _crop(target, CROP, CROP), strict=True):
        free = np.abs(y[..., 0]) < 6
        assert free.mean() > 0.5
        slope, intercept = np.polyfit(t[free], y[..., 0][free], 1)
        assert slope > 0
        np.testing.assert_allclose(y[..., 0][free], slope * t[free] + intercept, atol=1e-4)
    # build_dataset's training defaults: shuffled, dropped remainder.
    ds = build_dataset("fastmri", "train", 4, data_dir=root, crop_size=CROP, augment="shift")
    x, y = _arrays(ds)
    assert x.shape == y.shape == (4, CROP, CROP, 1)


def test_small_images_are_cropped_to_their_size(tmp_path):
    folder = tmp_path / "singlecoil_val"
    folder.mkdir()
    kspace, target = _volume(0, width=12)
    write_volume(str(folder / "narrow.h5"), kspace, target)
    x, y = next(iter(fastmri.fastmri_dataset(str(tmp_path), "validation", crop_size=CROP)))
    assert x.shape == y.shape == (CROP, 12, 1)


def test_missing_folders_name_the_folder_and_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data_dir"):
        build_dataset("fastmri", "train", 2)
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="does not exist") as e:
        build_dataset("fastmri", "validation", 2, data_dir=str(missing))
    assert "singlecoil_val" in str(e.value) and e.value.path.endswith("singlecoil_val")
    (tmp_path / "singlecoil_train").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no singlecoil_val/ folder"):
        build_dataset("fastmri", "validation", 2, data_dir=str(tmp_path))
    (tmp_path / "singlecoil_train" / "notes.txt").write_text("x")
    with pytest.raises(DatasetNotFoundError, match="holds no .h5 files") as e:
        build_dataset("fastmri", "train", 2, data_dir=str(tmp_path))
    assert str(tmp_path / "singlecoil_train") in str(e.value)
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        build_dataset("fastmri", "test", 2, data_dir=str(tmp_path))


def _corrupt(tmp_path, name, write):
    folder = tmp_path / "singlecoil_train"
    folder.mkdir(exist_ok=True)
    kspace, target = _volume(1)
    write_volume(str(folder / "good.h5"), kspace, target)
    path = str(folder / name)
    write(path, kspace, target)
    with pytest.raises(CorruptDatasetError) as e:
        build_dataset("fastmri", "train", 2, data_dir=str(tmp_path), crop_size=CROP)
    assert e.value.path == path and path in str(e.value)
    return str(e.value)


def test_not_hdf5(tmp_path):
    def write(path, kspace, target):
        with open(path, "wb") as f:
            f.write(b"<html>404 Not Found</html>")

    assert "is not an HDF5 file" in _corrupt(tmp_path, "file_bad.h5", write)


@pytest.mark.parametrize("key", ["kspace", "reconstruction_esc"])
def test_missing_dataset(tmp_path, key):
    def write(path, kspace, target):
        write_volume(path, None if key == "kspace" else kspace,
                     None if key != "kspace" else target, reconstruction_rss=target)

    message = _corrupt(tmp_path, "file_missing.h5", write)
    assert f"no '{key}' dataset" in message and "reconstruction_rss" in message


def test_wrong_rank(tmp_path):
    def write(path, kspace, target):
        write_volume(path, kspace[0], target)  # a single 2-D slice

    assert "expected 3 non-empty dimensions" in _corrupt(tmp_path, "file_2d.h5", write)


def test_mismatched_slice_counts(tmp_path):
    def write(path, kspace, target):
        write_volume(path, kspace, target[:2])

    assert "has 3 slices but 'reconstruction_esc' has 2" in _corrupt(
        tmp_path, "file_slices.h5", write)


def test_real_kspace(tmp_path):
    def write(path, kspace, target):
        write_volume(path, np.abs(kspace), target)

    assert "expected complex k-space" in _corrupt(tmp_path, "file_real.h5", write)
