"""CIFAR-10 ResNet-18, strided  (LPS paper, Table 1)."""

from configs._cifar10 import cifar10_resnet18


def get_config():
    return cifar10_resnet18("strided")
