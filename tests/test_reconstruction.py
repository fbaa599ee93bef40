"""lps_keras.evaluation.reconstruction: fastMRI's NMSE/PSNR/SSIM and the APS-U protocols."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from lps_keras import metrics
from lps_keras.layers import CircularPad2D

FIXTURE = Path(__file__).parent / "fixtures" / "reconstruction" / "skimage_reference.json"


def _images(n=4, h=16, w=16, c=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, h, w, c)).astype("float32")


def _circular_net(dtype="float32", seed=1):
    """Circular-padded 3x3 convolutions (stride 1) plus the input: exactly
    circular-shift equivariant."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 1), dtype=dtype)
    x = CircularPad2D(1, dtype=dtype)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", dtype=dtype)(x)
    x = CircularPad2D(1, dtype=dtype)(x)
    x = keras.layers.Conv2D(1, 3, dtype=dtype)(x)
    return keras.Model(inputs, keras.layers.Add(dtype=dtype)([inputs, x]), name="circular")


def _strided_net(seed=1):
    """Zero-padded stride-2 convolution + nearest upsampling: not shift-equivariant."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.UpSampling2D(2)(x)
    x = keras.layers.Conv2D(1, 3, padding="same")(x)
    return keras.Model(inputs, keras.layers.Add()([inputs, x]), name="strided")


# ---------------------------------------------------------------------------------------
# Metric definitions


def test_nmse_definition():
    gt = _images(3)
    assert metrics.nmse(gt, gt) == 0.0
    assert metrics.nmse(gt, np.zeros_like(gt)) == pytest.approx(1.0)
    assert metrics.nmse(gt, 1.5 * gt) == pytest.approx(0.25)
    # Per image, then averaged: image 1 exact, image 0 off by 2x.
    pred = gt.copy()
    pred[0] *= 3.0
    per = metrics.nmse(gt, pred, per_image=True)
    np.testing.assert_allclose(per, [4.0, 0.0, 0.0], rtol=1e-6)
    assert metrics.nmse(gt, pred) == pytest.approx(4.0 / 3)
    assert metrics.nmse(np.zeros((4, 4)), np.zeros((4, 4))) == 0.0
    assert metrics.nmse(np.zeros((4, 4)), np.ones((4, 4))) == np.inf


def test_psnr_of_a_known_constant_error():
    gt = np.zeros((2, 8, 8, 1))
    gt[:, 0, 0] = [[4.0], [2.0]]  # maxval per image: 4 and 2
    pred = gt + 0.5  # MSE 0.25
    np.testing.assert_allclose(metrics.psnr(gt, pred, per_image=True),
                               [10 * np.log10(16 / 0.25), 10 * np.log10(4 / 0.25)])
    assert metrics.psnr(gt, pred, maxval=1.0) == pytest.approx(10 * np.log10(4.0))
    assert metrics.psnr(gt, gt) == np.inf
    with pytest.raises(ValueError, match="maxval"):
        metrics.psnr(-np.ones((8, 8)), np.zeros((8, 8)))


def test_ssim_identity_symmetry_range_and_shapes():
    x, y = _images(3, seed=1), _images(3, seed=2)
    assert metrics.ssim(x, x) == 1.0
    # Symmetric for a fixed maxval (the default maxval is the first argument's max).
    assert metrics.ssim(x, y, maxval=4.0) == pytest.approx(metrics.ssim(y, x, maxval=4.0),
                                                          abs=1e-15)
    assert -1.0 <= metrics.ssim(x, y) < 0.2  # independent noise
    # Constant images a, b: no variance, so SSIM is the luminance term
    # (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 maxval)^2.
    c1 = (0.01 * 4.0) ** 2
    assert metrics.ssim(np.full((9, 9), 2.0), np.full((9, 9), 1.0), maxval=4.0) == \
        pytest.approx((4 + c1) / (5 + c1), rel=1e-12)
    # [H, W], [N, H, W] and [N, H, W, 1] are the same images.
    assert metrics.ssim(x[0, ..., 0], y[0, ..., 0]) == metrics.ssim(x[:1], y[:1]) == \
        metrics.ssim(x[:1, ..., 0], y[:1, ..., 0])
    # The corner pixel is in no window's centre region but in one window: it counts.
    z = x.copy()
    z[0, 0, 0, 0] += 5
    assert metrics.ssim(x[:1], z[:1]) < 1.0
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(np.ones((6, 9)), np.ones((6, 9)))
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim(x, y[:, :8])


def test_against_scikit_image_reference():
    """Reference values from scikit-image (tools/make_reconstruction_fixtures.py)."""
    data = json.loads(FIXTURE.read_text())
    assert len(data["cases"]) >= 5
    for case in data["cases"]:
        gt, pred = np.array(case["gt"]), np.array(case["pred"])
        assert abs(metrics.ssim(gt, pred, case["maxval"]) - case["ssim"]) <= 1e-6
        assert abs(metrics.psnr(gt, pred, case["maxval"]) - case["psnr"]) <= 1e-4


# ---------------------------------------------------------------------------------------
# Equivariance protocols


def test_equivariance_shifts_are_seeded_per_image():
    a = metrics.equivariance_shifts(50, max_shift=16, seed=0)
    assert a.shape == (50, 2) and a.min() >= -16 and a.max() <= 16
    np.testing.assert_array_equal(metrics.equivariance_shifts(20, seed=0, start=30), a[30:])
    assert not np.array_equal(a, metrics.equivariance_shifts(50, seed=1))


def test_equivariance_is_exactly_zero_in_float64_for_a_circular_net():
    """Exact: in float64 (inputs are float32 values, so shifting loses nothing), the
    circular net computes each output pixel with the same operations whatever the shift,
    so f(shift x) == shift f(x) bit for bit, and the NMSE numerator is a sum of exact
    zeros; compared with ==."""
    net = _circular_net("float64")
    x = _images(6, 16, 16)
    targets = x * 0.5
    fn = lambda b: net(b.astype("float64"))  # noqa: E731
    assert metrics.equivariance_nmse(fn, x, max_shift=8, batch_size=4) == 0.0
    # The PSNRs sum the same squared errors in another (rolled) order: equal up to
    # float64 rounding, not necessarily bit for bit.
    assert metrics.psnr_shift_change(fn, x, targets, max_shift=8, batch_size=4) <= 1e-12
    curve = metrics.equivariance_nmse_vs_shift(fn, x, shifts=[0, 3, 8], batch_size=4)
    assert curve == {0: 0.0, 3: 0.0, 8: 0.0}


def test_equivariance_float32_rounding_level_and_strided_net_is_not_equivariant():
    x = _images(6, 16, 16)
    targets = x * 0.5
    circular, strided = _circular_net("float32"), _strided_net()
    # float32: at most float rounding (oneDNN may sum in another order at other pixels).
    assert metrics.equivariance_nmse(circular, x, max_shift=8) <= 1e-12
    assert metrics.psnr_shift_change(circular, x, targets, max_shift=8) <= 1e-4
    bad = metrics.equivariance_nmse(strided, x, max_shift=8, per_image=True)
    assert bad.shape == (6,) and np.mean(bad) > 1e-3
    # An image whose shift is even in both axes is reproduced exactly by stride 2 and
    # upsampling 2 except at the zero-padded border; odd shifts change the result.
    assert metrics.psnr_shift_change(strided, x, targets, max_shift=8) > 0.01
    curve = metrics.equivariance_nmse_vs_shift(strided, x, max_shift=3)
    assert list(curve) == [0, 1, 2, 3] and curve[0] == 0.0 and curve[1] > 1e-3


def test_shifts_do_not_depend_on_batching_and_match_the_definition():
    strided = _strided_net()
    x = _images(5, 16, 16)
    y = x * 0.5
    a = metrics.reconstruction_metrics(strided, x, y, max_shift=5, seed=3, batch_size=2)
    b = metrics.reconstruction_metrics(strided, x, y, max_shift=5, seed=3, batch_size=5)
    assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    # By hand: one shift per image from equivariance_shifts, np.roll on H and W.
    f = lambda b: np.asarray(strided.predict_on_batch(b))  # noqa: E731
    shifts = metrics.equivariance_shifts(5, max_shift=5, seed=3)
    out = f(x)
    values, changes = [], []
    for i, (dy, dx) in enumerate(shifts):
        rolled = np.roll(x[i:i + 1], (dy, dx), axis=(1, 2))
        shifted_out = f(rolled)
        values.append(metrics.nmse(np.roll(out[i:i + 1], (dy, dx), axis=(1, 2)), shifted_out))
        changes.append(abs(metrics.psnr(y[i:i + 1], out[i:i + 1]) - metrics.psnr(
            np.roll(y[i:i + 1], (dy, dx), axis=(1, 2)), shifted_out)))
    assert a["equivariance_nmse"] == pytest.approx(np.mean(values), rel=1e-5)
    assert a["psnr_shift_change"] == pytest.approx(np.mean(changes), rel=1e-5)
    assert a["psnr"] == pytest.approx(metrics.psnr(y, out), rel=1e-6)
    assert a["ssim"] == pytest.approx(metrics.ssim(y, out), rel=1e-6)


def test_a_classifier_is_refused():
    clf = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="same size"):
        metrics.equivariance_nmse(clf, _images(2))
