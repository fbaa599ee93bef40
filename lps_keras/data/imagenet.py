"""ImageNet-style data: class-per-folder image directories and TFDS ImageNet/Imagenette.

A class-per-folder directory looks like

    root/
      n01440764/  img_0001.JPEG  img_0002.png ...
      n02102040/  ...

Class folders sorted by name give the label indices (0, 1, ...), which matches the usual
ImageNet ordering of WordNet ids, Keras' `image_dataset_from_directory` and TFDS
`imagenette`. Images are decoded with `tf.io.decode_image`, which reads JPEG, PNG, GIF and
BMP by content (ImageNet has a few PNGs and CMYK JPEGs named .JPEG) and gives 3 channels for
grayscale files too.

Preprocessing follows the ResNet recipes: evaluation resizes the shorter side to 256 and
takes the central 224x224 crop; training either does the same plus a random flip, or a
random-resized crop (Inception style) plus a flip.
"""

import os

import numpy as np
import tensorflow as tf

from lps_keras.data import _tfds, augment
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
TFDS_IMAGENET_NAMES = ("imagenet2012", "imagenette")


def _is_image(name, extensions):
    return not name.startswith(".") and name.lower().endswith(extensions)


def list_class_folders(root):
    """Sorted names of the non-hidden subdirectories of `root`.

    Raises:
        DatasetNotFoundError: `root` does not exist or has no subdirectory.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetNotFoundError(
            f"Image folder {root} does not exist. Expected a class-per-folder layout: "
            f"{root}/<class_name>/<image>.jpg|.jpeg|.png.",
            path=root,
        )
    names = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise DatasetNotFoundError(
            f"Image folder {root} has no class subfolders. Expected a class-per-folder "
            f"layout: {root}/<class_name>/<image>.jpg|.jpeg|.png (one folder per class).",
            path=root,
        )
    return names


def split_folder(data_dir, split):
    """The class-folder directory of `split` under `data_dir` (`val` and `validation` stand
    for each other), or None."""
    aliases = {"validation": ("validation", "val"), "val": ("val", "validation")}
    for name in aliases.get(split, (split,)):
        path = os.path.join(os.fspath(data_dir), name)
        if os.path.isdir(path):
            return path
    return None


def list_image_folder(root, class_names=None, extensions=IMAGE_EXTENSIONS):
    """Lists the images of a class-per-folder directory.

    Args:
        root: Directory with one subfolder per class (subfolders may nest further).
        class_names: The classes, in label order. Default: the subfolders of `root`, sorted.
            Pass the training set's classes when listing a validation folder so that the
            labels agree even if the folder listings differ.
        extensions: Accepted file endings (case-insensitive).

    Returns:
        `(paths, labels, class_names)`: a list of file paths (sorted within each class), an
        int32 array of labels, and the tuple of class names.

    Raises:
        DatasetNotFoundError: `root` is missing, has no class folders, or holds no images.
        CorruptDatasetError: a class folder is missing or empty, or `root` has folders that
            are not in `class_names`.
    """
    root = os.fspath(root)
    found = list_class_folders(root)
    extensions = tuple(e.lower() for e in extensions)
    if class_names is None:
        class_names = found
    else:
        class_names = list(class_names)
        unknown = sorted(set(found) - set(class_names))
        missing = [c for c in class_names if c not in found]
        if unknown or missing:
            raise CorruptDatasetError(
                f"Image folder {root} does not match the expected {len(class_names)} classes: "
                f"missing folders {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                f"unexpected folders {unknown[:10]}{'...' if len(unknown) > 10 else ''}.",
                path=root,
            )
    paths, labels, empty = [], [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(root, name)
        files = []
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(os.path.join(dirpath, f) for f in filenames if _is_image(f, extensions))
        if not files:
            empty.append(name)
        files.sort()
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DatasetNotFoundError(
            f"Image folder {root} has {len(class_names)} class folders but no images ending "
            f"in {', '.join(extensions)}.",
            path=root,
        )
    if empty:
        raise CorruptDatasetError(
            f"Image folder {root}: {len(empty)} class folder(s) hold no images ending in "
            f"{', '.join(extensions)}: {', '.join(empty[:10])}{'...' if len(empty) > 10 else ''}. "
            "Every class needs at least one image (or remove the folder, which shifts the "
            "labels of the classes after it).",
            path=root,
        )
    return paths, np.asarray(labels, dtype=np.int32), tuple(class_names)


# Leading bytes of the formats `tf.io.decode_image` reads.
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"\xff\x0a",  # JPEG XL codestream
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",  # JPEG XL container
)
CORRUPT_IMAGE_MESSAGE = "Corrupt image file"
CORRUPT_IMAGE_REASON = (
    ": it does not start like a JPEG, PNG, GIF, BMP or WebP image (an empty file, or other "
    "content under an image name). Remove or replace it."
)


def has_image_signature(data):
    """True (a bool tensor) when the bytes `data` start like a JPEG, PNG, GIF, BMP, WebP or
    JPEG XL file."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 12), "\0" * 12]), 0, 12)
    ok = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
        tf.equal(tf.strings.substr(head, 8, 4), "WEBP"),
    )
    for sig in _SIGNATURES:
        ok = tf.logical_or(ok, tf.equal(tf.strings.substr(head, 0, len(sig)), sig))
    return ok


