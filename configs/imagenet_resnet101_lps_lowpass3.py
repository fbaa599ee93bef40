"""ImageNet ResNet-101, lps + lowpass3 (LPS paper, Table 2)."""

from configs._imagenet import imagenet_resnet


def get_config():
    return imagenet_resnet(101, "lps", antialias="lowpass3")
