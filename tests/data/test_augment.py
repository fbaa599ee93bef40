"""Augmentations: exact geometry, seeding, and image/mask alignment."""

import numpy as np
import pytest
import tensorflow as tf

from lps_keras.data import augment


def _image(h=8, w=10, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


# ------------------------------------------------------------------------------------------
# Seeds


def test_as_seed_forms():
    np.testing.assert_array_equal(augment.as_seed(5).numpy(), [5, 0])
    np.testing.assert_array_equal(augment.as_seed([3, 4]).numpy(), [3, 4])
    assert augment.as_seed(None).shape == (2,)
    with pytest.raises(ValueError, match="shape"):
        augment.as_seed([1, 2, 3])
    with pytest.raises(TypeError, match="integer"):
        augment.as_seed(1.5)


def test_split_seed_gives_distinct_deterministic_seeds():
    a = [s.numpy().tolist() for s in augment.split_seed([1, 2], 3)]
    b = [s.numpy().tolist() for s in augment.split_seed([1, 2], 3)]
    assert a == b and len({tuple(s) for s in a}) == 3


def test_element_seeds_repeat_across_runs_and_change_across_epochs():
    ds = augment.element_seeds(42).take(4)
    epoch1 = [s.tolist() for s in ds.as_numpy_iterator()]
    epoch2 = [s.tolist() for s in ds.as_numpy_iterator()]
    again = [s.tolist() for s in augment.element_seeds(42).take(4).as_numpy_iterator()]
    assert epoch1 == again
    assert epoch1 != epoch2
    assert len({tuple(s) for s in epoch1}) == 4


# ------------------------------------------------------------------------------------------
# Flip and circular shift


def test_circular_shift_equals_np_roll_of_the_drawn_shift():
    image = _image()
    seen = set()
    for i in range(60):
        seed = [i, 7]
        shift = augment.sample_shift(3, seed).numpy()
        out = augment.random_circular_shift(tf.constant(image), 3, seed).numpy()
        np.testing.assert_array_equal(out, np.roll(image, tuple(shift), axis=(0, 1)))
        assert np.all(np.abs(shift) <= 3)
        seen.update(shift.tolist())
    # Both extremes are reachable: the range is inclusive.
    assert seen == set(range(-3, 4))


def test_circular_shift_moves_content_down_right():
    x = np.zeros((4, 4), np.int32)
    x[0, 0] = 1
    out = augment.circular_shift(tf.constant(x), [1, 2]).numpy()
    assert out[1, 2] == 1 and out.sum() == 1
    out = augment.circular_shift(tf.constant(x), [-1, 0]).numpy()
    assert out[3, 0] == 1  # wraps around


def test_zero_max_shift_is_identity():
    image = _image()
    out = augment.random_circular_shift(tf.constant(image), 0, [1, 1]).numpy()
    np.testing.assert_array_equal(out, image)
    with pytest.raises(ValueError, match="max_shift"):
        augment.sample_shift(-1, [0, 0])


def test_flip_is_identity_or_mirror_and_seeded():
    image = _image()
    outcomes = []
    for i in range(20):
        out = augment.random_flip_left_right(tf.constant(image), [i, 0]).numpy()
        again = augment.random_flip_left_right(tf.constant(image), [i, 0]).numpy()
        np.testing.assert_array_equal(out, again)
        flipped = bool(augment.sample_flip([i, 0]).numpy())
        np.testing.assert_array_equal(out, image[:, ::-1] if flipped else image)
        outcomes.append(flipped)
    assert 0 < sum(outcomes) < 20


# ------------------------------------------------------------------------------------------
# Crops


def test_random_crop_with_padding_is_a_window_of_the_zero_padded_image():
    image = _image(6, 6, 1, seed=3) + 1  # no zeros, so padding is recognisable
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    offsets = set()
    for i in range(40):
        out = augment.random_crop_with_padding(tf.constant(image), 2, [i, 1]).numpy()
        assert out.shape == image.shape and out.dtype == image.dtype
        matches = [
            (y, x)
            for y in range(5)
            for x in range(5)
            if np.array_equal(out, padded[y : y + 6, x : x + 6])
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets actually vary


def test_random_resized_crop_box_respects_scale_and_ratio():
    for i in range(30):
        y, x, h, w = (
            int(v)
            for v in augment.sample_random_resized_crop_box(
                40, 60, scale=(0.2, 0.5), ratio=(0.5, 2.0), seed=[i, 2]
            )
        )
        assert 0 <= y and y + h <= 40 and 0 <= x and x + w <= 60
        # Rounding of h and w moves area and ratio slightly.
        assert 0.2 * 2400 * 0.85 <= h * w <= 0.5 * 2400 * 1.15
        assert 0.5 * 0.8 <= w / h <= 2.0 * 1.25


def test_random_resized_crop_fallback_is_centred_and_clamped():
    # A 10x100 strip cannot hold a square of 90-100% of its area: centred 10x10 fallback.
    y, x, h, w = (
        int(v)
        for v in augment.sample_random_resized_crop_box(
            10, 100, scale=(0.9, 1.0), ratio=(1.0, 1.0), seed=[0, 0]
        )
    )
    assert (y, x, h, w) == (0, 45, 10, 10)


def test_random_resized_crop_of_the_whole_image_is_a_resize():
    image = tf.constant(_image(16, 16))
    out = augment.random_resized_crop(image, 8, scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=[4, 4])
    expected = tf.image.resize(image, (8, 8), antialias=True)
    assert out.shape == (8, 8, 3) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-4)


def test_random_resized_crop_at_native_size_is_an_exact_window():
    image = _image(32, 32, 3, seed=5)
    for i in range(5):
        y, x, h, w = (
            int(v)
            for v in augment.sample_random_resized_crop_box(
                32, 32, scale=(0.25, 0.25), ratio=(1.0, 1.0), seed=[i, 9]
            )
        )
        assert (h, w) == (16, 16)
        out = augment.random_resized_crop(
            tf.constant(image), 16, scale=(0.25, 0.25), ratio=(1.0, 1.0), seed=[i, 9]
        ).numpy()
        np.testing.assert_allclose(out, image[y : y + 16, x : x + 16], atol=1e-3)


def test_resize_shorter_side_and_center_crop():
    image = tf.zeros((30, 60, 3), tf.uint8)
    assert augment.resize_shorter_side(image, 20).shape == (20, 40, 3)
    assert augment.resize_shorter_side(tf.zeros((61, 30, 3)), 10).shape == (20, 10, 3)
    x = np.arange(6 * 8).reshape(6, 8, 1)
    np.testing.assert_array_equal(augment.center_crop(tf.constant(x), (2, 4)).numpy(), x[2:4, 2:6])
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than the crop"):
        augment.center_crop(tf.constant(x), 7)


# ------------------------------------------------------------------------------------------
# Normalisation


def test_normalize_and_to_uint8():
    image = np.array([[[0, 128, 255]]], np.uint8)
    out = augment.normalize(tf.constant(image), augment.CIFAR10_MEAN, augment.CIFAR10_STD)
    expected = (image / 255.0 - np.array(augment.CIFAR10_MEAN)) / np.array(augment.CIFAR10_STD)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(
        augment.to_uint8(tf.constant([-3.0, 0.4, 0.6, 254.5, 300.0])).numpy(), [0, 0, 1, 254, 255]
    )


# ------------------------------------------------------------------------------------------
# Segmentation: image and mask together


def _encoded_pair(rng, h, w):
    """A mask and an image that stores the mask in channel 0 and a 'real pixel' flag (100)
    in channel 1, so any misalignment or mixing shows up exactly."""
    mask = rng.integers(0, 21, (h // 4 + 1, w // 4 + 1)).astype(np.uint8)
    mask = np.kron(mask, np.ones((4, 4), np.uint8))[:h, :w]
    mask[rng.random((h, w)) < 0.05] = 255  # some genuine ignore pixels
    image = np.stack([mask, np.full_like(mask, 100), np.zeros_like(mask)], -1)
    return image, mask


def test_scale_crop_flip_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    pad_value = (7.0, 0.0, 0.0)
    saw_padding = 0
    for i in range(25):
        image, mask = _encoded_pair(rng, 20 + i % 7, 24)
        out_image, out_mask = augment.random_scale_crop_flip(
            tf.constant(image),
            tf.constant(mask),
            24,
            scale_range=(0.5, 2.0),
            seed=[i, 3],
            image_pad_value=pad_value,
            image_method="nearest",
        )
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == (24, 24, 3) and out_mask.shape == (24, 24)
        assert out_mask.dtype == np.uint8 and out_image.dtype == np.float32
        real = out_image[..., 1] == 100
        # Real pixels: the image still encodes the mask under it.
        np.testing.assert_array_equal(out_image[..., 0][real], out_mask[real])
        # Padded pixels: image filled with the pad value, mask with the ignore label.
        assert np.all(out_mask[~real] == 255)
        assert np.all(out_image[~real] == np.array(pad_value, np.float32))
        saw_padding += int((~real).any())
    assert saw_padding > 0  # scales < 1 exercised the padding path


def test_scale_crop_flip_geometry_with_exact_factor_two():
    rng = np.random.default_rng(1)
    mask = rng.integers(0, 21, (8, 8)).astype(np.uint8)
    image = np.repeat(mask[..., None], 3, axis=-1)
    big = np.kron(mask, np.ones((2, 2), np.uint8))  # nearest x2 upsampling
    flips = set()
    for i in range(10):
        out_image, out_mask = augment.random_scale_crop_flip(
            tf.constant(image),
            tf.constant(mask),
            8,
            scale_range=(2.0, 2.0),
            seed=[i, 0],
        )
        out_mask = out_mask.numpy()
        candidates = [
            (y, x, flip)
            for y in range(9)
            for x in range(9)
            for flip in (False, True)
            if np.array_equal(out_mask, (big[:, ::-1] if flip else big)[y : y + 8, x : x + 8])
        ]
        assert candidates, "output is not a crop of the x2 rescaled mask"
        flips.update(c[2] for c in candidates)
        # Nearest-neighbour resizing never invents class ids by blending neighbours.
        assert set(np.unique(out_mask)) <= set(np.unique(mask))
    assert flips == {False, True}


def test_scale_crop_flip_is_seeded():
    rng = np.random.default_rng(2)
    image, mask = _encoded_pair(rng, 30, 30)
    a = augment.random_scale_crop_flip(image, mask, 16, seed=[5, 5])
    b = augment.random_scale_crop_flip(image, mask, 16, seed=[5, 5])
    c = augment.random_scale_crop_flip(image, mask, 16, seed=[6, 5])
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    assert not np.array_equal(a[1].numpy(), c[1].numpy())


def test_pad_to_size_per_channel_fill():
    image = np.ones((2, 3, 3), np.uint8)
    mask = np.zeros((2, 3), np.uint8)
    out_image, out_mask = augment.pad_to_size(image, mask, 4, image_pad_value=(10, 20, 30))
    assert out_image.shape == (4, 4, 3)
    np.testing.assert_array_equal(out_image.numpy()[3, 3], [10, 20, 30])
    np.testing.assert_array_equal(out_image.numpy()[:2, :3], image)
    assert (out_mask.numpy()[2:] == 255).all() and (out_mask.numpy()[:, 3] == 255).all()
    assert (out_mask.numpy()[:2, :3] == 0).all()


def test_joint_shift_and_flip_move_image_and_mask_together():
    rng = np.random.default_rng(3)
    image, mask = _encoded_pair(rng, 12, 12)
    for i in range(10):
        shifted_image, shifted_mask = augment.random_joint_circular_shift(image, mask, 4, [i, 1])
        np.testing.assert_array_equal(shifted_image.numpy()[..., 0], shifted_mask.numpy())
        shift = augment.sample_shift(4, [i, 1]).numpy()
        np.testing.assert_array_equal(shifted_mask.numpy(), np.roll(mask, tuple(shift), (0, 1)))
        flipped_image, flipped_mask = augment.random_joint_flip_left_right(image, mask, [i, 2])
        np.testing.assert_array_equal(flipped_image.numpy()[..., 0], flipped_mask.numpy())
