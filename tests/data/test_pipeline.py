"""`build_dataset` / `dataset_info`: names, batching, normalisation and seeding."""

import os

import numpy as np
import pytest
import tensorflow as tf

import lps_keras.data as data
from lps_keras.data import synthetic


def _collect(ds):
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        data.build_dataset("mnist", "train", 8)
    message = str(info.value)
    assert "mnist" in message
    for name in (
        "synthetic_shapes",
        "synthetic_shapes_seg",
        "cifar10",
        "imagenet",
        "image_folder",
        "imagenette",
        "voc",
    ):
        assert name in message
    with pytest.raises(ValueError, match="Valid names"):
        data.dataset_info("mnist")


def test_dataset_info():
    info = data.dataset_info("cifar10")
    assert info.num_classes == 10 and info.image_shape == (32, 32, 3)
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.std == (0.2470, 0.2435, 0.2616)
    assert info.task == "classification" and info.default_augment == "flip+shift"
    voc = data.dataset_info("voc")
    assert voc.num_classes == 21 and voc.ignore_index == 255 and voc.task == "segmentation"
    assert voc.class_names[0] == "background" and len(voc.class_names) == 21
    seg = data.dataset_info("synthetic_shapes_seg")
    assert seg.num_classes == 11 and seg.image_shape == (64, 64, 3)
    assert data.dataset_info("imagenet").num_classes == 1000
    assert data.dataset_info("imagenette").num_classes == 10
    assert data.dataset_info("image_folder").num_classes is None
    assert set(data.DATASET_NAMES) == {
        "synthetic_shapes",
        "synthetic_shapes_seg",
        "cifar10",
        "imagenet",
        "imagenette",
        "image_folder",
        "voc",
        "synthetic_mri",
        "fastmri",
    }


def test_bad_arguments():
    with pytest.raises(ValueError, match="valid splits: train, validation, test"):
        data.build_dataset("synthetic_shapes", "dev", 8)
    with pytest.raises(ValueError, match="flip, shift, crop"):
        data.build_dataset("synthetic_shapes", "train", 8, augment="flip+rotate")
    with pytest.raises(ValueError, match="batch_size"):
        data.build_dataset("synthetic_shapes", "train", 0)


def test_eval_order_values_and_remainder():
    ds = data.build_dataset("synthetic_shapes", "test", 4, num_examples=10, normalize=False)
    assert [int(b[0].shape[0]) for b in ds] == [4, 4, 2]
    images, labels = _collect(ds)
    expected_images, expected_labels = synthetic.make_synthetic_shapes(10, seed=2)
    np.testing.assert_array_equal(images, expected_images)  # test split: data seed 2
    np.testing.assert_array_equal(labels, expected_labels)
    assert images.dtype == np.uint8 and labels.dtype == np.int32


def test_normalisation_uses_dataset_statistics():
    raw, _ = _collect(
        data.build_dataset("synthetic_shapes", "test", 5, num_examples=5, normalize=False)
    )
    norm, _ = _collect(data.build_dataset("synthetic_shapes", "test", 5, num_examples=5))
    info = data.dataset_info("synthetic_shapes")
    expected = (raw / 255.0 - np.array(info.mean)) / np.array(info.std)
    assert norm.dtype == np.float32
    np.testing.assert_allclose(norm, expected, rtol=1e-5, atol=1e-5)


def test_training_defaults_shuffle_augment_and_drop_remainder():
    ds = data.build_dataset(
        "synthetic_shapes", "train", 4, num_examples=10, normalize=False, seed=0
    )
    assert [int(b[0].shape[0]) for b in ds] == [4, 4]
    base_images, base_labels = synthetic.make_synthetic_shapes(10, seed=0)
    _, labels = _collect(ds)
    assert not np.array_equal(labels, base_labels[:8])  # shuffled
    assert set(labels.tolist()) <= set(base_labels.tolist())


