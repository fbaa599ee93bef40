"""One entry point for every dataset: `build_dataset` and `dataset_info`.

`build_dataset` returns a batched, prefetched `tf.data.Dataset` of `(image, target)` ready
for `model.fit` / `model.evaluate`:

- images: float32 normalised with the dataset's mean/std (`normalize=True`, default), or
  uint8 on the 0-255 scale (`normalize=False`, e.g. for a model that normalises itself, or
  for shift-consistency evaluation on raw pixels);
- targets: int32 class ids `[B]`, or int32 masks `[B, H, W]` for segmentation (255 marks
  pixels to ignore).

Regression (MRI reconstruction) data, `synthetic_mri` and `fastmri`, yields
`(inputs, targets)`, both float32 `[B, H, W, 1]` already in model units (fastMRI's
instance normalisation, clamped to [-6, 6]); `normalize` has no effect on it.

Randomness (shuffling and augmentation) is driven by `seed`: each element gets its own
stateless seed from a seeded random stream, so results do not depend on thread timing, each
epoch draws new augmentations, and rerunning with the same seed repeats everything.
"""

import functools
import os

import numpy as np
import tensorflow as tf

from lps_keras.data import augment as aug
from lps_keras.data import cifar, fastmri, imagenet, synthetic, synthetic_mri, voc
from lps_keras.data.errors import DatasetNotFoundError
from lps_keras.data.holdout import HOLDOUT_SPLIT, check_holdout, hold_out, source_split

# The registry lives in `registry`; its names stay importable from here.
from lps_keras.data.registry import (  # noqa: F401
    _INFOS,
    DATASET_NAMES,
    SYNTHETIC_MEAN,
    SYNTHETIC_STD,
    DatasetInfo,
    dataset_info,
)

SOURCES = ("auto", "folder", "tfds")

# Fixed data seeds: the synthetic *data* is one fixed dataset (like CIFAR); the `seed` of
# `build_dataset` only drives shuffling and augmentation.
_SYNTHETIC_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
_SYNTHETIC_SPLIT_SIZES = {"train": 10000, "validation": 2000, "test": 2000}
_SYNTHETIC_SEG_SPLIT_SIZES = {"train": 2000, "validation": 500, "test": 500}
_SYNTHETIC_MRI_SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 200}

# Augmentation tokens understood per dataset family (combine with "+", e.g. "flip+shift").
_TOKENS = {
    "small": ("flip", "shift", "crop"),  # shift: circular roll; crop: zero-pad + random crop
    "imagenet": ("flip", "rrc", "shift"),  # rrc: random-resized crop instead of centre crop
    "segmentation": ("flip", "scale", "shift"),  # scale: random rescale + pad + random crop
    "regression": ("flip", "shift"),  # applied to input and target together
}


def parse_augment(augment, family, training, default):
    """Normalises an augmentation spec to a frozenset of tokens.

    `"default"` means `default` when training and nothing otherwise; None, False, `""` and
    `"none"` mean nothing; otherwise `"+"`-joined tokens from the family's vocabulary.
    """
    if augment == "default":
        augment = default if training else None
    if augment is None or augment is False or augment in ("", "none"):
        return frozenset()
    if not isinstance(augment, str):
        raise TypeError(f"`augment` must be a string such as 'flip+shift', got {augment!r}.")
    tokens = frozenset(t.strip() for t in augment.split("+") if t.strip())
    unknown = sorted(tokens - set(_TOKENS[family]))
    if unknown:
        raise ValueError(
            f"Unknown augmentation(s) {unknown} in {augment!r}; this dataset accepts "
            f"{', '.join(_TOKENS[family])} (joined with '+'), 'none' or 'default'."
        )
    return tokens


