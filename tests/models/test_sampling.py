import dataclasses

import pytest

from lps_keras.models import SamplingSpec, deeplabv3plus, resnet20
from lps_keras.models.blocks import Builder, ConvFactory


def _signature(model):
    return [(w.path, tuple(w.shape)) for w in model.weights]


def test_spec_is_frozen_and_round_trips_through_a_dict():
    spec = SamplingSpec(downsampling="lps", antialias="lowpass3", logits_channels=[8, 16, 32],
                        lps_kwargs={"tau": 2.0})
    assert spec.logits_channels == (8, 16, 32) and spec.polyphase
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.downsampling = "aps"
    config = spec.to_dict()
    assert config["logits_channels"] == [8, 16, 32] and config["lps_kwargs"] == {"tau": 2.0}
    assert SamplingSpec.from_dict(config) == spec
    assert hash(spec) == hash(SamplingSpec.from_dict(config))
    with pytest.raises(ValueError, match="not sampling settings"):
        SamplingSpec.from_dict({**config, "depth": 18})


@pytest.mark.parametrize("kwargs, match", [
    ({"downsampling": "avgpool"}, "downsampling"),
    ({"padding_mode": "reflect"}, "padding_mode"),
    ({"antialias": "lowpass3"}, "antialias"),
    ({"downsampling": "lps", "logits_channels": "wide"}, "scorer width"),
    ({"downsampling": "lps", "logits_channels": (8, 0)}, "scorer width"),
])
def test_spec_validates_once(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingSpec(**kwargs)


def test_sampling_keyword_builds_the_same_model_as_the_settings():
    kwargs = dict(num_classes=10, input_shape=(16, 16, 3), stem="cifar")
    spec = SamplingSpec(downsampling="lps", antialias="lowpass3", logits_channels=8)
    from_spec = resnet20(sampling=spec, **kwargs)
    from_dict = resnet20(sampling=spec.to_dict(), **kwargs)
    from_keywords = resnet20(downsampling="lps", antialias="lowpass3", logits_channels=8,
                             **kwargs)
    assert from_spec.name == from_keywords.name == "resnet20_lps"
    assert _signature(from_spec) == _signature(from_keywords) == _signature(from_dict)
    with pytest.raises(ValueError, match="either as `sampling` or as keywords"):
        resnet20(sampling=spec, downsampling="aps", **kwargs)
    # Keywords equal to the defaults (after normalising) are not a conflict.
    assert _signature(resnet20(sampling=spec, lps_kwargs={}, logits_channels="auto",
                               **kwargs)) == _signature(from_spec)


def test_deeplab_takes_a_spec():
    small = dict(num_classes=3, input_shape=(32, 32, 3), aspp_filters=8, decoder_filters=8,
                 low_level_filters=8)
    spec = SamplingSpec(downsampling="aps", padding_mode="zeros")
    a = deeplabv3plus("resnet18", sampling=spec, **small)
    b = deeplabv3plus("resnet18", downsampling="aps", padding_mode="zeros", **small)
    assert _signature(a) == _signature(b)


def test_builder_keeps_its_old_spelling():
    b = Builder("lps", antialias="lowpass3", lps_kwargs={"tau": 0.5})
    assert isinstance(b, ConvFactory)
    assert (b.downsampling, b.antialias, b.padding_mode, b.lps_kwargs, b.polyphase) == (
        "lps", "lowpass3", "circular", {"tau": 0.5}, True)
    assert Builder(b.spec).spec == b.spec
