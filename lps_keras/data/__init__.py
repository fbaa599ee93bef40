"""Datasets and input pipelines for lps_keras.

Nothing here downloads: data is generated (`synthetic_shapes`, `synthetic_shapes_seg`),
read from local files in the official formats (CIFAR-10 pickles, class-per-folder image
directories, PASCAL VOC 2012), or read from an already prepared TFDS directory.

Start with `build_dataset(name, split, batch_size, ...)` and `dataset_info(name)`.
"""

from lps_keras.data import augment
from lps_keras.data.augment import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from lps_keras.data.cifar import (
    CIFAR10_CLASS_NAMES,
    RestrictedUnpickler,
    cifar10_dataset,
    load_cifar10,
    read_cifar10_batch,
    restricted_pickle_load,
)
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError
from lps_keras.data.imagenet import (
    decode_image_file,
    image_folder_dataset,
    list_image_folder,
    load_tfds_imagenet,
)
from lps_keras.data.pipeline import DATASET_NAMES, DatasetInfo, build_dataset, dataset_info
from lps_keras.data.synthetic import SHAPE_NAMES, make_synthetic_shapes, make_synthetic_shapes_seg
from lps_keras.data.voc import (
    VOC_CLASS_NAMES,
    VOC_IGNORE_INDEX,
    list_voc_segmentation,
    read_mask,
    voc_segmentation_dataset,
)
