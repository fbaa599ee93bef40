"""CIFAR-10 ResNet-18 recipe of the LPS paper, shared by its variants.

See docs/design.md, section 6.
"""

from configs.base import get_base_config, tau_recipe, use_official_code_settings


def cifar10_resnet18(downsampling, antialias=None):
    config = get_base_config()
    config.data.name = "cifar10"
    config.data.augment = "flip+shift"  # random flip + circular shift in [-3, 3]
    config.data.max_shift = 3
    config.model.depth = 18
    config.model.stem = "cifar"
    config.model.downsampling = downsampling
    config.model.antialias = antialias
    use_official_code_settings(config.model)
    config.train.epochs = 250
    config.train.batch_size = 256
    config.train.optimizer = "pytorch_sgd"  # torch.optim.SGD: coupled L2 weight decay
    config.train.learning_rate = 0.1
    config.train.momentum = 0.9
    config.train.weight_decay = 5e-4
    config.train.lr_schedule = {"name": "multistep", "milestones": [100], "gamma": 0.1}
    config.train.tau_schedule = tau_recipe("cifar")
    config.eval.max_shift = 3
    return config