def build_dataset(
    name,
    split,
    batch_size,
    *,
    data_dir=None,
    training=None,
    augment="default",
    seed=0,
    normalize=True,
    shuffle=None,
    drop_remainder=None,
    cache=None,
    num_examples=None,
    holdout=0,
    image_size=None,
    resize_size=None,
    crop_size=None,
    max_shift=3,
    pad=4,
    scale_range=(0.5, 2.0),
    source="auto",
    manual_dir=None,
    num_parallel_calls=tf.data.AUTOTUNE,
    prefetch=True,
):
    """Builds a batched, prefetched `tf.data.Dataset` of `(images, targets)`.

    Args:
        name: One of `DATASET_NAMES`: `"synthetic_shapes"`, `"synthetic_shapes_seg"`,
            `"cifar10"`, `"imagenet"`, `"imagenette"`, `"image_folder"`, `"voc"`, and the
            regression (MRI reconstruction) sets `"synthetic_mri"`, `"fastmri"`.
        split: A split of the dataset (`dataset_info(name).splits`).
        batch_size: Examples per batch.
        data_dir: Where the data is. `cifar10`: see `cifar.load_cifar10`. `imagenet`,
            `imagenette`: a folder with `train/` and `val/` (or `validation/`) class folders;
            if absent, TFDS (`data_dir` is then the TFDS data dir). `image_folder`: the folder
            holding one subfolder per split, each with class subfolders. `voc`: see
            `voc.find_voc_root`. `fastmri`: the folder holding `singlecoil_train/` and
            `singlecoil_val/` (see `fastmri`). Unused for synthetic data.
        training: Selects the defaults of `augment`, `shuffle` and `drop_remainder`.
            Default: `split` starts with "train".
        augment: `"default"` (the dataset's recipe, `dataset_info(name).default_augment`,
            when training; nothing otherwise), `"none"`, or tokens joined with `"+"`:
            32x32 classification: `flip`, `shift` (circular, up to `max_shift`), `crop`
            (zero-pad by `pad`, random crop); ImageNet family: `flip`, `rrc`
            (random-resized crop instead of resize + centre crop), `shift`; segmentation:
            `flip`, `scale` (random rescale in `scale_range`, pad with the ignore label,
            random crop to `crop_size`), `shift` (image and mask together); regression:
            `shift` (the same random circular shift, up to `max_shift`, of input and
            target: the APS-U `--circular_data_aug`), `flip` (horizontal flip of both).
            The regression default is `"none"`.
        seed: Seed for shuffling and augmentation (None: not reproducible).
        normalize: True: float32 `(x / 255 - mean) / std`; False: uint8 0-255. No effect
            on regression data (always float32 in model units).
        shuffle: Shuffle every epoch. Default: `training`.
        drop_remainder: Drop the last partial batch. Default: `training`.
        cache: Cache decoded images in memory (or in the file named by a string). Default:
            off for folder datasets; array datasets (synthetic, CIFAR-10) are held in memory
            anyway. `fastmri` ignores it (its training masks change every epoch; it reads
            one slice at a time).
        num_examples: Synthetic data: number of examples (default 10000/2000/2000 for
            train/validation/test, 2000/500/500 for segmentation, 2000/200/200 for
            `synthetic_mri`).
        holdout: CIFAR-10 and ImageNet/Imagenette folders: hold `holdout` training examples
            (a fixed random choice, see `lps_keras.data.holdout`) out of `"train"`; they
            form the split `"holdout"` (validation data, never trained on). 0: none.
        image_size: Synthetic: side of the generated images (default 32 / 64; 64 for
            `synthetic_mri`). ImageNet family: side of the crop (default 224). `fastmri`:
            the centre crop when `crop_size` is not given.
        resize_size: ImageNet family: shorter side before the centre crop (default
            `image_size / 0.875`, i.e. 256 for 224).
        crop_size: Segmentation: training crop and evaluation pad size (default 512 for
            VOC, the image size for synthetic). `fastmri`: side of the centre crop of input
            and target (default 320).
        max_shift: Largest circular shift of the `shift` augmentation.
        pad: Padding of the `crop` augmentation.
        scale_range: Range of the `scale` augmentation.
        source: `"auto"`, `"folder"` or `"tfds"` (CIFAR-10, ImageNet family and VOC; the
            synthetic datasets and `fastmri` ignore it). Any other value raises ValueError,
            whatever the dataset.
        manual_dir: TFDS `imagenet2012` manual directory (see `load_tfds_imagenet`).
        num_parallel_calls: Parallelism of the decode/augment maps.
        prefetch: Prefetch batches (AUTOTUNE).

    Returns:
        A `tf.data.Dataset` of `(images [B, H, W, 3], targets)`; for regression data
        `(inputs [B, H, W, 1], targets [B, H, W, 1])`, both float32.

    Raises:
        ValueError: unknown name, split, source or augmentation token.
        DatasetNotFoundError, CorruptDatasetError: see the loaders.

    Corrupt image files (class-per-folder datasets) are never skipped: iteration fails at
    the first file that does not start like an image with a `tf.errors.InvalidArgumentError`
    reading "Corrupt image file <path>: ... Remove or replace it."
    (`CorruptDatasetError.from_tf_error` turns it into a `CorruptDatasetError` with
    `.path`); see `imagenet.decode_image_file`.
    """
    info = dataset_info(name)
    if source not in SOURCES:
        raise ValueError(
            f"`source` (config.data.source) must be one of {', '.join(map(repr, SOURCES))}; "
            f"got {source!r}. 'folder': the dataset's files under data_dir; 'tfds': a prepared "
            "TFDS copy; 'auto': the files if found, else TFDS."
        )
    check_holdout(name, split, holdout, source)
    if split not in info.splits + (HOLDOUT_SPLIT,) and not (
        source == "tfds" and name in ("cifar10", "imagenet", "imagenette")
    ):
        raise ValueError(
            f"Unknown split {split!r} for {name}; valid splits: {', '.join(info.splits)}."
        )
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if data_dir is not None:
        # Command-line flags such as --data_dir=~/data reach us unexpanded.
        data_dir = os.path.expanduser(os.fspath(data_dir))
    if training is None:
        training = split.startswith("train")
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    if info.task in ("segmentation", "regression"):
        family = info.task
    elif name in ("synthetic_shapes", "cifar10"):
        family = "small"
    else:
        family = "imagenet"
    tokens = parse_augment(augment, family, training, info.default_augment)

    mean, std = info.mean, info.std
    pad_value = tuple(255.0 * m for m in mean)

    def finalize(image):
        return aug.normalize(image, mean, std) if normalize else aug.to_uint8(image)

    opts = dict(shuffle=shuffle, seed=seed, num_parallel_calls=num_parallel_calls)
    if name == "synthetic_shapes":
        size = image_size or 32
        n = _synthetic_size(num_examples, split, _SYNTHETIC_SPLIT_SIZES)
        images, labels = _synthetic_arrays(False, n, size, _SYNTHETIC_SPLIT_SEEDS[split])
        ds = _array_dataset(images, labels, **opts)
        fn = _small_classification_fn(tokens, finalize, max_shift, pad)
    elif name == "cifar10":
        if image_size not in (None, 32):
            raise ValueError(f"CIFAR-10 images are 32x32; got image_size={image_size}.")
        images, labels = cifar.load_cifar10(source_split(split), data_dir=data_dir,
                                            source=source)
        images, labels = hold_out((images, labels), split, holdout)
        ds = _array_dataset(images, labels, **opts)
        fn = _small_classification_fn(tokens, finalize, max_shift, pad)
    elif name in ("imagenet", "imagenette", "image_folder"):
        ds = _imagenet_source(name, split, data_dir, source, manual_dir, cache, holdout,
                              **opts)
        crop = image_size or 224
        resize = resize_size or int(round(crop / 0.875))  # the standard 224 / 256 ratio
        fn = _imagenet_fn(tokens, finalize, crop, resize, max_shift)
    elif name == "synthetic_shapes_seg":
        size = image_size or 64
        n = _synthetic_size(num_examples, split, _SYNTHETIC_SEG_SPLIT_SIZES)
        images, masks = _synthetic_arrays(True, n, size, _SYNTHETIC_SPLIT_SEEDS[split])
        ds = _array_dataset(images, masks, **opts)
        fn = _segmentation_fn(
            tokens, finalize, crop_size or size, scale_range, max_shift, pad_value, pad_eval=False
        )
    elif name == "synthetic_mri":
        size = image_size or 64
        n = _synthetic_size(num_examples, split, _SYNTHETIC_MRI_SPLIT_SIZES)
        inputs, targets = _synthetic_mri_arrays(n, size, _SYNTHETIC_SPLIT_SEEDS[split])
        ds = _array_dataset(inputs, targets, **opts)
        fn = _regression_fn(tokens, max_shift)
    elif name == "fastmri":
        ds = fastmri.fastmri_dataset(
            data_dir, split, crop_size=crop_size or image_size or fastmri.FASTMRI_CROP_SIZE,
            random_masks=training, **opts)
        fn = _regression_fn(tokens, max_shift)
    else:  # voc
        if source == "tfds":
            voc.load_tfds_voc()
        if data_dir is None:
            raise ValueError(
                "voc needs `data_dir`: the folder holding VOCdevkit (or VOCdevkit/VOC2012)."
            )
        ds = voc.voc_segmentation_dataset(data_dir, split, shuffle=shuffle and not cache, seed=seed)
        ds = _maybe_cache_and_shuffle(ds, cache, shuffle, seed)
        fn = _segmentation_fn(
            tokens, finalize, crop_size or 512, scale_range, max_shift, pad_value, pad_eval=True
        )

    # The transforms use no tensor-dependent Python control flow, so AutoGraph has nothing to
    # convert; skipping it makes building a pipeline several times faster.
    if tokens:
        ds = tf.data.Dataset.zip((ds, aug.element_seeds(seed)))

        @tf.autograph.experimental.do_not_convert
        def transform(example, element_seed):
            return fn(example[0], example[1], element_seed)

    else:

        @tf.autograph.experimental.do_not_convert
        def transform(image, target):
            return fn(image, target, None)

    ds = ds.map(transform, num_parallel_calls=num_parallel_calls)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


