"""MRI math (masks, centred FFTs, normalisation, crops) and the `synthetic_mri` dataset."""

import numpy as np
import pytest

from lps_keras.data import build_dataset, dataset_info, mri, synthetic_mri
from lps_keras.evaluation.loading import load_arrays
from tests.data.mri_reference import np_fft2c, np_ifft2c

# ----------------------------------------------------------------------------------------------
# Masks


@pytest.mark.parametrize("num_columns", [368, 64, 37])
def test_mask_center_band_is_fully_sampled_and_has_fastmri_width(num_columns):
    width = int(round(num_columns * 0.08))
    start = (num_columns - width + 1) // 2
    masks = np.stack([mri.random_mask(num_columns, 4, 0.08, seed=s) for s in range(300)])
    assert masks.dtype == np.float32 and masks.shape == (300, num_columns)
    assert set(np.unique(masks)) == {0.0, 1.0}
    always = np.flatnonzero(masks.min(0) == 1.0)
    # Outside the band a column is kept with probability ~0.19: over 300 masks, only the
    # band's columns are kept every time.
    np.testing.assert_array_equal(always, np.arange(start, start + width))
    assert start <= num_columns // 2 < start + width  # the DC column is in the band


@pytest.mark.parametrize("acceleration,center_fraction", [(4, 0.08), (8, 0.04)])
def test_mask_sampling_rate_is_one_over_acceleration(acceleration, center_fraction):
    rates = [mri.random_mask(368, acceleration, center_fraction, seed=s).mean()
             for s in range(400)]
    assert abs(np.mean(rates) - 1.0 / acceleration) < 0.005
    assert np.std(rates) > 0  # random, not a fixed pattern
    p = mri.mask_probability(368, acceleration, center_fraction)
    low = round(368 * center_fraction)
    assert np.isclose(low + p * (368 - low), 368 / acceleration)


def test_mask_is_seeded():
    a = mri.random_mask(368, seed=(102, 105, 108, 101))
    np.testing.assert_array_equal(a, mri.random_mask(368, seed=(102, 105, 108, 101)))
    assert not np.array_equal(a, mri.random_mask(368, seed=(102, 105, 108, 102)))
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(mri.random_mask(64, seed=gen),
                                  mri.random_mask(64, seed=np.random.default_rng(5)))
    # Batches are prefixes of larger batches.
    big = mri.random_masks(np.random.default_rng(3), 10, 64)
    np.testing.assert_array_equal(big[:4], mri.random_masks(np.random.default_rng(3), 4, 64))


def test_mask_rejects_impossible_settings():
    with pytest.raises(ValueError, match="center_fraction"):
        mri.random_mask(100, acceleration=8, center_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="num_columns"):
        mri.random_mask(0, seed=0)


# ----------------------------------------------------------------------------------------------
# FFTs




@pytest.fixture(params=[(2, 8, 6), (3, 9, 7)], ids=["even", "odd"])
def complex_images(request):
    rng = np.random.default_rng(0)
    shape = request.param
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def test_fft2c_matches_numpy_ortho(complex_images):
    x = complex_images
    np.testing.assert_allclose(mri.fft2c(x).numpy(), np_fft2c(x), atol=1e-5)
    np.testing.assert_allclose(mri.ifft2c(x).numpy(), np_ifft2c(x), atol=1e-5)


def test_fft2c_is_orthonormal_and_inverted_by_ifft2c(complex_images):
    x = complex_images
    k = mri.fft2c(x).numpy()
    energy = np.sum(np.abs(x) ** 2, axis=(-2, -1))
    np.testing.assert_allclose(np.sum(np.abs(k) ** 2, axis=(-2, -1)), energy, rtol=1e-5)
    np.testing.assert_allclose(mri.ifft2c(k).numpy(), x, atol=1e-5)
    np.testing.assert_allclose(mri.fft2c(mri.ifft2c(x)).numpy(), x, atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 6), (9, 7)])
