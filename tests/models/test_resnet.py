import keras
import numpy as np
import pytest

from lps_keras.models import resnet, resnet18, resnet20, resnet34, resnet50, resnet101
from tests.helpers import (
    calibrate_batchnorm,
    inference,
    natural_images,
    serve_in_fresh_process,
    to_numpy,
)

MODES = {
    "aps": {"downsampling": "aps"},
    "lps": {"downsampling": "lps"},
    "lps+lowpass3": {"downsampling": "lps", "antialias": "lowpass3"},
    "aps+ddac3": {"downsampling": "aps", "antialias": "ddac3"},
}
ARCHS = {
    "resnet18-cifar": (resnet18, "cifar", 32),
    "resnet20-cifar": (resnet20, "cifar", 32),
    "resnet18-imagenet": (resnet18, "imagenet", 64),
    "resnet50-imagenet": (resnet50, "imagenet", 64),
}


def _shifts(seed, count=8, limit=8):
    rng = np.random.default_rng(seed)
    shifts = set()
    while len(shifts) < count:  # distinct, non-zero shifts
        s = tuple(int(v) for v in rng.integers(-limit, limit + 1, size=2))
        if s != (0, 0):
            shifts.add(s)
    return sorted(shifts)


def _max_shift_error(model, x, seed):
    """Largest |logits(roll(x, s)) - logits(x)| over the shifts, in one batched call
    (outputs are per sample, so batching the shifted copies changes nothing)."""
    shifts = _shifts(seed)
    batch = np.concatenate([x] + [np.roll(x, s, (1, 2)) for s in shifts])
    out = inference(model)(batch).reshape((len(shifts) + 1,) + (len(x), -1))
    return np.abs(out[1:] - out[:1]).max(), out[0]


def _build(arch, dtype="float32", **kwargs):
    builder, stem, size = ARCHS[arch]
    model = builder(num_classes=10, input_shape=(size, size, 3), stem=stem, **kwargs)
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(dtype)
    return model, x


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_circular_shift_invariance(arch, mode, float64):
    kwargs = dict(MODES[mode])
    if arch == "resnet50-imagenet":
        kwargs["logits_channels"] = 16  # keeps the default suite fast; any width works
    model, x = _build(arch, float64, **kwargs)
    error, y = _max_shift_error(model, x, seed=len(arch) + len(mode))
    assert y.dtype == np.float64
    assert np.ptp(y) > 0.1  # logits are not degenerate
    assert error < 1e-4


BITWISE_CASES = [(arch, mode) for arch in sorted(ARCHS) + ["resnet50-cifar"]
                 for mode in ("aps", "lps")]
BITWISE_CASES += [("resnet20-cifar", "lps+lowpass3"), ("resnet20-cifar", "aps+ddac3")]