def test_flip_shift_augmentation_only_flips_and_rolls():
    ds = data.build_dataset(
        "synthetic_shapes", "train", 10, num_examples=10, normalize=False, shuffle=False, seed=1
    )
    images, _ = _collect(ds)
    originals, _ = synthetic.make_synthetic_shapes(10, seed=0)
    changed = 0
    for out, src in zip(images, originals, strict=True):
        candidates = [
            np.roll(flipped, (dy, dx), axis=(0, 1))
            for flipped in (src, src[:, ::-1])
            for dy in range(-3, 4)
            for dx in range(-3, 4)
        ]
        assert any(np.array_equal(out, c) for c in candidates)
        changed += not np.array_equal(out, src)
    assert changed >= 7


def test_seed_reproducibility_and_fresh_epochs():
    def build(seed):
        return data.build_dataset("synthetic_shapes", "train", 8, num_examples=16, seed=seed)

    first, again, other = _collect(build(3)), _collect(build(3)), _collect(build(4))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    ds = build(3)
    epoch1, epoch2 = _collect(ds), _collect(ds)
    np.testing.assert_array_equal(epoch1[0], first[0])
    assert not np.array_equal(epoch1[0], epoch2[0])  # new shuffle and augmentation
    # Without shuffling, the labels repeat but each epoch draws new augmentations.
    fixed_order = data.build_dataset(
        "synthetic_shapes", "train", 8, num_examples=16, seed=3, shuffle=False
    )
    epoch1, epoch2 = _collect(fixed_order), _collect(fixed_order)
    np.testing.assert_array_equal(epoch1[1], epoch2[1])
    assert not np.array_equal(epoch1[0], epoch2[0])


def test_explicit_augment_on_eval_split():
    plain, _ = _collect(data.build_dataset("synthetic_shapes", "test", 6, num_examples=6))
    shifted, _ = _collect(
        data.build_dataset(
            "synthetic_shapes", "test", 6, num_examples=6, augment="shift", max_shift=4, seed=0
        )
    )
    assert plain.shape == shifted.shape and not np.array_equal(plain, shifted)
    padded, _ = _collect(
        data.build_dataset(
            "synthetic_shapes",
            "test",
            6,
            num_examples=6,
            augment="crop",
            pad=8,
            seed=0,
            normalize=False,
        )
    )
    # Zero padding of up to 8 pixels shows up as black borders in some images.
    assert (padded.reshape(6, -1, 3) == 0).all(-1).any()


def test_synthetic_seg_pipeline():
    ds = data.build_dataset(
        "synthetic_shapes_seg",
        "train",
        4,
        num_examples=8,
        seed=0,
        augment="flip+shift+scale",
        scale_range=(0.5, 1.0),
    )
    images, masks = _collect(ds)
    assert images.shape == (8, 64, 64, 3) and images.dtype == np.float32
    assert masks.shape == (8, 64, 64) and masks.dtype == np.int32
    assert set(np.unique(masks)) <= set(range(11)) | {255}
    assert (masks == 255).any()  # downscaling pads with the ignore label
    ds = data.build_dataset("synthetic_shapes_seg", "test", 4, num_examples=4, normalize=False)
    images, masks = _collect(ds)
    expected_images, expected_masks = synthetic.make_synthetic_shapes_seg(4, seed=2)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(masks, expected_masks)


def test_cifar10_pipeline(cifar_dir, cifar_arrays):
    ds = data.build_dataset("cifar10", "test", 4, data_dir=cifar_dir, normalize=False)
    images, labels = _collect(ds)
    np.testing.assert_array_equal(images, cifar_arrays["test"][0])
    np.testing.assert_array_equal(labels, cifar_arrays["test"][1])
    ds = data.build_dataset("cifar10", "train", 8, data_dir=cifar_dir)
    assert ds.element_spec[0].shape.as_list() == [8, 32, 32, 3]
    assert ds.element_spec[0].dtype == tf.float32
    assert int(ds.cardinality()) == 2  # 20 images, drop_remainder when training
    with pytest.raises(ValueError, match="32x32"):
        data.build_dataset("cifar10", "train", 8, data_dir=cifar_dir, image_size=64)


