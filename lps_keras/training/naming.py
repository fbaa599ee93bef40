"""The name of a run, which is also its default run directory and export name.

An empty `config.name` is derived from the data and the model actually configured
(`run_name`), so that overriding a model setting on the command line
(`--config.model.downsampling=strided`) gives the run its own directory and export name
instead of publishing another model under the first one's name.
"""


def run_name(config):
    """`config.name` if set; otherwise `<data>_<architecture>_<downsampling>` followed by
    `_<antialias>` when set and, for DeepLabV3+, `_<upsampling>` unless bilinear (for a
    U-Net, when set explicitly), e.g. `cifar10_resnet18_lps_lowpass3`,
    `voc_deeplabv3plus_resnet18_lps_lpu` or `synthetic_mri_unet4_aps`."""
    if config.get("name"):
        return config.name
    model = config.model
    kind = model.get("kind", "resnet")
    if kind == "deeplabv3plus":
        parts = [f"deeplabv3plus_{model.get('backbone')}"]
    elif kind == "unet":
        parts = [f"unet{len(model.get('channels', (0,) * 5)) - 1}"]
    else:
        parts = [f"{kind}{model.get('depth')}"]
    parts.append(model.get("downsampling"))
    if model.get("antialias"):
        parts.append(model.antialias)
    if kind == "deeplabv3plus" and model.get("upsampling", "bilinear") != "bilinear":
        parts.append(model.upsampling)
    if kind == "unet" and model.get("upsampling"):  # set explicitly: not the default
        parts.append(model.upsampling)
    return "_".join([config.data.name, *map(str, parts)])