@pytest.mark.parametrize("arch,mode", BITWISE_CASES)
def test_float32_logits_are_bitwise_invariant(arch, mode):
    # Photo-like inputs, float32, BN calibrated so logits are O(1): every selection follows
    # the shift and the global pool accumulates in float64, so logits agree with `==`.
    if arch == "resnet50-cifar":
        size = 16  # divisible by 2**3, the CIFAR stem's three downsamplers
        model = resnet50(num_classes=10, input_shape=(size, size, 3), stem="cifar",
                         **MODES[mode])
    else:
        model, _ = _build(arch, **MODES[mode])
        size = ARCHS[arch][2]
    x = natural_images(8, size, 3, seed=len(arch) + len(mode))
    calibrate_batchnorm(model, x)
    shifts = _shifts(seed=len(mode), limit=size // 2)
    batch = np.concatenate([x] + [np.roll(x, s, (1, 2)) for s in shifts])
    out = inference(model)(batch).reshape((len(shifts) + 1, len(x), -1))
    assert out.dtype == np.float32 and np.ptp(out[0]) > 1e-3
    unequal = np.any(out[1:] != out[:1], axis=-1)
    assert not unequal.any(), f"{int(unequal.sum())} of {unequal.size} (image, shift) pairs"


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_strided_baseline_is_not_invariant(arch, float64):
    model, x = _build(arch, float64, downsampling="strided")
    error, _ = _max_shift_error(model, x, seed=3)
    assert error > 1e-2


@pytest.mark.parametrize("downsampling", ["aps", "lps"])
def test_zero_padding_breaks_the_guarantee(downsampling, float64):
    model, x = _build("resnet20-cifar", float64, downsampling=downsampling,
                      padding_mode="zeros")
    error, _ = _max_shift_error(model, x, seed=5)
    assert error > 1e-3


@pytest.mark.parametrize("mode", ["strided", "blurpool", "aps", "lps", "lps+lowpass3",
                                  "aps+ddac3"])
def test_one_fit_step_updates_every_trainable_weight(mode):
    kwargs = MODES.get(mode, {"downsampling": mode})
    model = resnet20(num_classes=10, input_shape=(16, 16, 3), stem="cifar", **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, size=(8,))
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before, strict=True)
                 if np.array_equal(to_numpy(w), b)]
    assert unchanged == []
    if mode.startswith("lps"):
        assert any("logits_model" in w.path for w in model.trainable_weights)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("builder, expected", [
    (resnet18, 11_689_512), (resnet34, 21_797_672), (resnet50, 25_557_032),
    (resnet101, 44_549_160),
])
def test_standard_parameter_counts(builder, expected):
    model = builder(num_classes=1000, input_shape=(224, 224, 3), stem="imagenet",
                    downsampling="strided")
    assert _trainable(model) == expected


@pytest.mark.parametrize("downsampling", ["blurpool", "aps"])
def test_fixed_downsamplers_add_no_parameters(downsampling):
    model = resnet18(num_classes=1000, input_shape=(224, 224, 3), downsampling=downsampling)
    assert _trainable(model) == 11_689_512


def test_lps_scorer_widths_per_stage():
    narrow = resnet18(num_classes=1000, input_shape=(None, None, 3), downsampling="lps",
                      logits_channels=(8, 16, 32, 64))
    scorers = {layer.name: layer.scorer.conv1.filters for layer in narrow._flatten_layers()
               if hasattr(layer, "scorer")}
    assert scorers == {"stem_down1": 8, "stem_down2": 8, "stage2_block1_down": 16,
                       "stage3_block1_down": 32, "stage4_block1_down": 64}


def _scorer_widths(model):
    return {layer.name: layer.scorer.conv1.filters for layer in model._flatten_layers()
            if hasattr(layer, "scorer")}


def test_default_scorer_width_is_a_quarter_of_the_input_channels():
    cifar = resnet18(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                     downsampling="lps")
    assert _scorer_widths(cifar) == {"stage2_block1_down": 32, "stage3_block1_down": 64,
                                     "stage4_block1_down": 128}
    small = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                     downsampling="lps")
    assert _scorer_widths(small) == {"stage2_block1_down": 8, "stage3_block1_down": 16}
    full = resnet18(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                    downsampling="lps", logits_channels=None)
    assert _scorer_widths(full) == {"stage2_block1_down": 128, "stage3_block1_down": 256,
                                    "stage4_block1_down": 512}


@pytest.mark.tf_only  # benchmarks.macs counts with TensorFlow's graph profiler
def test_default_lps_resnet18_costs_at_most_1_6x_the_strided_macs():
    from benchmarks.macs import count_macs

    def macs(**kwargs):
        model = resnet18(num_classes=10, input_shape=(32, 32, 3), stem="cifar", **kwargs)
        return count_macs(model, (32, 32, 3))[0]

    strided = macs(downsampling="strided")
    assert macs(downsampling="lps") / strided <= 1.6
    # The papers' full-width scorers would not fit the budget: the default matters.
    assert macs(downsampling="lps", logits_channels=None) / strided > 2.0


