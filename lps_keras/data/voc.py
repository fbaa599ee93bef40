"""PASCAL VOC 2012 semantic segmentation from a local `VOCdevkit/VOC2012` folder.

Layout (as extracted from `VOCtrainval_11-May-2012.tar`):

    VOC2012/
      ImageSets/Segmentation/{train,val,trainval}.txt   one image id per line
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png                         palette ("P" mode) PNGs

plus, optionally, the SBD-augmented set used by DeepLab ("train_aug", 10582 images):
`SegmentationClassAug/<id>.png` (grayscale PNGs) and a `train_aug.txt` list.

In a palette PNG the stored pixel value is an *index* into the palette, and for VOC that
index is the class id (0 = background, 1-20 = objects, 255 = "void"/ignore on object
borders). `tf.io.decode_png` applies the palette and returns colours (with `channels=1`, the
luminance of those colours), which loses the ids. Masks are therefore read with Pillow,
whose `np.asarray(Image.open(path))` returns the raw indices for "P" images and the values
for grayscale "L" images, inside `tf.numpy_function`. The cost is that mask decoding holds
the GIL and the pipeline cannot be serialised into a graph; with a few ms per mask this does
not limit CPU training. (Preloading every mask instead would need ~2 GB for train_aug.)

TFDS has no VOC segmentation: its `voc/2012` only holds boxes and image-level labels, so
there is no TFDS route for this dataset (see `load_tfds_voc`).
"""

import os

import numpy as np
import tensorflow as tf

from lps_keras.data import augment
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError

VOC_CLASS_NAMES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOC_NUM_CLASSES = len(VOC_CLASS_NAMES)
VOC_IGNORE_INDEX = 255
VOC_SPLITS = ("train", "val", "trainval", "train_aug", "trainval_aug")
_HINT = (
    "Download VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ "
    "and extract it; pass --data_dir=<folder containing VOCdevkit> (or VOCdevkit/VOC2012 "
    "itself). For train_aug, also add SegmentationClassAug/ and train_aug.txt from the SBD "
    "augmented set."
)


def find_voc_root(data_dir):
    """Returns the `VOC2012` folder for `data_dir` (itself, `VOC2012/` or `VOCdevkit/VOC2012/`).

    Raises:
        DatasetNotFoundError: none of these holds `JPEGImages/`.
    """
    data_dir = os.fspath(data_dir)
    candidates = [
        data_dir,
        os.path.join(data_dir, "VOC2012"),
        os.path.join(data_dir, "VOCdevkit", "VOC2012"),
    ]
    for root in candidates:
        if os.path.isdir(os.path.join(root, "JPEGImages")):
            return root
    if not os.path.isdir(data_dir):
        raise DatasetNotFoundError(
            f"VOC data_dir {data_dir} does not exist. {_HINT}", path=data_dir
        )
    raise DatasetNotFoundError(
        f"No VOC 2012 folder (one holding JPEGImages/, SegmentationClass/ and "
        f"ImageSets/Segmentation/) found at {' or '.join(candidates)}. {_HINT}",
        path=data_dir,
    )