# ----------------------------------------------------------------------------------------------
# Sources


def _synthetic_size(num_examples, split, sizes):
    return sizes[split] if num_examples is None else int(num_examples)


@functools.lru_cache(maxsize=4)
def _synthetic_arrays(segmentation, n, size, data_seed):
    # Memoised: generation takes ~1-2 s for 10k images and the arrays are a few tens of MB.
    make = synthetic.make_synthetic_shapes_seg if segmentation else synthetic.make_synthetic_shapes
    x, y = make(n, image_size=size, seed=data_seed)
    x.setflags(write=False)  # shared between calls: keep callers from editing the cache
    y.setflags(write=False)
    return x, y


@functools.lru_cache(maxsize=4)
def _synthetic_mri_arrays(n, size, data_seed):
    # Memoised like _synthetic_arrays: ~0.6 s per 1000 examples of 64x64.
    x, y = synthetic_mri.make_synthetic_mri(n, image_size=size, seed=data_seed)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _array_dataset(images, targets, shuffle, seed, num_parallel_calls):
    """Unbatched `(image, target)` dataset over in-memory arrays.

    Shuffles indices rather than images: a full-size buffer of int64s is a perfect shuffle
    for a few hundred KB, where a buffer of images would copy the dataset.
    """
    images = tf.convert_to_tensor(images)
    targets = tf.convert_to_tensor(targets)
    ds = tf.data.Dataset.range(int(images.shape[0]))
    if shuffle:
        ds = ds.shuffle(int(images.shape[0]), seed=seed, reshuffle_each_iteration=True)

    @tf.autograph.experimental.do_not_convert
    def lookup(index):
        return tf.gather(images, index), tf.gather(targets, index)

    return ds.map(lookup, num_parallel_calls=num_parallel_calls)