def _indices(part, full):
    """Where each image of `part` is in `full` (the images are all different)."""
    rows = [image.tobytes() for image in full]
    return [rows.index(image.tobytes()) for image in part]


def test_cifar10_holdout_partitions_the_training_split(cifar_dir, cifar_arrays):
    images, labels = cifar_arrays["train"]  # 20 different images
    kwargs = dict(data_dir=cifar_dir, normalize=False, training=False, holdout=6)
    kept = _collect(data.build_dataset("cifar10", "train", 5, **kwargs))
    held = _collect(data.build_dataset("cifar10", "holdout", 5, **kwargs))
    kept_at, held_at = _indices(kept[0], images), _indices(held[0], images)
    assert len(held_at) == 6 and sorted(kept_at + held_at) == list(range(20))
    assert kept_at == sorted(kept_at) and held_at == sorted(held_at)  # the split's order
    assert held_at != list(range(14, 20))  # a random choice, not the last six
    np.testing.assert_array_equal(held[1], labels[held_at])
    # The same six whatever the run's seed; training never sees them.
    again = _collect(data.build_dataset("cifar10", "holdout", 5, **{**kwargs, "seed": 7}))
    np.testing.assert_array_equal(again[0], held[0])
    train = data.build_dataset("cifar10", "train", 2, data_dir=cifar_dir, holdout=6, seed=3)
    assert int(train.cardinality()) == 7
    test = _collect(data.build_dataset("cifar10", "test", 4, **kwargs))
    np.testing.assert_array_equal(test[0], cifar_arrays["test"][0])


def test_image_folder_holdout_comes_from_the_train_folder(tmp_path, helpers):
    root = str(tmp_path / "imagenette")
    helpers.write_image_folder(os.path.join(root, "train"), per_class=4)  # 3 classes
    helpers.write_image_folder(os.path.join(root, "val"), per_class=1)
    kwargs = dict(data_dir=root, training=False, holdout=5, image_size=8, source="folder")
    kept = _collect(data.build_dataset("imagenette", "train", 4, **kwargs))
    held = _collect(data.build_dataset("imagenette", "holdout", 4, **kwargs))
    assert (len(kept[1]), len(held[1])) == (7, 5)
    assert sorted(np.concatenate([kept[1], held[1]]).tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    val = _collect(data.build_dataset("imagenette", "validation", 4, **kwargs))
    assert len(val[1]) == 3  # untouched
    with pytest.raises(ValueError, match="a TFDS copy cannot be split here"):
        data.build_dataset("imagenette", "holdout", 4, holdout=5, source="tfds")


def test_image_folder_cache_keeps_contents(split_image_folder):
    kwargs = dict(
        data_dir=split_image_folder,
        image_size=8,
        resize_size=8,
        normalize=False,
        augment="none",
        seed=0,
    )
    plain = _collect(data.build_dataset("image_folder", "train", 3, shuffle=False, **kwargs))
    cached = data.build_dataset("image_folder", "train", 3, shuffle=True, cache=True, **kwargs)
    epoch1, epoch2 = _collect(cached), _collect(cached)
    for epoch in (epoch1, epoch2):
        order = np.lexsort(epoch[0].reshape(len(epoch[0]), -1).T)
        ref = np.lexsort(plain[0].reshape(len(plain[0]), -1).T)
        np.testing.assert_array_equal(epoch[0][order], plain[0][ref])
        np.testing.assert_array_equal(epoch[1][order], plain[1][ref])


@pytest.mark.parametrize("name", ["synthetic_shapes", "synthetic_shapes_seg", "cifar10",
                                  "voc", "imagenette", "image_folder"])
def test_unknown_source_is_rejected_for_every_dataset(name, tmp_path):
    split = "train"
    with pytest.raises(ValueError, match=r"config\.data\.source.*'auto', 'folder', 'tfds'.*"
                                         r"got 'foldr'"):
        data.build_dataset(name, split, 2, source="foldr", data_dir=str(tmp_path),
                           num_examples=4)
