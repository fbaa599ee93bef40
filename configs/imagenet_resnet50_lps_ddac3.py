"""ImageNet ResNet-50, lps + ddac3 (LPS paper, Table 2)."""

from configs._imagenet import imagenet_resnet


def get_config():
    return imagenet_resnet(50, "lps", antialias="ddac3")