def _maybe_cache_and_shuffle(ds, cache, shuffle, seed):
    """Caches decoded examples (if asked), then shuffles them each epoch."""
    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            # After the cache, so that the cache is filled once and each epoch reshuffles.
            ds = ds.shuffle(int(ds.cardinality()), seed=seed, reshuffle_each_iteration=True)
    return ds


def _imagenet_source(
    name, split, data_dir, source, manual_dir, cache, holdout, shuffle, seed,
    num_parallel_calls
):
    """Unbatched `(uint8 image, int32 label)` for the ImageNet family (folder or TFDS)."""
    folder = None
    if data_dir is not None and source != "tfds":
        folder = imagenet.split_folder(data_dir, source_split(split))
    if name == "image_folder" or source == "folder" or folder is not None:
        if data_dir is None:
            raise ValueError(f"{name} from folders needs `data_dir`.")
        if folder is None:
            raise DatasetNotFoundError(
                f"No {split!r} folder under {data_dir}: expected {data_dir}/{split}/"
                "<class_name>/<image files> (for the validation split, 'val/' or "
                "'validation/').",
                path=data_dir,
            )
        class_names = None
        train_folder = imagenet.split_folder(data_dir, "train")
        if train_folder is not None and train_folder != folder:
            # Evaluation labels must use the training classes' indices.
            class_names = imagenet.list_class_folders(train_folder)
        # Without a cache, shuffle the (cheap) file list before decoding; with one, shuffle
        # the decoded examples after the cache (see _maybe_cache_and_shuffle).
        ds, _ = imagenet.image_folder_dataset(
            folder, class_names=class_names, shuffle=shuffle and not cache, seed=seed,
            select=lambda paths, labels: hold_out((paths, labels), split, holdout),
        )
        return _maybe_cache_and_shuffle(ds, cache, shuffle, seed)
    if holdout:
        raise ValueError(
            f"`holdout` (config.data.holdout={holdout}) needs {name}'s image folders: no "
            f"'train' folder under {data_dir} (TFDS copies cannot be split here; set "
            "config.data.source='folder' and data_dir to the folder with train/).")
    tfds_name = "imagenet2012" if name == "imagenet" else "imagenette"
    tfds_split = {"val": "validation"}.get(split, split)
    ds = imagenet.load_tfds_imagenet(
        tfds_name,
        tfds_split,
        data_dir,
        manual_dir,
        shuffle_files=shuffle and not cache,
        seed=seed,
    )
    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))
    if shuffle:
        # TFDS streams examples from shuffled shards; a bounded buffer of decoded images
        # mixes them further without holding the dataset in memory.
        ds = ds.shuffle(1000, seed=seed, reshuffle_each_iteration=True)
    return ds


