"""Evaluation protocols: exact values on hand-built cases, seeding, per-image shifts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lps_keras import metrics
from tests.helpers import to_numpy

H = W = 8


def _random_images(n, h=H, w=W, c=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w, c)).astype("float32")


def _dot_images(n, h=H, w=W, seed=0):
    """One bright pixel per image at a random position; returns images and positions."""
    rng = np.random.default_rng(seed)
    positions = np.stack([rng.integers(0, h, n), rng.integers(0, w, n)], axis=-1)
    images = np.zeros((n, h, w, 1), "float32")
    images[np.arange(n), positions[:, 0], positions[:, 1], 0] = 1.0
    return images, positions


def _row_parity(x):
    """Fake classifier: class = (row of the brightest pixel) mod 2, as one-hot logits."""
    flat = x[..., 0].reshape(len(x), -1).argmax(axis=1)
    return np.eye(2, dtype="float32")[(flat // x.shape[2]) % 2]


def _invariant_model(num_classes=5):
    # Dropout checks that models are called in inference mode.
    return keras.Sequential([
        keras.Input((H, W, 3)),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes),
    ])


def _position_model(num_classes=10):
    return keras.Sequential([
        keras.Input((H, W, 3)),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes),
    ])


# --- shifting -----------------------------------------------------------------------------


def test_circular_shift_is_per_image_roll(rng):
    x = rng.normal(size=(5, 6, 7, 2))
    shifts = rng.integers(-9, 10, size=(5, 2))
    got = metrics.shift_images(x, shifts, "circular")
    for i in range(5):
        np.testing.assert_array_equal(got[i], np.roll(x[i], tuple(shifts[i]), axis=(0, 1)))


def test_standard_shift_is_zero_filled_translation(rng):
    m = 3
    x = rng.normal(size=(6, 6, 7, 2)).astype("float32")
    shifts = rng.integers(-m, m + 1, size=(6, 2))
    got = metrics.shift_images(x, shifts, "standard")
    padded = np.pad(x, ((0, 0), (m, m), (m, m), (0, 0)))
    for i, (dy, dx) in enumerate(shifts):
        # Zero-pad by m, crop the original size at the shifted offset.
        expected = padded[i, m - dy:m - dy + 6, m - dx:m - dx + 7]
        np.testing.assert_array_equal(got[i], expected)
        # Same thing written as a translation: out[y, x] = in[y - dy, x - dx] or 0.
        for yy in range(6):
            for xx in range(7):
                inside = 0 <= yy - dy < 6 and 0 <= xx - dx < 7
                want = x[i, yy - dy, xx - dx] if inside else np.zeros(2)
                np.testing.assert_array_equal(got[i, yy, xx], want)


def test_shift_images_handles_masks_and_fill_value():
    masks = np.arange(9).reshape(1, 3, 3)
    got = metrics.shift_images(masks, [[0, -1]], "standard", fill_value=255)
    np.testing.assert_array_equal(got[0], [[1, 2, 255], [4, 5, 255], [7, 8, 255]])


# --- seeding ------------------------------------------------------------------------------


def test_shifts_are_seeded_per_image_and_in_range():
    a = metrics.consistency_shifts(300, seed=3)
    np.testing.assert_array_equal(a, metrics.consistency_shifts(300, seed=3))
    assert not np.array_equal(a, metrics.consistency_shifts(300, seed=4))
    assert a.min() == -3 and a.max() == 3
    # Shifts differ across images of one batch (never one shift per batch).
    assert len({tuple(s) for s in a[:64, 0]}) > 20
    assert not np.array_equal(a[:, 0], a[:, 1])
    # Image i's shifts depend on its index only, not on how the data is split.
    np.testing.assert_array_equal(metrics.consistency_shifts(200, seed=3, start=100), a[100:])
    big = metrics.consistency_shifts(2100, seed=3)
    np.testing.assert_array_equal(metrics.consistency_shifts(100, seed=3, start=2000),
                                  big[2000:])


def test_imagenet_shift_ranges():
    rolls = metrics.consistency_shifts(2000, mode="circular", protocol="imagenet")
    assert rolls.min() == -32 and rolls.max() == 31
    offsets = metrics.consistency_shifts(2000, mode="standard", protocol="imagenet")
    assert offsets.min() == 0 and offsets.max() == 31
    seg = metrics.segmentation_shifts(2000, num_shifts=5)
    assert seg.shape == (2000, 5, 2) and seg.min() == -32 and seg.max() == 32


# --- classification consistency -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["circular", "standard"])
def test_consistency_exact_on_hand_built_case(mode):
    n = 200
    images, pos = _dot_images(n)
    shifts = metrics.consistency_shifts(n, mode=mode, seed=5)

    def predicted_class(shift):
        row = pos[:, 0] + shift[:, 0]
        col = pos[:, 1] + shift[:, 1]
        if mode == "circular":
            return (row % H) % 2
        # Dot translated out of the frame: all-zero image, argmax at row 0.
        inside = (row >= 0) & (row < H) & (col >= 0) & (col < W)
        return np.where(inside, row, 0) % 2

    expected = 100.0 * np.mean(predicted_class(shifts[:, 0]) == predicted_class(shifts[:, 1]))
    got = metrics.shift_consistency(_row_parity, images, mode=mode, seed=5, batch_size=7)
    assert got == pytest.approx(expected)
    assert 20.0 < got < 80.0
    if mode == "circular":
        # Parity classes agree exactly when the two row shifts have the same parity.
        same_parity = (shifts[:, 0, 0] - shifts[:, 1, 0]) % 2 == 0
        assert got == pytest.approx(100.0 * np.mean(same_parity))


@pytest.mark.parametrize("mode", ["circular", "standard"])
def test_consistency_exact_imagenet_protocol(mode):
    n, size, m = 120, 12, 4
    images, pos = _dot_images(n, size, size, seed=1)
    shifts = metrics.consistency_shifts(n, mode=mode, protocol="imagenet", max_shift=m,
                                        seed=2)
    seen_shapes = set()

    def fn(x):
        seen_shapes.add(x.shape[1:3])
        return _row_parity(x)

    def predicted_class(shift):
        if mode == "circular":
            return ((pos[:, 0] + shift[:, 0]) % size) % 2
        row, col = pos[:, 0] - shift[:, 0], pos[:, 1] - shift[:, 1]
        inside = (row >= 0) & (row < size - m) & (col >= 0) & (col < size - m)
        return np.where(inside, row, 0) % 2

    expected = 100.0 * np.mean(predicted_class(shifts[:, 0]) == predicted_class(shifts[:, 1]))
    got = metrics.shift_consistency(fn, images, mode=mode, protocol="imagenet", max_shift=m,
                                    seed=2)
    assert got == pytest.approx(expected)
    # Standard: (H - max_shift)-sized crops (224 for 256 / 32); circular: the full image.
    assert seen_shapes == {(size - m, size - m) if mode == "standard" else (size, size)}


def test_invariant_keras_model_is_fully_consistent():
    images = _random_images(48)
    model = _invariant_model()
    assert metrics.shift_consistency(model, images, mode="circular", seed=0) == 100.0


def test_position_sensitive_model_is_not_consistent():
    images = _random_images(64)
    model = _position_model()
    for mode in ("circular", "standard"):
        assert metrics.shift_consistency(model, images, mode=mode, seed=0) < 80.0


def test_seed_and_batching_do_not_change_the_protocol():
    images = _random_images(40)
    model = _position_model()
    a = metrics.shift_consistency(model, images, seed=1, batch_size=64)
    assert a == metrics.shift_consistency(model, images, seed=1, batch_size=7)
    # A batched dataset gives the same result as the array.
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
    assert a == metrics.shift_consistency(model, dataset, seed=1)
    # Different seeds draw different shifts (and here, a different score).
    scores = {metrics.shift_consistency(model, images, seed=s) for s in range(4)}
    assert len(scores) > 1


def test_callables_get_training_false_and_multi_output_is_rejected():
    calls = []

    def fn(x, training=True):
        calls.append(training)
        return x.mean(axis=(1, 2))

    metrics.shift_consistency(fn, _random_images(4))
    assert calls and not any(calls)

    with pytest.raises(ValueError, match="single logits"):
        metrics.shift_consistency(lambda x: (x.mean(axis=(1, 2)),) * 2, _random_images(2))


def test_consistency_vs_shift_diagonal_is_exact():
    images, _ = _dot_images(30)
    got = metrics.consistency_vs_shift(_row_parity, images, max_shift=3, direction="diagonal")
    # An odd row shift flips the parity class of every image, an even one never does.
    assert got == {0: 100.0, 1: 0.0, 2: 100.0, 3: 0.0}


def test_consistency_vs_shift_random_direction_has_size_s():
    images, pos = _dot_images(40, seed=3)
    offsets = {}

    def recorder(x):
        flat = x[..., 0].reshape(len(x), -1).argmax(axis=1)
        found = np.stack([flat // W, flat % W], axis=-1)
        delta = (found - pos[:len(x)] + W // 2) % W - W // 2  # circular displacement
        offsets.setdefault(len(offsets), delta)
        return np.eye(W * H, dtype="float32")[flat]  # class = position of the dot

    got = metrics.consistency_vs_shift(recorder, images, shifts=[0, 1, 2], seed=0)
    assert got == {0: 100.0, 1: 0.0, 2: 0.0}
    # Calls: unshifted, then sizes 0, 1, 2.
    for size, call in zip([0, 1, 2], [1, 2, 3], strict=True):
        delta = offsets[call]
        np.testing.assert_array_equal(np.abs(delta).max(axis=1), size)
    assert len({tuple(d) for d in offsets[3]}) > 5  # random directions per image


def test_consistency_vs_shift_invariant_model():
    got = metrics.consistency_vs_shift(_invariant_model(), _random_images(16), max_shift=2)
    assert got == {0: 100.0, 1: 100.0, 2: 100.0}


def test_accuracy_is_exact():
    images, pos = _dot_images(50)
    labels = pos[:, 0] % 2
    labels[:10] = 1 - labels[:10]  # 10 wrong labels
    assert metrics.accuracy(_row_parity, images, labels, batch_size=8) == pytest.approx(80.0)
    one_hot = np.eye(2)[labels]
    assert metrics.accuracy(_row_parity, images, one_hot) == pytest.approx(80.0)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    assert metrics.accuracy(_row_parity, dataset) == pytest.approx(80.0)


def test_bad_arguments_raise_clear_errors():
    x = _random_images(2)
    fn = lambda v: v.mean(axis=(1, 2))  # noqa: E731
    with pytest.raises(ValueError, match="mode"):
        metrics.shift_consistency(fn, x, mode="reflect")
    with pytest.raises(ValueError, match="protocol"):
        metrics.shift_consistency(fn, x, protocol="mnist")
    with pytest.raises(ValueError, match="seed"):
        metrics.shift_consistency(fn, x, seed=-1)
    with pytest.raises(ValueError, match="labels"):
        metrics.accuracy(fn, x, np.zeros(3))
    with pytest.raises(ValueError, match="larger than max_shift"):
        metrics.shift_consistency(fn, x, protocol="imagenet")
    with pytest.raises(ValueError, match="rank-4|shape"):
        metrics.shift_consistency(fn, x[0])
    with pytest.raises(TypeError, match="callable"):
        metrics.shift_consistency("model", x)


# --- segmentation -------------------------------------------------------------------------


def _pixel_model(num_classes=4):
    return keras.Sequential([keras.Input((None, None, 3)),
                             keras.layers.Conv2D(num_classes, 1)])


def _biased_model(num_classes=4, h=H, w=W):
    conv = _pixel_model(num_classes)
    bias = np.random.default_rng(9).normal(size=(h, w, num_classes)).astype("float32") * 2

    def fn(x):
        return to_numpy(conv(x, training=False)) + bias

    return fn


def _reference_massc(predict, images, masks, shifts, mode, ignore_label=255):
    """Loops and slices, written independently of the vectorised implementation."""
    ratios = []
    n, h, w = images.shape[:3]
    base = predict(images).argmax(-1)
    for i in range(n):
        for dy, dx in shifts[i]:
            if mode == "circular":
                shifted = np.roll(images[i], (dy, dx), axis=(0, 1))
                pred = np.roll(predict(shifted[None]).argmax(-1)[0], (-dy, -dx), axis=(0, 1))
                same, keep = pred == base[i], masks[i] != ignore_label
            else:
                m = max(abs(dy), abs(dx))
                padded = np.pad(images[i], ((m, m), (m, m), (0, 0)))
                shifted = padded[m - dy:m - dy + h, m - dx:m - dx + w]
                pred = predict(shifted[None]).argmax(-1)[0]
                r0, r1 = max(0, dy), min(h, h + dy)
                c0, c1 = max(0, dx), min(w, w + dx)
                same = pred[r0:r1, c0:c1] == base[i, r0 - dy:r1 - dy, c0 - dx:c1 - dx]
                keep = masks[i, r0 - dy:r1 - dy, c0 - dx:c1 - dx] != ignore_label
            if keep.sum():
                ratios.append((same & keep).sum() / keep.sum())
    return 100.0 * np.mean(ratios)


@pytest.mark.parametrize("mode", ["circular", "standard"])
def test_massc_is_100_for_a_per_pixel_model(mode):
    images = _random_images(6)
    got = metrics.segmentation_shift_consistency(_pixel_model(), images, mode=mode,
                                                 max_shift=4, seed=0)
    assert got == pytest.approx(100.0)


@pytest.mark.parametrize("mode", ["circular", "standard"])
def test_massc_matches_reference_with_position_bias_and_ignore(mode):
    n = 6
    images = _random_images(n, seed=2)
    masks = np.random.default_rng(3).integers(0, 4, size=(n, H, W))
    masks[np.random.default_rng(4).random((n, H, W)) < 0.3] = 255
    masks[0] = 255  # a fully ignored image is skipped
    predict = _biased_model()
    got = metrics.segmentation_shift_consistency(predict, images, masks[..., None], mode=mode,
                                                 max_shift=5, seed=1, batch_size=4)
    shifts = metrics.segmentation_shifts(n, num_shifts=5, max_shift=5, seed=1)
    expected = _reference_massc(predict, images, masks, shifts, mode)
    assert got == pytest.approx(expected)
    assert got < 95.0
    # Ignore pixels matter: without masks the score differs.
    unmasked = metrics.segmentation_shift_consistency(predict, images, mode=mode,
                                                      max_shift=5, seed=1)
    assert unmasked != pytest.approx(got)


def test_massc_exact_for_row_parity_segmenter():
    n = 20
    images = _random_images(n, c=1)

    def parity(x):
        # Class = (pixel > 0) XOR (row is odd): an odd row shift flips every pixel.
        rows = (np.arange(x.shape[1]) % 2)[None, :, None]
        cls = (x[..., 0] > 0).astype(int) ^ rows
        return np.eye(2, dtype="float32")[cls]

    shifts = metrics.segmentation_shifts(n, num_shifts=5, max_shift=32, seed=0)
    expected = 100.0 * np.mean(shifts[..., 0] % 2 == 0)
    got = metrics.segmentation_shift_consistency(parity, images, mode="circular")
    assert got == pytest.approx(expected)


def test_massc_rejects_low_resolution_predictions():
    with pytest.raises(ValueError, match="input resolution"):
        metrics.segmentation_shift_consistency(lambda x: x[:, ::2, ::2], _random_images(2))


# --- mIoU ---------------------------------------------------------------------------------

LABELS = np.array([[0, 0, 1, 255], [2, 1, 1, 255], [2, 0, 255, 255]])
PREDS = np.array([[0, 1, 1, 2], [2, 2, 1, 0], [2, 0, 7, 3]])  # 7 sits on an ignore pixel
# Non-ignored (label, pred): (0,0) (0,1) (1,1) (2,2) (1,2) (1,1) (2,2) (0,0)
EXPECTED_CONFUSION = np.array([
    [2, 1, 0, 0],
    [0, 2, 1, 0],
    [0, 0, 2, 0],
    [0, 0, 0, 0],
])
# IoU: class 0 = 2/(3+2-2), class 1 = 2/(3+3-2), class 2 = 2/(2+3-2); class 3 absent.
EXPECTED_MIOU = 100.0 * (2 / 3 + 2 / 4 + 2 / 3) / 3


def test_confusion_matrix_and_mean_iou_by_hand():
    confusion = metrics.confusion_matrix(LABELS, PREDS, num_classes=4)
    np.testing.assert_array_equal(confusion, EXPECTED_CONFUSION)
    assert metrics.mean_iou(confusion) == pytest.approx(EXPECTED_MIOU)
    ious = metrics.per_class_iou(confusion)
    np.testing.assert_allclose(ious[:3], [200 / 3, 50.0, 200 / 3])
    assert np.isnan(ious[3])
    # Scores with a trailing class axis give the same matrix.
    logits = np.eye(4)[np.clip(PREDS, 0, 3)]
    np.testing.assert_array_equal(metrics.confusion_matrix(LABELS, logits, num_classes=4),
                                  EXPECTED_CONFUSION)


def test_class_only_predicted_counts_in_mean_iou():
    # Class 1 never labelled but predicted once: IoU 0, part of the mean.
    assert metrics.mean_iou(np.array([[1, 1], [0, 0]])) == pytest.approx(25.0)
    assert np.isnan(metrics.mean_iou(np.zeros((3, 3))))


def test_confusion_matrix_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix(np.array([0, 5]), np.array([0, 1]), num_classes=4)


def test_streaming_mean_iou_matches_numpy(tmp_path):
    metric = metrics.SegmentationMeanIoU(num_classes=4)
    metric.update_state(LABELS[:2], PREDS[:2])  # class ids
    logits = np.eye(4, dtype="float32")[np.clip(PREDS[2:], 0, 3)]
    metric.update_state(LABELS[2:, ..., None], logits)  # [B, H, W, 1] labels and logits
    np.testing.assert_allclose(to_numpy(metric.total_confusion), EXPECTED_CONFUSION)
    assert float(metric.result()) == pytest.approx(EXPECTED_MIOU / 100.0, rel=1e-6)

    # Serializable through the registered name.
    config = keras.saving.serialize_keras_object(metric)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, metrics.SegmentationMeanIoU)
    assert clone.get_config() == metric.get_config()

    metric.reset_state()
    assert float(np.sum(to_numpy(metric.total_confusion))) == 0.0


def test_streaming_mean_iou_in_evaluate():
    model = _pixel_model(3)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=255),
                  metrics=[metrics.SegmentationMeanIoU(3)])
    x = _random_images(4)
    y = np.random.default_rng(0).integers(0, 3, size=(4, H, W))
    y[:, :2] = 255
    result = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    preds = to_numpy(model(x)).argmax(-1)
    expected = metrics.mean_iou(metrics.confusion_matrix(y, preds, 3))
    assert result["mean_iou"] == pytest.approx(expected / 100.0, rel=1e-5)


def test_streaming_mean_iou_sample_weight_per_image():
    metric = metrics.SegmentationMeanIoU(num_classes=3)
    y = np.array([[[0, 1], [2, 255]], [[0, 0], [1, 1]]])
    p = np.array([[[0, 1], [1, 0]], [[1, 1], [1, 1]]])
    metric.update_state(y, p, sample_weight=np.array([1.0, 0.0]))  # second image weight 0
    np.testing.assert_allclose(to_numpy(metric.total_confusion),
                               metrics.confusion_matrix(y[:1], p[:1], 3))
