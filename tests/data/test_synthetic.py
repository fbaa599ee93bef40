"""The procedural shape datasets: format, determinism, balance and content."""

import numpy as np
import pytest

from lps_keras.data import synthetic


@pytest.fixture(scope="module")
def shapes():
    return synthetic.make_synthetic_shapes(1003, seed=0)


@pytest.fixture(scope="module")
def single_shape_seg():
    return synthetic.make_synthetic_shapes_seg(300, image_size=48, seed=1, num_shapes=(1, 1))


def test_format(shapes):
    images, labels = shapes
    assert images.shape == (1003, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (1003,) and labels.dtype == np.int32
    assert labels.min() == 0 and labels.max() == 9
    assert len(synthetic.SHAPE_NAMES) == synthetic.NUM_SHAPE_CLASSES == 10


def test_deterministic_under_seed(shapes):
    images, labels = synthetic.make_synthetic_shapes(1003, seed=0)
    np.testing.assert_array_equal(images, shapes[0])
    np.testing.assert_array_equal(labels, shapes[1])
    other_images, other_labels = synthetic.make_synthetic_shapes(1003, seed=1)
    assert not np.array_equal(other_labels, labels)
    assert np.mean(other_images != images) > 0.9


def test_classes_are_balanced_and_shuffled(shapes):
    counts = np.bincount(shapes[1], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1003
    # Not sorted or cyclic: labels follow a permutation.
    assert not np.array_equal(shapes[1][:20], np.arange(20) % 10)


def test_colour_does_not_predict_class(shapes):
    images, labels = shapes
    mean_colour = images.reshape(len(images), -1, 3).mean(1)  # [N, 3]
    per_class = np.stack([mean_colour[labels == c].mean(0) for c in range(10)])
    # Per-image mean colours vary by ~70 (0-255 scale); class averages of ~100 images must
    # agree far more closely than that if colour is independent of the class.
    assert np.ptp(per_class, axis=0).max() < 30
    assert mean_colour.std(0).min() > 40


def test_images_have_textured_backgrounds(shapes):
    images, _ = shapes
    # Smooth textures plus noise: no image is flat, and neighbouring pixels are correlated.
    per_image_std = images.reshape(len(images), -1).std(1)
    assert per_image_std.min() > 2


def test_seg_format_and_class_ids():
    images, masks = synthetic.make_synthetic_shapes_seg(50, seed=0)
    assert images.shape == (50, 64, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (50, 64, 64) and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= set(range(11))
    assert 0.05 < np.mean(masks > 0) < 0.5  # shapes present, background dominant


def test_seg_shape_count_bounds():
    _, masks = synthetic.make_synthetic_shapes_seg(40, image_size=32, seed=2, num_shapes=(0, 0))
    assert not masks.any()
    _, masks = synthetic.make_synthetic_shapes_seg(40, image_size=32, seed=2, num_shapes=(2, 2))
    for mask in masks:
        assert 1 <= len(np.unique(mask[mask > 0])) <= 2  # a shape may hide another one
    with pytest.raises(ValueError, match="num_shapes"):
        synthetic.make_synthetic_shapes_seg(1, num_shapes=(3, 1))


def test_seg_deterministic_under_seed():
    a = synthetic.make_synthetic_shapes_seg(20, image_size=32, seed=5)
    b = synthetic.make_synthetic_shapes_seg(20, image_size=32, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_mask_marks_a_uniformly_coloured_shape(single_shape_seg):
    images, masks = single_shape_seg
    for image, mask in zip(images, masks, strict=True):
        inside = mask > 0
        assert inside.sum() >= 20  # large enough to see (smallest: thin bars)
        colour = image[inside].astype(np.float32)
        # One flat colour plus +-7 pixel noise (more only where clipped at 0 or 255).
        assert np.median(colour.std(0)) < 6
        background = image[~inside].astype(np.float32).mean(0)
        # The shape stands out from the background in at least one channel.
        assert np.abs(colour.mean(0) - background).max() > 40


def test_shape_classes_differ_in_geometry(single_shape_seg):
    _, masks = single_shape_seg
    # Area relative to the bounding extent separates e.g. squares from bars and rings.
    areas = {}
    for mask in masks:
        cls = int(mask.max()) - 1
        areas.setdefault(synthetic.SHAPE_NAMES[cls], []).append((mask > 0).mean())
    assert np.mean(areas["square"]) > 2 * np.mean(areas["horizontal_bar"])
    assert np.mean(areas["disk"]) > np.mean(areas["ring"])


def test_shapes_wrap_around_the_border(single_shape_seg):
    _, masks = single_shape_seg
    wraps = 0
    for mask in masks:
        rows = (mask[:, 0] > 0) & (mask[:, -1] > 0)
        cols = (mask[0, :] > 0) & (mask[-1, :] > 0)
        wraps += bool(rows.any() or cols.any())
    assert wraps > 10  # positions are uniform on the torus


@pytest.mark.parametrize("shape_id", range(10))
def test_shape_masks_at_canonical_pose(shape_id):
    # Render each shape centred on a 21x21 grid with half-size 10 and check a few pixels
    # that define it.
    u, v = np.meshgrid(np.arange(-10, 11) / 10.0, np.arange(-10, 11) / 10.0, indexing="ij")
    m = synthetic._shape_mask(shape_id, u, v)
    name = synthetic.SHAPE_NAMES[shape_id]
    centre, corner = m[10, 10], m[0, 0]
    top_mid, left_mid = m[0, 10], m[10, 0]
    expected = {
        "square": (True, True, True, True),
        "disk": (True, False, True, True),
        "triangle": (True, False, True, False),
        "plus": (True, False, True, True),
        "ring": (False, False, True, True),
        "horizontal_bar": (True, False, False, True),
        "vertical_bar": (True, False, True, False),
        "diamond": (True, False, True, True),
        "x_cross": (True, True, False, False),
        "l_shape": (False, True, False, True),  # strokes: left column and bottom row
    }[name]
    assert (centre, corner, top_mid, left_mid) == expected


@pytest.mark.parametrize("small, large", [(200, 1000), (1003, 2500)])
def test_shapes_are_prefix_stable(small, large):
    # train.py and eval.py may generate different numbers of examples; the shared prefix
    # must be the same data (within a chunk and across chunk boundaries).
    a_images, a_labels = synthetic.make_synthetic_shapes(small, seed=3)
    b_images, b_labels = synthetic.make_synthetic_shapes(large, seed=3)
    np.testing.assert_array_equal(a_images, b_images[:small])
    np.testing.assert_array_equal(a_labels, b_labels[:small])
    # Not trivially equal: the data differs between images and seeds.
    assert not np.array_equal(b_images[:small], b_images[small:2 * small])
    assert not np.array_equal(synthetic.make_synthetic_shapes(small, seed=4)[1], a_labels)


def test_seg_is_prefix_stable():
    a_images, a_masks = synthetic.make_synthetic_shapes_seg(30, image_size=32, seed=3)
    b_images, b_masks = synthetic.make_synthetic_shapes_seg(1010, image_size=32, seed=3)
    np.testing.assert_array_equal(a_images, b_images[:30])
    np.testing.assert_array_equal(a_masks, b_masks[:30])
    assert b_masks[1000:].any()  # the second chunk holds shapes too


def test_every_prefix_is_balanced(shapes):
    for k in (7, 10, 64, 999, 1003):
        counts = np.bincount(shapes[1][:k], minlength=10)
        assert counts.max() - counts.min() <= 1, (k, counts)


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        synthetic.make_synthetic_shapes(4, seed=-1)