def _split_file(root, split):
    names = [os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")]
    if split.endswith("_aug"):
        # SBD-augmented lists live in different places depending on who packaged them.
        names += [
            os.path.join(root, "ImageSets", "SegmentationAug", f"{split}.txt"),
            os.path.join(root, f"{split}.txt"),
        ]
    for name in names:
        if os.path.isfile(name):
            return name
    raise DatasetNotFoundError(
        f"VOC split file for {split!r} not found; looked for {', '.join(names)}. {_HINT}",
        path=names[0],
    )


def read_split_ids(path):
    """Image ids from a split file.

    Accepts plain lists (`2007_000032`) and the DeepLab pair format
    (`/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png`).
    """
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                first = line.split()[0]
                ids.append(os.path.splitext(os.path.basename(first))[0])
    if not ids:
        raise CorruptDatasetError(f"VOC split file {path} lists no image ids.", path=path)
    return ids


def list_voc_segmentation(data_dir, split="train", mask_dir=None):
    """Image and mask paths of a VOC segmentation split.

    Args:
        data_dir: `VOC2012`, `VOCdevkit` or the folder holding `VOCdevkit`.
        split: One of `VOC_SPLITS`.
        mask_dir: Mask folder name under `VOC2012`; default `SegmentationClassAug` for the
            `*_aug` splits and `SegmentationClass` otherwise.

    Returns:
        `(image_paths, mask_paths)`, two equally long lists.

    Raises:
        DatasetNotFoundError: folder, split file or listed files are missing.
    """
    if split not in VOC_SPLITS:
        raise ValueError(f"VOC split must be one of {VOC_SPLITS}, got {split!r}.")
    root = find_voc_root(data_dir)
    ids = read_split_ids(_split_file(root, split))
    if mask_dir is None:
        mask_dir = "SegmentationClassAug" if split.endswith("_aug") else "SegmentationClass"
    image_paths = [os.path.join(root, "JPEGImages", f"{i}.jpg") for i in ids]
    mask_paths = [os.path.join(root, mask_dir, f"{i}.png") for i in ids]
    missing = [p for p in image_paths + mask_paths if not os.path.isfile(p)]
    if missing:
        raise DatasetNotFoundError(
            f"VOC {split} split lists {len(ids)} images but {len(missing)} file(s) are "
            f"missing, e.g. {', '.join(missing[:3])}. {_HINT}",
            path=missing[0],
        )
    return image_paths, mask_paths


def read_mask(path):
    """Reads a VOC mask PNG into a uint8 `[H, W]` array of class ids (255 = ignore).

    Palette ("P") PNGs give their indices, grayscale ("L") PNGs their values.

    Raises:
        CorruptDatasetError: the file is not a readable PNG, or is a colour (RGB) mask.
    """
    from PIL import Image, UnidentifiedImageError

    path = path.decode("utf-8") if isinstance(path, bytes) else os.fspath(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("P", "L"):
                return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptDatasetError(f"Cannot decode mask {path}: {e}", path=path) from e
    raise CorruptDatasetError(
        f"Mask {path} is a {mode!r} image; expected a palette ('P') or grayscale ('L') PNG "
        "whose pixel values are class ids. Colour-coded masks must be converted first.",
        path=path,
    )


def load_mask(path):
    """Graph-mode `read_mask`: string path tensor -> uint8 `[H, W]` tensor."""
    mask = tf.numpy_function(read_mask, [path], tf.uint8, stateful=False)
    mask.set_shape([None, None])
    return mask


def load_example(image_path, mask_path):
    """Decodes one `(uint8 [H, W, 3] image, uint8 [H, W] mask)` pair; checks their sizes."""
    image = tf.io.decode_jpeg(tf.io.read_file(image_path), channels=3)
    mask = load_mask(mask_path)
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
    check = tf.debugging.Assert(
        same_size,
        [
            "VOC image and mask sizes differ:",
            image_path,
            tf.shape(image),
            mask_path,
            tf.shape(mask),
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(image), tf.identity(mask)


def voc_segmentation_dataset(data_dir, split="train", shuffle=False, seed=None, mask_dir=None):
    """Unbatched `(uint8 [H, W, 3], uint8 [H, W])` pairs of a VOC split (variable sizes).

    Args:
        data_dir: See `list_voc_segmentation`.
        split: One of `VOC_SPLITS`.
        shuffle: Shuffle the file list each epoch (before decoding).
        seed: Shuffle seed.
        mask_dir: See `list_voc_segmentation`.
    """
    image_paths, mask_paths = list_voc_segmentation(data_dir, split, mask_dir=mask_dir)
    ds = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))
    if shuffle:
        ds = ds.shuffle(len(image_paths), seed=seed, reshuffle_each_iteration=True)
    # AutoGraph has no Python control flow to convert in load_example.
    return ds.map(
        tf.autograph.experimental.do_not_convert(load_example),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def preprocess_train(
    image,
    mask,
    seed,
    crop_size=512,
    scale_range=(0.5, 2.0),
    image_pad_value=0.0,
    flip=True,
):
    """Random scale, pad (ignore label), random crop and flip; see `augment`.

    Returns float32 `[crop, crop, 3]` (0-255 scale) and uint8 `[crop, crop]`.
    """
    return augment.random_scale_crop_flip(
        image,
        mask,
        crop_size,
        scale_range=scale_range,
        seed=seed,
        image_pad_value=image_pad_value,
        ignore_index=VOC_IGNORE_INDEX,
        flip=flip,
    )


def preprocess_eval(image, mask, size=512, image_pad_value=0.0):
    """Pads image and mask at the bottom/right to `size` (mask with 255) for batching.

    Never crops: VOC images are at most 500x500, and a larger image fails loudly instead of
    being evaluated on part of its pixels. Use `size=None` (and batch size 1) to keep the
    original size.
    """
    if size is None:
        return tf.cast(image, tf.float32), mask
    size_h, size_w = (size, size) if isinstance(size, int) else size
    fits = tf.debugging.assert_less_equal(
        tf.shape(mask),
        [size_h, size_w],
        message="VOC evaluation: image larger than the evaluation size; raise it, or use "
        "size=None with batch size 1",
    )
    # The check must run before the shape assertions below, which would otherwise fail first
    # (in whichever order the runtime picks) with a message that names no setting.
    with tf.control_dependencies([fits]):
        image, mask = tf.identity(image), tf.identity(mask)
    image, mask = augment.pad_to_size(
        image, mask, (size_h, size_w), image_pad_value, VOC_IGNORE_INDEX
    )
    return tf.ensure_shape(image, [size_h, size_w, 3]), tf.ensure_shape(mask, [size_h, size_w])


def load_tfds_voc(*args, **kwargs):
    """There is no TFDS route for VOC segmentation; always raises.

    TFDS `voc/2012` holds images, boxes and image-level labels only (no
    `SegmentationClass` masks), so training a segmenter on it would be silently wrong.

    Raises:
        ValueError: always, explaining how to use the folder loader instead.
    """
    raise ValueError(
        "TFDS 'voc/2012' has no segmentation masks (only detection boxes and image labels), "
        f"so it cannot feed a segmentation model. Use the VOC folder instead: {_HINT}"
    )
