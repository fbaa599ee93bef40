"""CIFAR-10 ResNet-18, blurpool + lowpass3 (LPS paper, Table 1)."""

from configs._cifar10 import cifar10_resnet18


def get_config():
    return cifar10_resnet18("blurpool", antialias="lowpass3")