# ----------------------------------------------------------------------------------------------
# Per-example transforms: fn(image, target, seed) -> (image, target)


def _small_classification_fn(tokens, finalize, max_shift, pad):
    def fn(image, label, seed):
        if tokens:
            crop_seed, shift_seed, flip_seed = aug.split_seed(seed, 3)
            if "crop" in tokens:
                image = aug.random_crop_with_padding(image, pad, crop_seed)
            if "shift" in tokens:
                image = aug.random_circular_shift(image, max_shift, shift_seed)
            if "flip" in tokens:
                image = aug.random_flip_left_right(image, flip_seed)
        return finalize(image), tf.cast(label, tf.int32)

    return fn


def _imagenet_fn(tokens, finalize, image_size, resize_size, max_shift):
    def fn(image, label, seed):
        if tokens:
            crop_seed, shift_seed = aug.split_seed(seed, 2)
            image = imagenet.preprocess_train(
                image,
                crop_seed,
                image_size=image_size,
                resize_size=resize_size,
                crop="random_resized" if "rrc" in tokens else "center",
                flip="flip" in tokens,
            )
            if "shift" in tokens:
                image = aug.random_circular_shift(image, max_shift, shift_seed)
        else:
            image = imagenet.preprocess_eval(image, image_size, resize_size)
        return finalize(image), tf.cast(label, tf.int32)

    return fn


def _segmentation_fn(tokens, finalize, crop_size, scale_range, max_shift, pad_value, pad_eval):
    def fn(image, mask, seed):
        if tokens:
            crop_seed, shift_seed = aug.split_seed(seed, 2)
            if "scale" in tokens or pad_eval:
                # Variable-size images (VOC) always need the random crop to batch; without
                # "scale" the rescale factor is 1.
                image, mask = aug.random_scale_crop_flip(
                    image,
                    mask,
                    crop_size,
                    scale_range=scale_range if "scale" in tokens else (1.0, 1.0),
                    seed=crop_seed,
                    image_pad_value=pad_value,
                    ignore_index=255,
                    flip="flip" in tokens,
                )
            elif "flip" in tokens:
                image, mask = aug.random_joint_flip_left_right(image, mask, crop_seed)
            if "shift" in tokens:
                image, mask = aug.random_joint_circular_shift(image, mask, max_shift, shift_seed)
        elif pad_eval:
            image, mask = voc.preprocess_eval(image, mask, crop_size, pad_value)
        return finalize(image), tf.cast(mask, tf.int32)

    return fn


def _regression_fn(tokens, max_shift):
    """Image-to-image pairs: the same flip and circular shift of input and target."""

    def fn(inputs, targets, seed):
        if tokens:
            flip_seed, shift_seed = aug.split_seed(seed, 2)
            if "flip" in tokens:
                inputs, targets = aug.random_joint_flip_left_right(inputs, targets, flip_seed)
            if "shift" in tokens:
                inputs, targets = aug.random_joint_circular_shift(
                    inputs, targets, max_shift, shift_seed)
        return tf.cast(inputs, tf.float32), tf.cast(targets, tf.float32)

    return fn
