"""PASCAL VOC 2012 segmentation: palette masks, split files, pipeline, errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from lps_keras.data import pipeline, voc
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError


def _root(data_dir):
    return os.path.join(data_dir, "VOCdevkit", "VOC2012")


def test_read_mask_recovers_palette_indices_exactly(voc_dir):
    data_dir, masks = voc_dir
    for image_id, expected in masks.items():
        mask = voc.read_mask(os.path.join(_root(data_dir), "SegmentationClass", f"{image_id}.png"))
        assert mask.dtype == np.uint8 and mask.shape == expected.shape
        np.testing.assert_array_equal(mask, expected)
    assert 255 in np.concatenate([m.ravel() for m in masks.values()])  # ignore label covered


def test_decode_png_would_return_colours_not_indices(voc_dir):
    # The reason masks go through Pillow: TensorFlow applies the palette.
    data_dir, masks = voc_dir
    image_id, expected = next(iter(masks.items()))
    raw = tf.io.read_file(os.path.join(_root(data_dir), "SegmentationClass", f"{image_id}.png"))
    decoded = tf.io.decode_png(raw, channels=1).numpy()[..., 0]
    assert not np.array_equal(decoded, expected)


def test_read_mask_grayscale_and_rgb(tmp_path, helpers):
    values = np.array([[0, 1, 2], [20, 254, 255]], np.uint8)
    helpers.write_gray_png(str(tmp_path / "gray.png"), values)
    np.testing.assert_array_equal(voc.read_mask(str(tmp_path / "gray.png")), values)
    np.testing.assert_array_equal(voc.read_mask(str(tmp_path / "gray.png").encode()), values)
    helpers.write_png(str(tmp_path / "rgb.png"), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(CorruptDatasetError, match=r"'RGB'.*class ids") as info:
        voc.read_mask(str(tmp_path / "rgb.png"))
    assert "rgb.png" in str(info.value)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(CorruptDatasetError, match="broken.png"):
        voc.read_mask(str(tmp_path / "broken.png"))


@pytest.mark.parametrize("level", ["parent", "devkit", "voc2012"])
def test_data_dir_at_any_level(voc_dir, level):
    data_dir, _ = voc_dir
    path = {
        "parent": data_dir,
        "devkit": os.path.join(data_dir, "VOCdevkit"),
        "voc2012": _root(data_dir),
    }[level]
    images, masks = voc.list_voc_segmentation(path, "train")
    assert [os.path.basename(p) for p in images] == ["2007_000032.jpg", "2007_000039.jpg"]
    assert all(os.sep + "SegmentationClass" + os.sep in p for p in masks)


def test_dataset_yields_aligned_pairs(voc_dir):
    data_dir, masks = voc_dir
    examples = list(voc.voc_segmentation_dataset(data_dir, "train").as_numpy_iterator())
    for (image, mask), image_id in zip(examples, ["2007_000032", "2007_000039"], strict=True):
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        assert image.shape == masks[image_id].shape + (3,)
        np.testing.assert_array_equal(mask, masks[image_id])
        # The JPEG holds a gradient: red = 5 * row, green = 5 * column, blue = 90.
        h, w = mask.shape
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        expected = np.stack([yy * 5, xx * 5, np.full_like(yy, 90)], -1)
        assert np.abs(image.astype(int) - expected).mean() < 3


def test_train_aug_reads_sbd_masks_and_pair_lists(voc_dir):
    data_dir, masks = voc_dir
    images, mask_paths = voc.list_voc_segmentation(data_dir, "train_aug")
    assert len(images) == 3
    assert all(os.sep + "SegmentationClassAug" + os.sep in p for p in mask_paths)
    first = voc.read_mask(mask_paths[0])
    expected = masks["2007_000032"]
    np.testing.assert_array_equal(first, np.where((expected > 0) & (expected < 255), 1, expected))


def test_missing_files_and_folders(voc_dir, tmp_path):
    data_dir, _ = voc_dir
    os.remove(os.path.join(_root(data_dir), "SegmentationClass", "2007_000039.png"))
    with pytest.raises(DatasetNotFoundError, match="2007_000039.png") as info:
        voc.list_voc_segmentation(data_dir, "train")
    assert "1 file(s) are missing" in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="trainval.txt"):
        voc.list_voc_segmentation(data_dir, "trainval")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="JPEGImages") as info:
        voc.list_voc_segmentation(str(empty), "train")
    assert "VOCtrainval_11-May-2012.tar" in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        voc.list_voc_segmentation(str(tmp_path / "absent"), "train")
    with pytest.raises(ValueError, match="split"):
        voc.list_voc_segmentation(data_dir, "test")


def test_empty_split_file(voc_dir):
    data_dir, _ = voc_dir
    with open(os.path.join(_root(data_dir), "ImageSets", "Segmentation", "val.txt"), "w") as f:
        f.write("\n\n")
    with pytest.raises(CorruptDatasetError, match="no image ids"):
        voc.list_voc_segmentation(data_dir, "val")


def test_size_mismatch_fails_loudly(voc_dir, helpers):
    data_dir, _ = voc_dir
    path = os.path.join(_root(data_dir), "SegmentationClass", "2007_000063.png")
    helpers.write_palette_png(path, np.zeros((5, 5), np.uint8))
    ds = voc.voc_segmentation_dataset(data_dir, "val")
    with pytest.raises(tf.errors.InvalidArgumentError, match="sizes differ"):
        list(ds)


def test_build_dataset_eval_pads_with_ignore(voc_dir):
    data_dir, masks = voc_dir
    ds = pipeline.build_dataset("voc", "val", 2, data_dir=data_dir, crop_size=40, normalize=False)
    ((images, labels),) = list(ds.as_numpy_iterator())
    assert images.shape == (1, 40, 40, 3) and images.dtype == np.uint8
    assert labels.shape == (1, 40, 40) and labels.dtype == np.int32
    expected = masks["2007_000063"]  # 20 x 36
    np.testing.assert_array_equal(labels[0, :20, :36], expected)
    assert (labels[0, 20:] == 255).all() and (labels[0, :, 36:] == 255).all()
    # The image is padded with the ImageNet mean colour.
    np.testing.assert_array_equal(
        images[0, 30, 38],
        np.round(np.array(pipeline.dataset_info("voc").mean) * 255).astype(np.uint8),
    )


def test_build_dataset_eval_rejects_images_larger_than_pad_size(voc_dir):
    data_dir, _ = voc_dir
    ds = pipeline.build_dataset("voc", "val", 1, data_dir=data_dir, crop_size=16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than the evaluation size"):
        list(ds)


def test_build_dataset_training_crops(voc_dir):
    data_dir, masks = voc_dir
    ds = pipeline.build_dataset("voc", "train", 2, data_dir=data_dir, crop_size=16, seed=3)
    ((images, labels),) = list(ds.as_numpy_iterator())
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.float32
    assert labels.shape == (2, 16, 16)
    allowed = set(np.unique(np.concatenate([m.ravel() for m in masks.values()])))
    assert set(np.unique(labels)) <= allowed


def test_no_tfds_route(voc_dir):
    data_dir, _ = voc_dir
    with pytest.raises(ValueError, match="no segmentation masks"):
        pipeline.build_dataset("voc", "train", 2, data_dir=data_dir, source="tfds")
    with pytest.raises(ValueError, match="data_dir"):
        pipeline.build_dataset("voc", "train", 2)
