"""Every config in configs/ loads, names a known dataset, and builds its pieces."""

import importlib.util
from pathlib import Path

import pytest

from lps_keras.data import DATASET_NAMES, dataset_info
from lps_keras.training import builders

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(p.name for p in CONFIG_DIR.glob("*.py")
                 if not p.name.startswith("_") and p.name != "base.py")


def load(name):
    spec = importlib.util.spec_from_file_location(name[:-3], CONFIG_DIR / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def fast_variant(model_config):
    """`config.model` as a dict with deep backbones swapped for ResNet-18: the deep variants
    take the same arguments, and ResNet-18 keeps the suite fast."""
    model = model_config.to_dict()
    if model.get("depth", 0) > 34:
        model["depth"] = 18
    if model.get("backbone") in ("resnet50", "resnet101"):
        model["backbone"] = "resnet18"
    if model.get("kind") == "unet":  # same depth, narrower
        model["channels"] = [c // 8 for c in model["channels"]]
    return model


def test_one_config_per_paper_experiment():
    expected = {f"cifar10_resnet18_{v}.py" for v in
                ("strided", "blurpool", "aps", "lps", "lps_lowpass3")}
    expected |= {f"imagenet_resnet{d}_{v}.py" for d in (18, 50, 101)
                 for v in ("lps", "lps_lowpass3", "lps_ddac3", "aps")}
    expected |= {"voc_deeplabv3plus_resnet18_lps.py", "voc_deeplabv3plus_resnet101_lps.py",
                 "default.py", "synthetic_shapes_seg_deeplab.py"}
    assert expected <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_resolves(name):
    config = load(name)
    assert config.data.name in DATASET_NAMES
    info = dataset_info(config.data.name)
    assert config.name == ""  # derived from data and model: tests/training/test_naming.py
    assert config.train.epochs > 0 and config.train.batch_size > 0
    builders.build_tau_schedule(config.train)
    channels = info.image_shape[-1] if info.task == "regression" else 3
    model = builders.build_model(fast_variant(config.model), (64, 64, channels),
                                 info.num_classes or 10)
    optimizer = builders.build_optimizer(config.train, steps_per_epoch=10, model=model)
    assert float(optimizer.learning_rate) > 0
    expected = config.model.get("downsampling")
    assert expected in model.name.split("_")


@pytest.mark.parametrize("name", CONFIGS)
def test_eval_split_exists_in_the_dataset(name):
    # The ImageNet configs once evaluated on split "test", which ImageNet does not have:
    # every run crashed after its last epoch, before saving the model.
    config = load(name)
    assert config.eval.split in dataset_info(config.data.name).splits


def test_recipes_match_the_papers():
    cifar = load("cifar10_resnet18_lps.py")
    assert (cifar.train.learning_rate, cifar.train.batch_size, cifar.train.epochs,
            cifar.train.weight_decay) == (0.1, 256, 250, 5e-4)
    assert list(cifar.train.lr_schedule.milestones) == [100]
    assert (cifar.train.tau_schedule.gamma, cifar.train.tau_schedule.min_tau) == (0.85, 0.5)
    imagenet = load("imagenet_resnet50_lps.py")
    assert (imagenet.train.epochs, imagenet.train.weight_decay) == (90, 1e-4)
    assert [tuple(k) for k in imagenet.train.tau_schedule.knots] == [
        (62, 0.5), (82, 0.05), (90, 0.01)]
    voc = load("voc_deeplabv3plus_resnet101_lps.py")
    assert voc.data.crop_size % 32 == 0 and voc.model.upsampling == "lpu"


def test_tau_schedules_name_their_recipe():
    """Configs select a tau schedule by `name` (a recipe), not by `kind`; values unchanged."""
    expected = {"cifar10_resnet18_lps.py": ("cifar", 10), "default.py": ("cifar", 1),
                "synthetic_shapes_seg_deeplab.py": ("cifar", 2),
                "voc_deeplabv3plus_resnet18_lps.py": ("cifar", 5),
                "imagenet_resnet18_lps.py": ("imagenet", None)}
    for name, (recipe, step_size) in expected.items():
        tau = load(name).train.tau_schedule
        assert tau.name == recipe and "kind" not in tau
        schedule = builders.build_tau_schedule(load(name).train)
        assert schedule.step_size == step_size
    assert load("default.py").model.logits_channels == 8
    assert load("cifar10_resnet18_lps.py").model.logits_channels is None
    assert load("voc_deeplabv3plus_resnet18_lps.py").model.logits_channels is None


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("value, expected", [("4", 4), ("auto", "auto")])
def test_logits_channels_can_be_overridden_on_the_command_line(name, value, expected):
    # A field holding None refused any other value (`--config.model.logits_channels=4`
    # failed on every paper config); parsed here exactly as train.py parses its flags.
    from absl import flags
    from ml_collections import config_flags

    argv = ["train.py", f"--config={CONFIG_DIR / name}",
            f"--config.model.logits_channels={value}"]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", str(CONFIG_DIR / name), flag_values=flag_values,
                                    lock_config=True, sys_argv=argv)
    flag_values(argv)
    assert flag_values.config.model.logits_channels == expected


PAPER_CONFIGS = [name for name in CONFIGS
                 if name.startswith(("cifar10_", "imagenet_", "voc_"))]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_train_like_the_papers_code(name):
    from lps_keras.training.optimizers import PyTorchSGD

    config = load(name)
    assert config.train.optimizer == "pytorch_sgd"  # coupled L2, torch momentum buffer
    model = config.model
    assert (model.score_unfiltered, model.stem_antialias, model.init, model.batch_norm) == (
        False, False, "torch", "torch")
    assert not (model.conv1_stride or model.maxpool_zpad or model.swap_conv_pool)
    assert (model.lps.scorer_head, model.lps.scorer_init) == ("official", "torch")
    if (model.antialias or "").startswith("ddac"):
        assert model.antialias_kwargs.to_dict() == {"softmax": "joint", "epsilon": 1e-5,
                                                    "momentum": 0.9}
    info = dataset_info(config.data.name)
    built = builders.build_model(fast_variant(config.model), (64, 64, 3),
                                 info.num_classes or 10)
    reached = set()
    assert any(type(layer).__name__ == "TorchBatchNormalization" for layer in built.layers)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in built.layers)
    for layer in built.layers:  # the settings reach the layers
        if type(layer).__name__ == "LPSDownsampling2D":
            assert layer.get_config()["scorer_head"] == "official"
            reached.add("scorer_head")
        antialias = getattr(layer, "antialias_layer", None)
        if type(antialias).__name__ == "DDAC2D":
            assert antialias.get_config()["softmax"] == "joint"
            assert antialias.get_config()["epsilon"] == 1e-5
            reached.add("ddac")
    assert ("scorer_head" in reached) == (config.model.downsampling == "lps")
    assert ("ddac" in reached) == (config.model.antialias or "").startswith("ddac")
    optimizer = builders.build_optimizer(config.train, steps_per_epoch=10, model=built)
    assert isinstance(optimizer, PyTorchSGD) and optimizer.l2 == config.train.weight_decay
    # The scorers stay out of the weight decay, as in the papers' code.
    scorer_weights = [w for w in built.trainable_weights if "/logits_model/" in w.path]
    if config.model.downsampling == "lps":
        assert scorer_weights
    assert not any(optimizer._use_weight_decay(w) for w in scorer_weights)
    assert optimizer._use_weight_decay(built.trainable_weights[0])  # the stem conv
