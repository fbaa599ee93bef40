"""Segmentation twin of the default run: a small LPS + LPU DeepLabV3+ on synthetic shapes.

Works with no data and no network (64x64 images with per-pixel shape labels).
"""

from configs.base import deeplab_model_config, get_base_config, tau_recipe


def get_config():
    config = get_base_config()
    config.data.name = "synthetic_shapes_seg"
    config.data.augment = "flip+shift"
    config.model = deeplab_model_config(
        logits_channels=(8, 16, 32, 64), aspp_filters=64, decoder_filters=64,
        low_level_filters=24)
    config.train.epochs = 6
    config.train.batch_size = 16
    config.train.learning_rate = 0.02
    config.train.weight_decay = 1e-4
    config.train.lr_schedule = {"name": "poly", "power": 0.9}
    config.train.tau_schedule = tau_recipe("cifar", step_size=2)
    config.eval.batch_size = 8
    config.eval.num_examples = 100
    config.eval.seg_max_shift = 16
    return config
