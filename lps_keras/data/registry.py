"""The dataset registry: static facts about every dataset name `build_dataset` accepts.

`dataset_info(name)` returns a `DatasetInfo` (task, number of classes, image shape,
normalisation statistics, splits, default augmentation, evaluation protocol); the valid
names are `DATASET_NAMES`. Nothing here reads data, except that
`dataset_info("image_folder", data_dir=...)` lists the training split's class folders.
"""

import dataclasses
import os

from lps_keras.data import augment as aug
from lps_keras.data import cifar, fastmri, imagenet, synthetic, voc
from lps_keras.data.errors import DatasetNotFoundError

__all__ = ["DATASET_NAMES", "SYNTHETIC_MEAN", "SYNTHETIC_STD", "DatasetInfo", "dataset_info"]

SYNTHETIC_MEAN = (0.5, 0.5, 0.5)  # colours are uniform over the RGB cube
SYNTHETIC_STD = (0.29, 0.29, 0.29)  # measured on 10k images (0.290-0.291 per channel)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset name.

    Attributes:
        name: The dataset name.
        task: `"classification"`, `"segmentation"` or `"regression"` (image-to-image:
            MRI reconstruction, inputs and targets both images).
        num_classes: Number of classes (including background for segmentation); None when
            it depends on the folder (`image_folder`), or for regression.
        image_shape: `(H, W, C)` of the images `build_dataset` yields by default (the
            training crop for ImageNet and VOC; `(H, W, 1)` for the MRI data).
        mean: Per-channel mean on the 0-1 scale, used by `normalize=True`. Regression data
            is already in model units (`(0.0,)`; `normalize` has no effect on it).
        std: Per-channel standard deviation on the 0-1 scale (`(1.0,)` for regression).
        splits: Valid `split` values.
        default_augment: The training augmentation recipe (see `build_dataset`).
        ignore_index: Mask value to ignore in losses and metrics (segmentation only).
        class_names: Class names in label order, when fixed.
        protocol: The shift-consistency protocol of `lps_keras.metrics` that evaluates
            classifiers on this data: `"imagenet"` for the ImageNet family (224 crops of
            256 centre crops, shifts up to 32), `"cifar"` for everything else (shifts of
            the full image, up to 3). Segmentation data uses mASSC instead; regression
            (MRI) data has `"reconstruction"`: image-to-image metrics (e.g. PSNR/SSIM of the
            output, and shift equivariance of the output under circular input shifts).
    """

    name: str
    task: str
    num_classes: int | None
    image_shape: tuple
    mean: tuple
    std: tuple
    splits: tuple
    default_augment: str
    ignore_index: int | None = None
    class_names: tuple | None = None
    protocol: str = "cifar"


def _imagenet_family(name, num_classes, splits):
    """An ImageNet-style classification set: resize 256, centre crop 224, flip; ImageNet
    mean/std; the ImageNet consistency protocol."""
    return DatasetInfo(
        name=name,
        protocol="imagenet",
        task="classification",
        num_classes=num_classes,
        image_shape=(224, 224, 3),
        mean=aug.IMAGENET_MEAN,
        std=aug.IMAGENET_STD,
        splits=splits,
        default_augment="flip",
    )


_INFOS = {
    "synthetic_shapes": DatasetInfo(
        name="synthetic_shapes",
        task="classification",
        num_classes=synthetic.NUM_SHAPE_CLASSES,
        image_shape=(32, 32, 3),
        mean=SYNTHETIC_MEAN,
        std=SYNTHETIC_STD,
        splits=("train", "validation", "test"),
        default_augment="flip+shift",
        class_names=synthetic.SHAPE_NAMES,
    ),
    "synthetic_shapes_seg": DatasetInfo(
        name="synthetic_shapes_seg",
        task="segmentation",
        num_classes=synthetic.NUM_SHAPE_CLASSES + 1,
        image_shape=(64, 64, 3),
        mean=SYNTHETIC_MEAN,
        std=SYNTHETIC_STD,
        splits=("train", "validation", "test"),
        default_augment="flip",
        ignore_index=255,
        class_names=("background",) + synthetic.SHAPE_NAMES,
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        task="classification",
        num_classes=10,
        image_shape=(32, 32, 3),
        mean=aug.CIFAR10_MEAN,
        std=aug.CIFAR10_STD,
        splits=("train", "test"),
        default_augment="flip+shift",  # the LPS CIFAR-10 recipe: flip, circular shift +-3
        class_names=cifar.CIFAR10_CLASS_NAMES,
    ),
    "imagenet": _imagenet_family("imagenet", 1000, ("train", "validation")),
    "imagenette": _imagenet_family("imagenette", 10, ("train", "validation")),
    "image_folder": _imagenet_family("image_folder", None,
                                     ("train", "validation", "val", "test")),
    "voc": DatasetInfo(
        name="voc",
        task="segmentation",
        num_classes=voc.VOC_NUM_CLASSES,
        image_shape=(512, 512, 3),
        mean=aug.IMAGENET_MEAN,
        std=aug.IMAGENET_STD,
        splits=voc.VOC_SPLITS,
        default_augment="scale+flip",
        ignore_index=voc.VOC_IGNORE_INDEX,
        class_names=voc.VOC_CLASS_NAMES,
    ),
    "synthetic_mri": DatasetInfo(
        name="synthetic_mri",
        task="regression",
        num_classes=None,
        image_shape=(64, 64, 1),
        mean=(0.0,),
        std=(1.0,),
        splits=("train", "validation", "test"),
        default_augment="none",
        protocol="reconstruction",
    ),
    "fastmri": DatasetInfo(
        name="fastmri",
        task="regression",
        num_classes=None,
        image_shape=(fastmri.FASTMRI_CROP_SIZE, fastmri.FASTMRI_CROP_SIZE, 1),
        mean=(0.0,),
        std=(1.0,),
        splits=tuple(fastmri.FASTMRI_SPLIT_FOLDERS),
        default_augment="none",
        protocol="reconstruction",
    ),
}
DATASET_NAMES = tuple(_INFOS)


_STATIC = object()  # `data_dir` not passed: the static facts only


def dataset_info(name, data_dir=_STATIC):
    """Returns the `DatasetInfo` of `name` (see `DATASET_NAMES`).

    Args:
        name: The dataset name.
        data_dir: Only used by `image_folder`, whose classes are whatever folders it holds:
            with `data_dir` given, the result's `class_names` are the class subfolders of
            its training split folder (`<data_dir>/train/<class_name>/...`), sorted by name
            (the order `build_dataset` numbers the labels in, for every split), and
            `num_classes` is their count. Omitted, `image_folder` gives the static facts
            (`num_classes` None). Other datasets ignore `data_dir`.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        DatasetNotFoundError: `image_folder` with `data_dir` None (e.g. an empty
            `config.data.data_dir`), or without a `train/` folder holding class subfolders
            (the message names the folder and the expected layout).
    """
    if name not in _INFOS:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(DATASET_NAMES)}.")
    info = _INFOS[name]
    if name != "image_folder" or data_dir is _STATIC:
        return info
    layout = ("<data_dir>/train/<class_name>/<image>.jpg|.jpeg|.png, one subfolder per class "
              "(plus val/ or test/ with the same class subfolders)")
    if data_dir is None:
        raise DatasetNotFoundError(
            f"image_folder needs data_dir (config.data.data_dir, --data_dir) to find its "
            f"classes: the folder laid out as {layout}."
        )
    data_dir = os.path.expanduser(os.fspath(data_dir))
    train = imagenet.split_folder(data_dir, "train")
    if train is None:
        raise DatasetNotFoundError(
            f"image_folder: no 'train' folder in {data_dir}"
            + ("" if os.path.isdir(data_dir) else " (the directory does not exist)")
            + f". The classes are the subfolders of the training split; expected {layout}.",
            path=data_dir,
        )
    class_names = tuple(imagenet.list_class_folders(train))
    return dataclasses.replace(info, num_classes=len(class_names), class_names=class_names)