def decode_image_file(path):
    """Reads an image file into a uint8 `[H, W, 3]` tensor (JPEG/PNG/GIF/BMP by content).

    A file that does not start like an image (garbage, empty, an HTML error page saved as
    .jpg, ...) fails with an `InvalidArgumentError` reading "Corrupt image file <path>: ...
    Remove or replace it" (`CorruptDatasetError.from_tf_error` turns it into a
    `CorruptDatasetError` with `.path`) instead of the decoder's message, which names no
    file. A file with a valid header but damaged content still fails in the decoder.
    """
    data = tf.io.read_file(path)
    check = tf.debugging.Assert(
        has_image_signature(data),
        [tf.strings.join([f"{CORRUPT_IMAGE_MESSAGE} ", path, CORRUPT_IMAGE_REASON])],
        summarize=1,
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def preprocess_eval(image, image_size=224, resize_size=256):
    """Resize the shorter side to `resize_size`, then take the central `image_size` crop.

    Returns float32 `[image_size, image_size, 3]` on the 0-255 scale.
    """
    if resize_size < image_size:
        raise ValueError(f"`resize_size` ({resize_size}) must be >= `image_size` ({image_size}).")
    image = augment.resize_shorter_side(image, resize_size)
    image = augment.center_crop(image, image_size)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def preprocess_train(
    image,
    seed,
    image_size=224,
    resize_size=256,
    crop="center",
    flip=True,
    rrc_scale=(0.08, 1.0),
    rrc_ratio=(3.0 / 4.0, 4.0 / 3.0),
):
    """Training preprocessing for one image.

    Args:
        image: uint8 `[H, W, 3]`.
        seed: Shape-`[2]` seed (see `augment`).
        crop: `"center"`: resize the shorter side to `resize_size` and take the central crop
            (the LPS/APS ImageNet recipe); `"random_resized"`: Inception-style random-resized
            crop of area fraction `rrc_scale` and aspect ratio `rrc_ratio`.
        flip: Random horizontal flip.

    Returns:
        float32 `[image_size, image_size, 3]` on the 0-255 scale.
    """
    crop_seed, flip_seed = augment.split_seed(seed, 2)
    if crop == "center":
        image = preprocess_eval(image, image_size, resize_size)
    elif crop == "random_resized":
        image = augment.random_resized_crop(
            image, image_size, scale=rrc_scale, ratio=rrc_ratio, seed=crop_seed
        )
    else:
        raise ValueError(f"`crop` must be 'center' or 'random_resized', got {crop!r}.")
    if flip:
        image = augment.random_flip_left_right(image, flip_seed)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def image_folder_dataset(root, class_names=None, shuffle=False, seed=None, select=None):
    """An unbatched dataset of decoded `(uint8 [H, W, 3], int32 [])` from a folder.

    Corrupt files: iteration fails at the first file that is not an image, with an error
    naming it and saying to remove or replace it (see `decode_image_file`); nothing is
    skipped silently.

    Args:
        root: Class-per-folder directory (see `list_image_folder`).
        class_names: Optional class list fixing the label order.
        shuffle: Shuffle the file list (all of it, cheaply: only paths are shuffled) each
            epoch, before decoding.
        seed: Shuffle seed.
        select: Optional `(paths, labels) -> (paths, labels)` applied to the sorted file
            list before anything is read (e.g. `lps_keras.data.holdout.hold_out`).

    Returns:
        `(dataset, class_names)`.
    """
    paths, labels, class_names = list_image_folder(root, class_names=class_names)
    if select is not None:
        paths, labels = select(np.asarray(paths), labels)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    @tf.autograph.experimental.do_not_convert
    def decode(path, label):
        return decode_image_file(path), label

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE), class_names


