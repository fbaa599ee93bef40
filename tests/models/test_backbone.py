import keras
import numpy as np
import pytest

from lps_keras.models import ResNetBackbone, SamplingSpec, deeplabv3plus
from tests.helpers import calibrate_batchnorm, to_numpy

SMALL = {"num_classes": 5, "aspp_filters": 16, "decoder_filters": 16, "low_level_filters": 8}
LPS = SamplingSpec(downsampling="lps", logits_channels=8)


def _signature(model):
    return [(w.path, tuple(w.shape)) for w in model.weights]


def test_backbone_round_trips(tmp_path):
    spec = SamplingSpec(downsampling="lps", antialias="lowpass3", logits_channels=8,
                        lps_kwargs={"tau": 0.5})
    backbone = ResNetBackbone(20, input_shape=(16, 16, 3), stem="cifar", sampling=spec)
    assert sorted(backbone.pyramid_outputs) == [1, 2, 4] and sorted(backbone.probs) == [2, 4]
    assert backbone.pyramid_outputs[4] is backbone.output
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    calibrate_batchnorm(backbone, x)
    expected = to_numpy(backbone(x, training=False))
    backbone.save(tmp_path / "backbone.keras")
    reloaded = keras.saving.load_model(tmp_path / "backbone.keras")
    assert type(reloaded) is ResNetBackbone
    assert reloaded.get_config() == backbone.get_config()
    assert reloaded.sampling == spec and sorted(reloaded.probs) == [2, 4]
    np.testing.assert_array_equal(to_numpy(reloaded(x, training=False)), expected)


@pytest.mark.parametrize("output_stride", [16, 32])
def test_deeplab_from_a_backbone_object_matches_the_name(output_stride):
    backbone = ResNetBackbone(18, input_shape=(64, 64, 3), output_stride=output_stride,
                              sampling=LPS)
    from_object = deeplabv3plus(backbone, output_stride=output_stride, **SMALL)
    from_name = deeplabv3plus("resnet18", input_shape=(64, 64, 3), output_stride=output_stride,
                              sampling=LPS, **SMALL)
    assert from_object.count_params() == from_name.count_params()
    assert _signature(from_object) == _signature(from_name)
    assert from_object.name == from_name.name == "deeplabv3plus_resnet18_lps"


@pytest.mark.parametrize("backbone_kwargs, kwargs, match", [
    ({"output_stride": 16}, {"output_stride": 8}, "output_stride"),
    ({"stem": "cifar", "output_stride": None}, {}, "stem"),
    ({}, {"sampling": LPS}, "carries"),
    ({}, {"downsampling": "aps"}, "not both"),
])
def test_deeplab_refuses_a_mismatched_backbone(backbone_kwargs, kwargs, match):
    backbone = ResNetBackbone(18, input_shape=(32, 32, 3), sampling=LPS,
                              **{"output_stride": 16, **backbone_kwargs})
    with pytest.raises(ValueError, match=match):
        deeplabv3plus(backbone, **{**SMALL, **kwargs})
