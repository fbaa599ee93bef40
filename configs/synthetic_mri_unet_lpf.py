"""The lpf U-Net of the APS-U comparison on the built-in synthetic_mri data (see
configs/_mri.py for the recipe); sized to train in a few minutes on 2 CPU cores."""

from configs._mri import mri_unet_config, synthetic_size


def get_config():
    return synthetic_size(mri_unet_config("lpf", "synthetic_mri"))
