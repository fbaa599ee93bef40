"""PASCAL VOC 2012 DeepLabV3+ resnet18, LPS + LPU (LPS paper, Table 4)."""

from configs._voc import voc_deeplab


def get_config():
    return voc_deeplab("resnet18")