def load_tfds_imagenet(
    name="imagenet2012",
    split="train",
    data_dir=None,
    manual_dir=None,
    shuffle_files=False,
    seed=None,
):
    """ImageNet-2012 or Imagenette from TFDS, never downloading.

    Args:
        name: `"imagenet2012"`, `"imagenette"`, or a TFDS name with config such as
            `"imagenette/320px-v2"`.
        split: TFDS split, e.g. `"train"`, `"validation"`, `"validation[:10%]"`.
        data_dir: TFDS data directory (default: TFDS's own).
        manual_dir: For `imagenet2012`: the folder with `ILSVRC2012_img_train.tar` and
            `ILSVRC2012_img_val.tar`. If the dataset is not prepared yet, TFDS builds it from
            these files (no network needed; this takes hours for the full set).
        shuffle_files: Read the TFDS shards in a random order (reshuffled each epoch).
        seed: Seed of the shard order.

    Returns:
        An unbatched `tf.data.Dataset` of `(uint8 [H, W, 3], int32 [])`.

    Raises:
        DatasetNotFoundError: the dataset is not prepared (and cannot be built from
            `manual_dir`).
    """
    base = name.split("/")[0]
    if base not in TFDS_IMAGENET_NAMES:
        raise ValueError(
            f"`name` must be one of {TFDS_IMAGENET_NAMES} (optionally with a "
            f"'/config'), got {name!r}."
        )
    if manual_dir is not None:
        if base != "imagenet2012":
            raise ValueError(
                f"`manual_dir` only applies to imagenet2012 (TFDS builds it from the ILSVRC "
                f"tar files); {name} is downloaded by TFDS instead."
            )
        manual_dir = os.fspath(manual_dir)
        if not os.path.isdir(manual_dir):
            raise DatasetNotFoundError(
                f"ImageNet manual_dir {manual_dir} does not exist. It must hold "
                "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org.",
                path=manual_dir,
            )
        tfds = _tfds.import_tfds()
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
            )
    if base == "imagenet2012":
        hint = (
            "ImageNet cannot be downloaded automatically: get ILSVRC2012_img_train.tar and "
            "ILSVRC2012_img_val.tar from image-net.org and pass their folder as manual_dir, "
            "or use an extracted class-per-folder copy (name='imagenet' with data_dir=<root "
            "with train/ and val/>)."
        )
    else:
        hint = (
            "Or download imagenette2-320.tgz from https://github.com/fastai/imagenette, "
            "extract it and pass its folder (with train/ and val/) as data_dir to the "
            "folder loader."
        )
    tfds = _tfds.import_tfds()
    ds = _tfds.tfds_load(
        name,
        split,
        data_dir,
        as_supervised=True,
        shuffle_files=shuffle_files,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
        hint=hint,
    )

    @tf.autograph.experimental.do_not_convert
    def cast_label(image, label):
        return image, tf.cast(label, tf.int32)

    return ds.map(cast_label, num_parallel_calls=tf.data.AUTOTUNE)
