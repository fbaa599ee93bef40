"""PASCAL VOC 2012 DeepLabV3+ recipe of the LPS paper (docs/design.md, section 6)."""

from configs.base import (
    deeplab_model_config,
    get_base_config,
    tau_recipe,
    use_official_code_settings,
)


def voc_deeplab(backbone):
    config = get_base_config()
    config.data.name = "voc"
    config.data.augment = "flip+scale"
    config.data.crop_size = 512  # divisible by 32: exact equivariance
    config.model = use_official_code_settings(deeplab_model_config(backbone=backbone))
    config.train.epochs = 50
    config.train.batch_size = 16
    config.train.optimizer = "pytorch_sgd"  # torch.optim.SGD: coupled L2 weight decay
    config.train.learning_rate = 0.01
    config.train.momentum = 0.9
    config.train.weight_decay = 1e-4
    config.train.lr_schedule = {"name": "poly", "power": 0.9}
    config.train.tau_schedule = tau_recipe("cifar", step_size=5)
    config.eval.split = "val"
    config.eval.batch_size = 4
    config.eval.seg_max_shift = 32
    return config
