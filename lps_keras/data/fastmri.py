"""The fastMRI single-coil knee data as `(zero-filled input, target)` pairs.

Layout (the official archives unpacked under one folder):

    <data_dir>/singlecoil_train/*.h5    (split "train")
    <data_dir>/singlecoil_val/*.h5      (split "validation")

Each HDF5 file is one volume: dataset `kspace` (complex, `[slices, H, W]`, centred, e.g.
640x368), dataset `reconstruction_esc` (float32 `[slices, 320, 320]`, the target) and
attributes (`max`, `norm`, `acquisition`, `patient_id`, ...; not used here).

Every slice becomes one example, processed as fastMRI's `UnetDataTransform` does for the
APS-U MRI experiments (acceleration 4, centre fraction 0.08, random masks):

1. mask the k-space columns (last axis) with `mri.random_mask`;
2. zero-filled image `mri.ifft2c(kspace * mask)`, complex centre crop to
   `crop_size x crop_size` (320), magnitude;
3. instance-normalise the input and normalise the target slice (centre-cropped to the same
   size) with the input's mean/std, both clamped to `[-6, 6]` (`mri.normalized_pair`).

A volume whose image (or target) is smaller than `crop_size` in a dimension is cropped to
`min(crop_size, image, target)` in that dimension (fastMRI's transform shrinks such crops
too, to a `W x W` square); its examples are then smaller than the others' and cannot be
batched with them (single-coil knee volumes are all 640x368 with 320x320 targets, so this
does not happen there). When all volumes give the same crop, the dataset's element shape is
static (`[crop, crop, 1]`).

Masks: for evaluation (`random_masks=False`, the default for validation) the mask of a
volume is seeded by its file name, `tuple(map(ord, file_name))`, as fastMRI does, so every
slice of a volume uses the same mask and every run sees the same masks. For training
(`random_masks=True`) each example draws a new mask from a seeded per-element stream: new
masks every epoch, repeated exactly by a rerun with the same `seed`.

Files are read lazily, one slice at a time (`tf.numpy_function` over `(file, slice)`
pairs), so the data never has to fit in memory; the file structure (keys, ranks, slice
counts) is checked up front, when the dataset is built, so that a bad file fails before
training starts.
"""

import collections
import os

import h5py
import numpy as np
import tensorflow as tf

from lps_keras.data import augment as aug
from lps_keras.data import mri
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError

__all__ = [
    "FASTMRI_CROP_SIZE",
    "FASTMRI_SPLIT_FOLDERS",
    "VolumeInfo",
    "fastmri_dataset",
    "list_fastmri_volumes",
    "volume_mask_seed",
]

FASTMRI_SPLIT_FOLDERS = {"train": "singlecoil_train", "validation": "singlecoil_val"}
FASTMRI_CROP_SIZE = 320
ACCELERATION = 4
CENTER_FRACTION = 0.08
KSPACE_KEY = "kspace"
TARGET_KEY = "reconstruction_esc"

_LAYOUT = ("<data_dir>/singlecoil_train/*.h5 and <data_dir>/singlecoil_val/*.h5 (the fastMRI "
           "single-coil knee archives unpacked), each file holding 'kspace' [slices, H, W] "
           "and 'reconstruction_esc' [slices, 320, 320]")


VolumeInfo = collections.namedtuple("VolumeInfo", "path num_slices kspace_shape target_shape")
VolumeInfo.__doc__ = """A checked volume file: its path, number of slices, and the `(H, W)` of
one k-space slice and of one target slice."""


def volume_mask_seed(path):
    """The mask seed of a volume for evaluation: `tuple(map(ord, basename(path)))`."""
    return tuple(map(ord, os.path.basename(os.fspath(path))))