def test_fft2c_puts_dc_at_the_centre(shape):
    k = mri.fft2c(np.ones(shape, np.float32)).numpy()
    h, w = shape
    expected = np.zeros(shape, np.complex64)
    expected[h // 2, w // 2] = np.sqrt(h * w)
    np.testing.assert_allclose(k, expected, atol=1e-5)


def test_zero_filled_with_full_mask_is_the_magnitude(complex_images):
    x = complex_images
    k = mri.fft2c(x)
    out = mri.zero_filled(k, np.ones(x.shape[-1], np.float32)).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.abs(x), atol=1e-5)
    # An undersampled mask loses information.
    mask = mri.random_mask(x.shape[-1], acceleration=4, center_fraction=0.2, seed=0)
    assert mask.min() == 0
    assert np.abs(mri.zero_filled(k, mask).numpy() - np.abs(x)).max() > 1e-2


# ----------------------------------------------------------------------------------------------
# Normalisation and crops


def test_normalize_instance_and_pair_follow_fastmri():
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=(2, 10, 12)).astype(np.float32)
    out, mean, std = mri.normalize_instance(x)
    ref_mean = x.mean(axis=(1, 2), keepdims=True)
    ref_std = x.std(axis=(1, 2), ddof=1, keepdims=True)  # torch.Tensor.std is unbiased
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-5)
    np.testing.assert_allclose(out.numpy(), (x - ref_mean) / (ref_std + 1e-11), atol=1e-5)
    target = x * 40.0  # far outside the input's range: clamped
    a, b = mri.normalized_pair(x, target)
    np.testing.assert_allclose(a.numpy(), np.clip((x - ref_mean) / ref_std, -6, 6), atol=1e-5)
    np.testing.assert_allclose(b.numpy(), np.clip((target - ref_mean) / ref_std, -6, 6),
                               atol=1e-4)
    assert b.numpy().max() == 6.0


def test_center_crops():
    x = np.arange(7 * 10).reshape(7, 10)
    np.testing.assert_array_equal(mri.center_crop(x, (3, 4)).numpy(), x[2:5, 3:7])
    np.testing.assert_array_equal(mri.center_crop(x[None], 5).numpy(), x[None, 1:6, 2:7])
    z = (x + 1j * x).astype(np.complex64)
    np.testing.assert_array_equal(mri.complex_center_crop(z, (4, 4)).numpy(), z[1:5, 3:7])
    with pytest.raises(ValueError, match="7x10"):
        mri.center_crop(x, (8, 4))
    with pytest.raises(TypeError, match="complex"):
        mri.complex_center_crop(x.astype(np.float32), 4)


# ----------------------------------------------------------------------------------------------
# synthetic_mri


@pytest.fixture(scope="module")
def phantoms():
    return synthetic_mri.make_synthetic_mri(120, image_size=32, seed=3)


def test_synthetic_mri_format_and_clamp(phantoms):
    x, y = phantoms
    for a in (x, y):
        assert a.shape == (120, 32, 32, 1) and a.dtype == np.float32
        assert np.all(np.abs(a) <= 6.0) and np.all(np.isfinite(a))
    # Instance-normalised inputs (before the clamp, which rarely bites).
    assert np.allclose(x.mean(axis=(1, 2, 3)), 0.0, atol=0.05)
    assert np.allclose(x.std(axis=(1, 2, 3), ddof=1), 1.0, atol=0.05)


def test_synthetic_mri_is_prefix_stable_and_seeded(phantoms):
    x, y = phantoms
    a, b = synthetic_mri.make_synthetic_mri(17, image_size=32, seed=3)
    np.testing.assert_array_equal(a, x[:17])
    np.testing.assert_array_equal(b, y[:17])
    c, d = synthetic_mri.make_synthetic_mri(17, image_size=32, seed=4)
    assert np.mean(np.abs(c - a) > 1e-3) > 0.5 and not np.allclose(d, b)
    e, f = synthetic_mri.make_synthetic_mri(17, image_size=32, seed=3, textured=False)
    assert not np.allclose(f, b)  # the texture is part of the target


