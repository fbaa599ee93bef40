"""Shared U-Net recipe of the MRI reconstruction configs (`synthetic_mri_unet_*`,
`fastmri_unet_*`): the APS-U paper's training (Adam lr 1e-3, x0.5 every 5 epochs, MSE,
batch 16, circular padding, no blur in APS/LPS), PSNR/SSIM/NMSE on the validation split
after every epoch, and the APS-U equivariance protocols (shifts up to 16) at the end.
"""

from configs.base import get_base_config, unet_model_config

# variant -> (downsampling, antialias): the four U-Nets the paper compares.
VARIANTS = {"baseline": ("maxpool", None), "lpf": ("blurpool", "lowpass3"),
            "aps": ("aps", None), "lps": ("lps", None)}


def mri_unet_config(variant, dataset):
    downsampling, antialias = VARIANTS[variant]
    config = get_base_config()
    config.data.name = dataset
    config.data.augment = "none"
    config.model = unet_model_config(downsampling)
    config.model.antialias = antialias
    config.train.loss = "mse"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.weight_decay = 0.0
    config.train.batch_size = 16
    config.train.epochs = 50
    config.train.lr_schedule = {"name": "step", "step_size": 5, "gamma": 0.5}
    config.train.tau_schedule = {}  # LPS keeps tau 1 (the LPS default)
    config.eval.split = "test" if dataset == "synthetic_mri" else "validation"
    config.eval.validation_split = "validation" if dataset == "synthetic_mri" else ""
    config.eval.batch_size = 16
    config.eval.max_shift = 16  # the APS-U protocol's largest circular shift
    return config


def synthetic_size(config):
    """The synthetic_mri runs' size: small U-Nets (3 levels, widths 16-128) and 8 epochs,
    so that a run finishes in a few minutes on 2 CPU cores. The U-Net is residual (it
    learns a correction of the zero-filled input), which reaches a given PSNR in fewer
    epochs; the fastMRI configs keep the paper's plain U-Net."""
    config.model.channels = [16, 32, 64, 128]
    config.model.residual = True
    config.data.num_train_examples = 2000
    config.data.num_eval_examples = 200
    config.train.epochs = 8
    config.train.lr_schedule = {"name": "step", "step_size": 5, "gamma": 0.5}
    return config