def _check_volume(path):
    """Opens `path`, checks its structure (shapes only) and returns its `VolumeInfo`."""
    advice = ("Re-download or re-extract it from the fastMRI archive, or remove it from the "
              "folder.")
    if not h5py.is_hdf5(path):
        raise CorruptDatasetError(
            f"{path} is not an HDF5 file (a fastMRI volume is an HDF5 file with 'kspace' and "
            f"'{TARGET_KEY}'). {advice}", path=path)
    try:
        with h5py.File(path, "r") as f:
            shapes, dtypes = {}, {}
            for key in (KSPACE_KEY, TARGET_KEY):
                if key not in f or not isinstance(f[key], h5py.Dataset):
                    raise CorruptDatasetError(
                        f"{path} has no '{key}' dataset (found: {sorted(f.keys())}); a fastMRI "
                        f"single-coil volume holds 'kspace' [slices, H, W] and '{TARGET_KEY}' "
                        f"[slices, 320, 320]. {advice}", path=path)
                shapes[key], dtypes[key] = f[key].shape, f[key].dtype
    except OSError as e:
        raise CorruptDatasetError(f"Cannot read the HDF5 file {path} ({e}). {advice}",
                                  path=path) from None
    for key, shape in shapes.items():
        if len(shape) != 3 or min(shape) < 1:
            raise CorruptDatasetError(
                f"{path}: '{key}' has shape {shape}; expected 3 non-empty dimensions "
                f"[slices, H, W] (single-coil data; multi-coil files have 4). {advice}",
                path=path)
    if dtypes[KSPACE_KEY].kind != "c":
        raise CorruptDatasetError(
            f"{path}: 'kspace' has dtype {dtypes[KSPACE_KEY]}; expected complex k-space. "
            f"{advice}", path=path)
    if dtypes[TARGET_KEY].kind not in "fiu":
        raise CorruptDatasetError(
            f"{path}: '{TARGET_KEY}' has dtype {dtypes[TARGET_KEY]}; expected real images. "
            f"{advice}", path=path)
    k, t = shapes[KSPACE_KEY], shapes[TARGET_KEY]
    if k[0] != t[0]:
        raise CorruptDatasetError(
            f"{path}: 'kspace' has {k[0]} slices but '{TARGET_KEY}' has {t[0]}; expected one "
            f"target per k-space slice. {advice}", path=path)
    return VolumeInfo(os.fspath(path), int(k[0]), tuple(k[1:]), tuple(t[1:]))