def test_synthetic_mri_input_is_a_degraded_target(phantoms):
    x, y = phantoms
    assert not np.allclose(x, y)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    peak = y.max(axis=(1, 2, 3)) - y.min(axis=(1, 2, 3))
    psnr = 10 * np.log10(peak**2 / mse)
    assert np.all(np.isfinite(psnr))
    assert 10.0 < np.median(psnr) < 35.0, np.median(psnr)
    # Targets: a non-negative phantom (its background is the lowest value), many levels.
    background = y[:, 0, 0, 0]
    np.testing.assert_allclose(y.min(axis=(1, 2, 3)), background, atol=1e-5)
    assert all(len(np.unique(np.round(t, 3))) > 20 for t in y[:10])


def test_synthetic_mri_registry_and_build_dataset_every_split():
    info = dataset_info("synthetic_mri")
    assert (info.task, info.num_classes, info.image_shape) == ("regression", None, (64, 64, 1))
    assert (info.mean, info.std, info.protocol) == ((0.0,), (1.0,), "reconstruction")
    assert info.default_augment == "none"
    for seed, split in enumerate(info.splits):
        ds = build_dataset("synthetic_mri", split, 4, num_examples=6, image_size=32)
        batches = list(ds)
        x = np.concatenate([b[0].numpy() for b in batches])
        y = np.concatenate([b[1].numpy() for b in batches])
        assert x.dtype == y.dtype == np.float32
        if split == "train":  # shuffled, drop_remainder: 1 batch of 4 examples
            assert x.shape == (4, 32, 32, 1)
            continue
        ref_x, ref_y = synthetic_mri.make_synthetic_mri(6, image_size=32, seed=seed)
        np.testing.assert_array_equal(x, ref_x)
        np.testing.assert_array_equal(y, ref_y)
        lx, ly = load_arrays("synthetic_mri", split, num_examples=5, image_size=32)
        assert lx.shape == ly.shape == (5, 32, 32, 1) and lx.dtype == ly.dtype == np.float32
        np.testing.assert_array_equal(lx, ref_x[:5])
        np.testing.assert_array_equal(ly, ref_y[:5])


def test_synthetic_mri_default_sizes_and_normalize_is_a_no_op():
    for split, n in (("validation", 200), ("test", 200)):
        ds = build_dataset("synthetic_mri", split, 50)
        assert int(ds.cardinality()) == n // 50
        x, y = next(iter(ds))
        assert x.shape == (50, 64, 64, 1)
    raw = next(iter(build_dataset("synthetic_mri", "test", 8, normalize=False)))
    np.testing.assert_array_equal(raw[0].numpy(), x[:8].numpy())
    np.testing.assert_array_equal(raw[1].numpy(), y[:8].numpy())


def _batches(augment, **kwargs):
    ds = build_dataset("synthetic_mri", "validation", 16, num_examples=16, image_size=32,
                       training=False, augment=augment, seed=7, **kwargs)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def test_shift_augmentation_rolls_input_and_target_together():
    x0, y0 = _batches("none")
    x1, y1 = _batches("shift", max_shift=4)
    shifts = []
    for i in range(len(x0)):
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if np.array_equal(np.roll(x0[i], (dy, dx), axis=(0, 1)), x1[i])]
        assert len(found) == 1, found
        np.testing.assert_array_equal(np.roll(y0[i], found[0], axis=(0, 1)), y1[i])
        shifts.append(found[0])
    assert len(set(shifts)) > 3  # random per example


def test_flip_augmentation_flips_input_and_target_together():
    x0, y0 = _batches("none")
    x1, y1 = _batches("flip")
    flipped = []
    for i in range(len(x0)):
        f = np.array_equal(x1[i], x0[i, :, ::-1])
        assert f or np.array_equal(x1[i], x0[i])
        np.testing.assert_array_equal(y1[i], y0[i, :, ::-1] if f else y0[i])
        flipped.append(f)
    assert 0 < sum(flipped) < len(flipped)
    with pytest.raises(ValueError, match="crop"):
        _batches("crop")
