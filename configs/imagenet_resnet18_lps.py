"""ImageNet ResNet-18, lps (LPS paper, Table 2)."""

from configs._imagenet import imagenet_resnet


def get_config():
    return imagenet_resnet(18, "lps")