def test_include_top_false_returns_features():
    model = resnet20(input_shape=(32, 32, 3), stem="cifar", include_top=False,
                     downsampling="aps")
    assert tuple(model.output.shape) == (None, 8, 8, 64)


@pytest.mark.parametrize("kwargs, match", [
    ({"depth": 19}, "depth"),
    ({"depth": 18, "stem": "tiny"}, "stem"),
    ({"depth": 18, "downsampling": "maxpool"}, "downsampling"),
    ({"depth": 18, "padding_mode": "reflect"}, "padding_mode"),
    ({"depth": 18, "antialias": "lowpass3"}, "antialias"),
    ({"depth": 18, "downsampling": "lps", "logits_channels": (8, 16)}, "logits_channels"),
    ({"depth": 18, "downsampling": "lps", "logits_channels": "wide"}, "scorer width"),
    ({"depth": 18, "downsampling": "lps", "logits_channels": 0}, "scorer width"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resnet(num_classes=10, input_shape=(32, 32, 3), **kwargs)


def _calibrated_lps_resnet20():
    """(model, images, its logits) of a calibrated LPS ResNet-20 with lowpass3."""
    model = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                     downsampling="lps", antialias="lowpass3")
    x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype("float32")
    calibrate_batchnorm(model, x)
    return model, x, to_numpy(model(x, training=False))


def test_lps_classifier_round_trips(tmp_path):
    model, x, expected = _calibrated_lps_resnet20()
    path = tmp_path / "classifier.keras"
    model.save(path)
    np.testing.assert_array_equal(to_numpy(keras.saving.load_model(path)(x, training=False)),
                                  expected)


@pytest.mark.tf_only  # SavedModel export
def test_lps_classifier_exports(tmp_path):
    model, x, expected = _calibrated_lps_resnet20()
    model.export(str(tmp_path / "classifier"), verbose=False)
    (served,) = serve_in_fresh_process(tmp_path / "classifier", x, tmp_path)
    np.testing.assert_allclose(served, expected, atol=1e-5)


# ---------------------------------------------------------------- the papers' code's switches

def _spec(**settings):
    from lps_keras.models import SamplingSpec

    return SamplingSpec(**settings)


@pytest.mark.parametrize("arch", ["resnet18-imagenet", "resnet50-imagenet", "resnet18-cifar"])
@pytest.mark.parametrize("settings", [
    {"downsampling": "lps", "antialias": "lowpass3", "score_unfiltered": False,
     "stem_antialias": False, "init": "torch"},  # the papers' code's defaults
    {"downsampling": "aps", "swap_conv_pool": True},
    {"downsampling": "lps", "swap_conv_pool": True, "antialias": "ddac3"},
])
def test_official_switches_keep_exact_invariance(arch, settings, float64):
    builder, stem, size = ARCHS[arch]
    model = builder(num_classes=10, input_shape=(size, size, 3), stem=stem,
                    sampling=_spec(logits_channels=16, **settings))
    x = np.random.default_rng(1).normal(size=(2, size, size, 3)).astype(float64)
    error, y = _max_shift_error(model, x, seed=7)
    assert np.ptp(y) > 0.1 and error < 1e-4


@pytest.mark.parametrize("ablation", ["conv1_stride", "maxpool_zpad"])
def test_stem_ablations_break_the_guarantee(ablation, float64):
    model = resnet18(num_classes=10, input_shape=(64, 64, 3), stem="imagenet",
                     sampling=_spec(downsampling="aps", **{ablation: True}))
    x = np.random.default_rng(2).normal(size=(2, 64, 64, 3)).astype(float64)
    error, _ = _max_shift_error(model, x, seed=9)
    assert error > 1e-3


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_switches_change_the_graph_as_the_papers_code_does():
    def build(**settings):
        return resnet18(num_classes=10, input_shape=(64, 64, 3), stem="imagenet",
                        sampling=_spec(downsampling="lps", antialias="lowpass3",
                                       logits_channels=8, **settings))

    base = build()
    # No blur before the stem's first downsampler; the others keep theirs.
    assert base.get_layer("stem_down1").antialias is not None
    assert build(stem_antialias=False).get_layer("stem_down1").antialias is None
    assert build(stem_antialias=False).get_layer("stem_down2").antialias is not None
    # conv1 keeps its stride: no first downsampler.
    strided = build(conv1_stride=True)
    assert "stem_down1" not in [layer.name for layer in strided.layers]
    assert strided.get_layer("stem_conv").strides == (2, 2)
    assert type(build(maxpool_zpad=True).get_layer("stem_pool_pad")).__name__ == \
        "ZeroPadding2D"
    # swap_conv_pool: the downsampler takes the conv's output instead of feeding it.
    names = [layer.name for layer in base.layers]
    assert names.index("stage2_block1_down") < names.index("stage2_block1_2_conv")
    swapped = [layer.name for layer in build(swap_conv_pool=True).layers]
    assert swapped.index("stage2_block1_down") > swapped.index("stage2_block1_2_conv")


def test_torch_init_follows_pytorch_statistics():
    model = resnet18(num_classes=1000, input_shape=(32, 32, 3), stem="cifar",
                     sampling=_spec(downsampling="aps", init="torch"))
    kernel = to_numpy(model.get_layer("stage4_block1_2_conv").kernel)  # 3x3, 512 -> 512
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / (9 * 512)), rtol=0.01)
    assert abs(kernel.mean()) < 1e-3 * kernel.std() * 100
    dense = model.get_layer("logits")
    bound = 512 ** -0.5
    for weights in (to_numpy(dense.kernel), to_numpy(dense.bias)):
        assert weights.max() <= bound and weights.min() >= -bound
        assert weights.max() > 0.98 * bound and weights.min() < -0.98 * bound
    keras_default = resnet18(num_classes=1000, input_shape=(32, 32, 3), stem="cifar",
                             downsampling="aps")
    assert not to_numpy(keras_default.get_layer("logits").bias).any()  # zeros