def list_fastmri_volumes(data_dir, split):
    """The checked volumes of a split, sorted by file name.

    Every file is opened once to read its structure (no pixel data).

    Raises:
        ValueError: unknown split.
        DatasetNotFoundError: `data_dir` or the split folder missing, or no `.h5` files
            in it (the message names the folder and the expected layout).
        CorruptDatasetError: a file that is not HDF5, lacks `kspace` or
            `reconstruction_esc`, or whose shapes do not match (names the file).
    """
    if split not in FASTMRI_SPLIT_FOLDERS:
        raise ValueError(f"Unknown split {split!r} for fastmri; valid splits: "
                         f"{', '.join(FASTMRI_SPLIT_FOLDERS)}.")
    if data_dir is None:
        raise DatasetNotFoundError(
            f"fastmri needs data_dir (config.data.data_dir, --data_dir): the folder laid out "
            f"as {_LAYOUT}.")
    data_dir = os.path.expanduser(os.fspath(data_dir))
    folder = os.path.join(data_dir, FASTMRI_SPLIT_FOLDERS[split])
    if not os.path.isdir(folder):
        where = ("the data_dir itself does not exist" if not os.path.isdir(data_dir)
                 else f"{data_dir} exists but has no {FASTMRI_SPLIT_FOLDERS[split]}/ folder")
        raise DatasetNotFoundError(
            f"fastmri {split!r}: no folder {folder} ({where}). Expected {_LAYOUT}.",
            path=folder)
    names = sorted(n for n in os.listdir(folder)
                   if n.endswith(".h5") and not n.startswith(".")
                   and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise DatasetNotFoundError(
            f"fastmri {split!r}: {folder} holds no .h5 files. Expected {_LAYOUT}.", path=folder)
    return [_check_volume(os.path.join(folder, n)) for n in names]


def _crop_of(volume, crop_size):
    (kh, kw), (th, tw) = volume.kspace_shape, volume.target_shape
    return min(crop_size, kh, th), min(crop_size, kw, tw)


def _read_slice(path, index, mask_seed, random_masks, acceleration, center_fraction):
    """NumPy side: one slice's k-space, target and mask (runs in `tf.numpy_function`)."""
    path = path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else str(path)
    with h5py.File(path, "r") as f:
        kspace = np.asarray(f[KSPACE_KEY][int(index)], np.complex64)
        target = np.asarray(f[TARGET_KEY][int(index)], np.float32)
    if random_masks:
        seed = np.asarray(mask_seed).astype(np.int64).view(np.uint64).tolist()
    else:
        seed = volume_mask_seed(path)
    mask = mri.random_mask(kspace.shape[-1], acceleration, center_fraction, seed=seed)
    return kspace, target, mask


def fastmri_dataset(data_dir, split, *, crop_size=FASTMRI_CROP_SIZE, random_masks=None,
                    shuffle=False, seed=0, acceleration=ACCELERATION,
                    center_fraction=CENTER_FRACTION, num_parallel_calls=tf.data.AUTOTUNE):
    """Unbatched `tf.data.Dataset` of `(input, target)`, float32 `[crop, crop, 1]` each.

    Args:
        data_dir: The folder holding `singlecoil_train/` and `singlecoil_val/`.
        split: `"train"` or `"validation"`.
        crop_size: Side of the centre crop of input and target (320, fastMRI's).
        random_masks: New random masks per example and epoch (True) or one fixed mask per
            volume seeded by its file name (False). Default: True for `"train"`.
        shuffle: Shuffle the slices every epoch.
        seed: Seed of the shuffle and of the random masks (None: not reproducible).
        acceleration, center_fraction: The mask parameters (4 and 0.08, as APS-U).
        num_parallel_calls: Parallelism of the slice reads and transforms.

    Examples are in file-name order, slices in order, unless shuffled. The dataset's
    cardinality is the total number of slices.

    Raises:
        DatasetNotFoundError, CorruptDatasetError: see `list_fastmri_volumes`.
    """
    crop_size = int(crop_size)
    if crop_size < 1:
        raise ValueError(f"`crop_size` must be a positive int, got {crop_size}.")
    volumes = list_fastmri_volumes(data_dir, split)
    if random_masks is None:
        random_masks = split == "train"
    paths = [v.path for v in volumes for _ in range(v.num_slices)]
    indices = [i for v in volumes for i in range(v.num_slices)]
    crops = [_crop_of(v, crop_size) for v in volumes for _ in range(v.num_slices)]
    crop_set = set(crops)
    static = crop_set.pop() if len(crop_set) == 1 else (None, None)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths), tf.constant(indices, tf.int64), tf.constant(crops, tf.int32)))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if random_masks:
        mask_seed = None if seed is None else int(seed) + 1_000_003
        ds = tf.data.Dataset.zip((ds, aug.element_seeds(mask_seed)))
    else:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensors(
            tf.zeros([2], tf.int64)).repeat()))
    options = (bool(random_masks), float(acceleration), float(center_fraction))

    @tf.autograph.experimental.do_not_convert
    def load(item, mask_seed):
        path, index, crop = item
        kspace, target, mask = tf.numpy_function(
            lambda p, i, s: _read_slice(p, i, s, *options), [path, index, mask_seed],
            [tf.complex64, tf.float32, tf.float32], stateful=False)
        kspace.set_shape([None, None])
        target.set_shape([None, None])
        mask.set_shape([None])
        image = mri.complex_center_crop(mri.ifft2c(kspace * tf.cast(mask, tf.complex64)),
                                        (crop[0], crop[1]))
        image, target = mri.normalized_pair(tf.abs(image),
                                            mri.center_crop(target, (crop[0], crop[1])))
        image = tf.ensure_shape(image[..., None], [static[0], static[1], 1])
        target = tf.ensure_shape(target[..., None], [static[0], static[1], 1])
        return image, target

    ds = ds.map(load, num_parallel_calls=num_parallel_calls)
    return ds.apply(tf.data.experimental.assert_cardinality(len(paths)))
