"""Class-per-folder images, ImageNet preprocessing and the TFDS ImageNet route."""

import os

import numpy as np
import pytest
import tensorflow as tf

from lps_keras import data
from lps_keras.data import imagenet, pipeline
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError

# Must match FOLDER_CLASSES in conftest.py.
COLOURS = {"cat": (200, 10, 10), "dog": (10, 200, 10), "zebra": (10, 10, 200)}


def _colour_class(image):
    """The class whose colour is nearest to the image's mean colour."""
    mean = np.asarray(image, np.float32).reshape(-1, 3).mean(0)
    return min(COLOURS, key=lambda name: np.abs(mean - COLOURS[name]).sum())


def test_listing_sorts_classes_and_ignores_clutter(image_folder):
    paths, labels, class_names = imagenet.list_image_folder(image_folder)
    assert class_names == ("cat", "dog", "zebra")
    assert labels.dtype == np.int32 and labels.tolist() == [0, 0, 1, 1, 2, 2]
    names = [os.path.relpath(p, image_folder) for p in paths]
    assert names == [
        "cat/cat_0.png",
        "cat/cat_1.JPEG",
        "dog/dog_0.png",
        "dog/dog_1.JPEG",
        "zebra/zebra_0.png",
        "zebra/zebra_1.JPEG",
    ]  # notes.txt and .hidden/ are skipped; .JPEG matches case-insensitively


def test_decoded_pixels_and_labels(image_folder):
    ds, class_names = imagenet.image_folder_dataset(image_folder)
    examples = list(ds.as_numpy_iterator())
    assert len(examples) == 6
    for image, label in examples:
        assert image.dtype == np.uint8 and image.shape[2] == 3
        name = class_names[label]
        tolerance = 0 if image.shape[0] == 12 else 4  # i = 0: PNG (exact); i = 1: JPEG (lossy)
        np.testing.assert_allclose(
            image.reshape(-1, 3).astype(int),
            np.broadcast_to(COLOURS[name], (image.size // 3, 3)),
            atol=tolerance,
        )
    assert [e[0].shape[:2] for e in examples[:2]] == [(12, 20), (14, 20)]


def test_grayscale_and_rgba_png_decode_to_three_channels(tmp_path, helpers):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4, 1) * 20
    path = str(tmp_path / "gray.png")
    helpers.write_png(path, gray)
    image = imagenet.decode_image_file(path).numpy()
    assert image.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], gray[..., 0])
    rgb = np.full((2, 2, 3), 50, np.uint8)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 255, np.uint8)], -1)
    helpers.write_png(str(tmp_path / "rgba.png"), rgba)
    np.testing.assert_array_equal(imagenet.decode_image_file(str(tmp_path / "rgba.png")), rgb)


def test_missing_root(tmp_path):
    root = str(tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        imagenet.list_image_folder(root)
    assert root in str(info.value) and "<class_name>" in str(info.value)


def test_root_without_class_folders(tmp_path, helpers):
    helpers.write_png(str(tmp_path / "loose.png"), helpers.constant_image(2, 2, (1, 1, 1)))
    with pytest.raises(DatasetNotFoundError, match="no class subfolders") as info:
        imagenet.list_image_folder(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_class_folders_without_images(tmp_path):
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
    with pytest.raises(DatasetNotFoundError, match="no images"):
        imagenet.list_image_folder(str(tmp_path))


def test_one_empty_class_folder(image_folder):
    os.makedirs(os.path.join(image_folder, "yak"))
    with pytest.raises(CorruptDatasetError, match="yak") as info:
        imagenet.list_image_folder(image_folder)
    assert "hold no images" in str(info.value)


def test_explicit_class_names_fix_labels_and_detect_mismatch(image_folder):
    paths, labels, _ = imagenet.list_image_folder(image_folder, class_names=["zebra", "dog", "cat"])
    assert [os.path.basename(os.path.dirname(p)) for p in paths][:2] == ["zebra", "zebra"]
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(CorruptDatasetError, match=r"missing folders \['yak'\]"):
        imagenet.list_image_folder(image_folder, class_names=["cat", "dog", "yak", "zebra"])


def test_preprocess_eval_is_resize_then_centre_crop():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    out = imagenet.preprocess_eval(tf.constant(image), image_size=24, resize_size=32).numpy()
    # Shorter side already 32: no resize, only the central 24x24 crop.
    np.testing.assert_allclose(out, image[4:28, 12:36], atol=1e-3)
    out = imagenet.preprocess_eval(tf.constant(image), image_size=12, resize_size=16)
    expected = tf.image.resize(image, (16, 24), antialias=True)[2:14, 6:18]
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="resize_size"):
        imagenet.preprocess_eval(tf.constant(image), image_size=32, resize_size=16)


def test_preprocess_train_modes():
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (40, 60, 3), np.uint8))
    centre = imagenet.preprocess_train(image, [1, 2], image_size=16, resize_size=20, flip=False)
    np.testing.assert_allclose(
        centre.numpy(), imagenet.preprocess_eval(image, 16, 20).numpy(), atol=1e-5
    )
    rrc = imagenet.preprocess_train(image, [1, 2], image_size=16, crop="random_resized")
    assert rrc.shape == (16, 16, 3) and rrc.dtype == tf.float32
    with pytest.raises(ValueError, match="crop"):
        imagenet.preprocess_train(image, [1, 2], crop="five_crop")