def test_bad_switch_values_name_the_setting():
    with pytest.raises(ValueError, match="`init` must be one of"):
        _spec(init="pytorch")
    with pytest.raises(ValueError, match="`swap_conv_pool` must be True or False"):
        _spec(swap_conv_pool="yes")


@pytest.mark.parametrize("norm", ["l2_min", "l1_min", "non_abs_max"])
def test_aps_criteria_of_the_aps_code_reach_every_downsampler_and_stay_exact(norm, float64):
    model = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                     sampling=_spec(downsampling="aps", aps_norm=norm))
    aps = [layer for layer in model.layers if type(layer).__name__ == "APSDownsampling2D"]
    assert aps and all(layer.norm == norm for layer in aps)
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype(float64)
    error, y = _max_shift_error(model, x, seed=11)
    assert np.ptp(y) > 0.1 and error < 1e-4


def test_official_mixed_paddings_of_zero_padded_networks():
    # The papers' zero-padded LPS networks keep circular scorers, filters and max-pool pad.
    model = resnet18(num_classes=10, input_shape=(64, 64, 3), stem="imagenet",
                     sampling=_spec(downsampling="lps", antialias="lowpass3",
                                    padding_mode="zeros", logits_channels=8,
                                    maxpool_padding="circular",
                                    antialias_kwargs={"padding_mode": "circular"},
                                    lps_kwargs={"padding_mode": "circular"}))
    assert type(model.get_layer("stem_pool_pad")).__name__ == "CircularPad2D"
    assert type(model.get_layer("stem_conv_pad")).__name__ == "ZeroPadding2D"
    down = model.get_layer("stage2_block1_down")
    assert down.padding_mode == "circular"
    assert down.antialias_layer.padding_mode == "circular"
    with pytest.raises(ValueError, match="maxpool_zpad"):
        _spec(maxpool_zpad=True, maxpool_padding="circular")
