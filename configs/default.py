"""The default run: a small LPS ResNet on the built-in synthetic_shapes data.

Works on a fresh machine with no data and no network; about 4 minutes on 2 CPU cores.
"""

from configs.base import get_base_config


def get_config():
    config = get_base_config()
    config.name = "synthetic_shapes_resnet20_lps"
    config.data.name = "synthetic_shapes"
    config.model.depth = 20
    config.model.stem = "cifar"
    config.model.downsampling = "lps"
    config.train.epochs = 6
    config.train.batch_size = 64
    config.train.learning_rate = 0.05
    config.train.lr_schedule = {"name": "cosine", "warmup_epochs": 0.5}
    config.train.tau_schedule = {"kind": "step", "initial_tau": 1.0, "gamma": 0.85,
                                 "step_size": 2, "min_tau": 0.5}
    return config
