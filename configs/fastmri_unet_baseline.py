"""The baseline U-Net of the APS-U paper on fastMRI single-coil knee (4x acceleration): the
official widths (64-1024, 4 levels) and recipe (configs/_mri.py). Set
`--config.data.data_dir` to the folder holding singlecoil_train/ and singlecoil_val/."""

from configs._mri import mri_unet_config


def get_config():
    return mri_unet_config("baseline", "fastmri")