def test_build_dataset_from_split_folders(split_image_folder):
    kwargs = dict(data_dir=split_image_folder, image_size=8, resize_size=10, normalize=False)
    train = pipeline.build_dataset("imagenette", "train", 2, seed=0, **kwargs)
    batches = list(train.as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert len(labels) == 6 and images[0].shape == (8, 8, 3) and images[0].dtype == np.uint8
    class_names = ("cat", "dog", "zebra")
    for image, label in zip(images, labels, strict=True):
        assert class_names[label] == _colour_class(image)
    # "validation" finds the val/ folder; labels follow the training classes.
    val = pipeline.build_dataset("imagenette", "validation", 4, **kwargs)
    batches = list(val.as_numpy_iterator())
    assert [b[1].tolist() for b in batches] == [[0, 1, 2]]  # no shuffle, remainder kept
    for image, label in zip(*batches[0], strict=True):
        assert class_names[label] == _colour_class(image)


def test_validation_folder_must_have_training_classes(split_image_folder):
    import shutil

    shutil.rmtree(os.path.join(split_image_folder, "val", "dog"))
    with pytest.raises(CorruptDatasetError, match=r"missing folders \['dog'\]"):
        pipeline.build_dataset("imagenette", "validation", 2, data_dir=split_image_folder)


def test_image_folder_needs_split_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="'test'"):
        pipeline.build_dataset("image_folder", "test", 2, data_dir=str(tmp_path))


def test_tfds_imagenette_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        ds = imagenet.load_tfds_imagenet("imagenette/160px-v2", "train", data_dir=str(tmp_path))
        examples = list(ds.as_numpy_iterator())
    assert len(examples) == 3
    for image, label in examples:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert label.dtype == np.int32 and 0 <= label < 10


def test_tfds_imagenet_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetNotFoundError) as info:
        imagenet.load_tfds_imagenet("imagenet2012", "validation", data_dir=str(tmp_path))
    message = str(info.value)
    assert "imagenet2012" in message and str(tmp_path) in message
    assert "ILSVRC2012_img_train.tar" in message and "manual_dir" in message


def test_tfds_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="imagenet2012"):
        imagenet.load_tfds_imagenet("cifar10")
    with pytest.raises(ValueError, match="manual_dir"):
        imagenet.load_tfds_imagenet("imagenette", manual_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="ILSVRC2012_img_val.tar"):
        imagenet.load_tfds_imagenet("imagenet2012", manual_dir=str(tmp_path / "absent"))


def test_dataset_info_counts_image_folder_classes(split_image_folder, tmp_path, helpers):
    # A class only in val/ does not count: the training split defines the classes.
    helpers.write_image_folder(os.path.join(split_image_folder, "val"),
                               classes={"aardvark": (1, 2, 3)}, per_class=1)
    info = data.dataset_info("image_folder", data_dir=split_image_folder)
    assert info.num_classes == 3 and info.class_names == ("cat", "dog", "zebra")
    assert info.task == "classification" and info.protocol == "imagenet"
    # The one-argument call keeps the static facts; other datasets ignore data_dir.
    assert data.dataset_info("image_folder").num_classes is None
    assert data.dataset_info("cifar10", data_dir=str(tmp_path)).num_classes == 10
    # The class order is the label order of build_dataset.
    ds = pipeline.build_dataset("image_folder", "train", 6, data_dir=split_image_folder,
                                image_size=8, resize_size=10, normalize=False, shuffle=False)
    images, labels = next(iter(ds.as_numpy_iterator()))
    for image, label in zip(images, labels, strict=True):
        assert info.class_names[label] == _colour_class(image)


def test_dataset_info_image_folder_without_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"config\.data\.data_dir.*<class_name>"):
        data.dataset_info("image_folder", data_dir=None)
    with pytest.raises(DatasetNotFoundError, match="no 'train' folder") as info:
        data.dataset_info("image_folder", data_dir=str(tmp_path))
    assert str(tmp_path) in str(info.value) and "train/<class_name>/" in str(info.value)
    os.makedirs(tmp_path / "train")
    with pytest.raises(DatasetNotFoundError, match="no class subfolders"):
        data.dataset_info("image_folder", data_dir=str(tmp_path))


def _folder_with_garbage_jpeg(root, helpers):
    helpers.write_image_folder(os.path.join(root, "train"))
    bad = os.path.join(root, "train", "dog", "dog_9.jpg")
    with open(bad, "wb") as f:
        f.write(b"<html>404 Not Found</html>" + bytes(range(256)))
    return bad


def test_garbage_jpeg_is_named(tmp_path, helpers):
    root = str(tmp_path / "my 'photos' é")  # TF escapes the quotes and the UTF-8 bytes
    bad = _folder_with_garbage_jpeg(root, helpers)
    ds = pipeline.build_dataset("image_folder", "train", 2, data_dir=root, image_size=8,
                                resize_size=10)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        for _ in ds:
            pass
    message = str(info.value)  # names the file (C-escaped by TF) and says what to do
    assert "Corrupt image file " in message and "dog_9.jpg" in message
    assert "Remove or replace it" in message
    error = CorruptDatasetError.from_tf_error(info.value)
    assert isinstance(error, CorruptDatasetError) and error.path == bad
    assert str(error).startswith(f"Corrupt image file {bad}: ")
    assert CorruptDatasetError.from_tf_error(tf.errors.InvalidArgumentError(None, None, "x")) \
        is None


def test_empty_image_file_is_named(tmp_path, helpers):
    root = str(tmp_path / "folder")
    helpers.write_image_folder(root, per_class=1)
    bad = os.path.join(root, "cat", "empty.png")
    open(bad, "wb").close()
    ds, _ = imagenet.image_folder_dataset(root)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Corrupt image file {bad}"):
        list(ds)
