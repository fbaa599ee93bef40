"""ImageNet ResNet-18, lps + lowpass3 (LPS paper, Table 2)."""

from configs._imagenet import imagenet_resnet


def get_config():
    return imagenet_resnet(18, "lps", antialias="lowpass3")
