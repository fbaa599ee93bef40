"""ImageNet ResNet recipe of the LPS paper, shared by its variants.

See docs/design.md, section 6.
"""

from configs.base import get_base_config, tau_recipe, use_official_code_settings


def imagenet_resnet(depth, downsampling, antialias=None):
    config = get_base_config()
    config.data.name = "imagenet"
    config.data.augment = "flip"  # resize 256, centre crop 224, flip
    config.model.depth = depth
    config.model.stem = "imagenet"
    config.model.downsampling = downsampling
    config.model.antialias = antialias
    use_official_code_settings(config.model)
    config.train.epochs = 90
    config.train.batch_size = 256
    config.train.optimizer = "pytorch_sgd"  # torch.optim.SGD: coupled L2 weight decay
    config.train.learning_rate = 0.1
    config.train.momentum = 0.9
    config.train.weight_decay = 1e-4
    config.train.lr_schedule = {"name": "step", "step_size": 30, "gamma": 0.1}
    config.train.tau_schedule = tau_recipe("imagenet")
    config.eval.split = "validation"  # ImageNet has no labelled test split
    # DDAC keeps k*k shifted copies of each feature map: a pass over 50 images of 224
    # pixels needs more memory than a 24 GB machine has (the check before training found
    # it), so the DDAC variants evaluate 10 at a time. Batch size never changes results.
    config.eval.batch_size = 10 if antialias and antialias.startswith("ddac") else 50
    config.eval.max_shift = 32  # ImageNet protocol shifts
    return config
