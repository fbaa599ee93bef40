"""CIFAR-10 from the official Python pickles or from TFDS, without downloading.

The official "python version" (`cifar-10-python.tar.gz` from
https://www.cs.toronto.edu/~kriz/cifar.html) extracts to a `cifar-10-batches-py` folder with
`data_batch_1` ... `data_batch_5` (10000 training images each), `test_batch` (10000) and
`batches.meta`. Each batch is a pickled dict: `b"data"` is a uint8 `[N, 3072]` array holding
the red, green and blue 32x32 planes of each image in turn, `b"labels"` a list of N ints.

Pickles can run arbitrary code when loaded, so the files are read with `RestrictedUnpickler`,
which only resolves the few NumPy globals an array needs (plus the latin-1 `bytes` encoding
of pickle protocols 0-2) and refuses everything else. It also refuses object arrays and
arrays larger than one CIFAR-10 batch, on their declared shape, before NumPy allocates them:
a file of a few bytes cannot exhaust memory.
"""

import os
import pickle

import numpy as np
import tensorflow as tf

from lps_keras.data import _tfds
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError

CIFAR10_CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_FOLDER_NAME = "cifar-10-batches-py"
CIFAR10_SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_META_FILE = "batches.meta"
_IMAGE_SHAPE = (32, 32, 3)
_ROW_SIZE = 32 * 32 * 3
_DOWNLOAD_HINT = (
    "Download the CIFAR-10 python version (cifar-10-python.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html on a machine with internet access, extract "
    f"it, and pass --data_dir=<folder containing {CIFAR10_FOLDER_NAME}> (or the "
    f"{CIFAR10_FOLDER_NAME} folder itself)."
)


# Everything the arrays of one file may hold: a genuine batch has one uint8 array of 10000
# rows of 3072 bytes (30.72 MB); `batches.meta` has none.
MAX_PICKLE_ARRAY_BYTES = 10000 * _ROW_SIZE


def _numpy_modules():
    try:
        from numpy._core import multiarray, numeric  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray, numeric
    return multiarray, numeric


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list, or called an allowed one with
    arguments a genuine file never uses."""


class RefusedArrayError(pickle.UnpicklingError):
    """A pickle asked for an array that no CIFAR-10 file holds (object dtype, or more bytes
    than `MAX_PICKLE_ARRAY_BYTES`); refused before NumPy allocates it."""


class _ArrayBudget:
    """Bytes of array memory one load may still allocate."""

    def __init__(self, limit):
        self.limit = limit
        self.used = 0

    def charge(self, shape, dtype, what):
        """Validates an array about to be allocated and charges its size.

        Raises `RefusedArrayError` for object dtypes (their elements are arbitrary Python
        objects, and an empty object array of N elements costs 8N bytes however small the
        file) and for sizes past the budget; the check runs on the declared shape, so
        nothing is allocated first.
        """
        try:
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise RefusedArrayError(f"{what}: invalid dtype {dtype!r:.100} ({e})") from None
        if dtype.hasobject:
            raise RefusedArrayError(
                f"{what}: object arrays are not allowed (CIFAR-10 pixels are uint8)"
            )
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and d >= 0 for d in shape
        ) or len(shape) > 32:
            raise RefusedArrayError(f"{what}: invalid shape {shape!r:.100}")
        nbytes = dtype.itemsize
        for d in shape:
            nbytes *= int(d)  # Python ints: no overflow
        if self.used + nbytes > self.limit:
            raise RefusedArrayError(
                f"{what}: an array of shape {tuple(int(d) for d in shape)} and dtype {dtype} "
                f"({nbytes} bytes) would take this file past {self.limit} bytes of arrays, "
                f"the most a CIFAR-10 batch holds (10000 images of {_ROW_SIZE} bytes)"
            )
        self.used += nbytes
        return dtype


class _CheckedArray(np.ndarray):
    """The `numpy.ndarray` a restricted load sees: it cannot be called directly (a genuine
    pickle only passes it to `_reconstruct`), and its `__setstate__` (the BUILD step that
    fills a reconstructed array) checks the declared shape and dtype against the load's
    budget and the data length before NumPy allocates anything."""

    def __new__(cls, *args, **kwargs):
        raise ForbiddenGlobalError(
            "calling numpy.ndarray directly is not allowed (genuine files rebuild arrays "
            "with _reconstruct)"
        )

    def __setstate__(self, state):
        budget = self.__dict__.get("_lps_budget")
        if budget is None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise RefusedArrayError("malformed array state")
        shape, dtype, rawdata = state[-4], state[-3], state[-1]
        if not isinstance(dtype, np.dtype):
            raise RefusedArrayError(f"array state: dtype is a {type(dtype).__name__}")
        dtype = budget.charge(shape, dtype, "array state")
        expected = dtype.itemsize
        for d in (shape,) if isinstance(shape, (int, np.integer)) else shape:
            expected *= int(d)
        if not isinstance(rawdata, (bytes, bytearray)) or len(rawdata) != expected:
            found = len(rawdata) if isinstance(rawdata, (bytes, bytearray)) else \
                type(rawdata).__name__
            raise RefusedArrayError(
                f"array state: expected {expected} bytes of data, found {found}"
            )
        super().__setstate__(state)


def _plain(obj, depth=0):
    """`obj` with every `_CheckedArray` in its dicts, lists and tuples viewed as a plain
    `np.ndarray` (no copy)."""
    if isinstance(obj, _CheckedArray):
        return obj.view(np.ndarray)
    if depth > 16:
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v, depth + 1) for v in obj)
    return obj


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    """`_codecs.encode` as protocols 0-2 of Python 3 use it for `bytes` (a str holding one
    character per byte, encoded with latin-1); any other use is refused."""
    if (
        not isinstance(obj, str)
        or not isinstance(encoding, str)
        or encoding.lower().replace("_", "-") not in ("latin1", "latin-1")
        or errors != "strict"
    ):
        raise ForbiddenGlobalError(
            f"'_codecs.encode' is only allowed on a str with encoding 'latin1', got a "
            f"{type(obj).__name__} with encoding {encoding!r:.40}"
        )
    return obj.encode("latin-1")


def _empty_bytes(*args):
    """`bytes()` as protocols 0-2 of Python 3 use it for `b""`; with arguments (e.g.
    `bytes(10**10)`, which allocates) it is refused."""
    if args:
        raise ForbiddenGlobalError("'bytes' is only allowed without arguments (for b'')")
    return b""


def _numpy_globals(budget):
    """The only globals a pickled CIFAR batch needs, keyed by the name a pickle uses.

    NumPy 2 moved `numpy.core` to `numpy._core`; files written by either version (and the
    Python 2 originals, which say `numpy.core.multiarray`) name one or the other. Protocol 5
    pickles (Python 3.8+ default) rebuild arrays with `_frombuffer` instead of
    `_reconstruct`. Both, and the BUILD step filling an array, are wrapped so that the
    declared shape and dtype are checked against `budget` before NumPy allocates.
    Protocols 0-2 of Python 3 store `bytes` through `_codecs.encode(str, "latin1")` (and
    `b""` as `bytes()`); only those exact uses are allowed.
    """
    multiarray, numeric = _numpy_modules()

    def reconstruct(subtype, shape, dtype):
        # `subtype` is ignored: the result is always a _CheckedArray.
        budget.charge(shape, dtype, "numpy _reconstruct")
        array = multiarray._reconstruct(_CheckedArray, shape, dtype)
        array._lps_budget = budget
        return array

    def frombuffer(buf, dtype, shape, order):
        dtype = budget.charge(shape, dtype, "numpy _frombuffer")
        if not isinstance(buf, (bytes, bytearray)):
            raise RefusedArrayError(f"numpy _frombuffer: buffer is a {type(buf).__name__}")
        array = numeric._frombuffer(buf, dtype, shape, order).view(_CheckedArray)
        array._lps_budget = budget
        return array

    allowed = {
        ("numpy", "ndarray"): _CheckedArray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("__builtin__", "bytes"): _empty_bytes,
        ("builtins", "bytes"): _empty_bytes,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only builds plain containers, bytes and bounded NumPy arrays.

    `find_class` is the single door through which a pickle reaches Python objects (functions
    such as `os.system` included); here it opens only for `numpy.ndarray`, `numpy.dtype`,
    NumPy's array reconstructors and the latin-1 `bytes` encoding of protocols 0-2.
    Builtin containers, numbers and strings need no global and load as usual.

    Guarantees: no code outside that list runs; no object-dtype array is created; the
    arrays of one load take at most `max_array_bytes` (default `MAX_PICKLE_ARRAY_BYTES`,
    one full CIFAR-10 batch), checked on the declared shape before allocation, so a tiny
    crafted file cannot make NumPy allocate gigabytes. Loaded arrays are plain
    `np.ndarray`s (see `load`).
    """

    def __init__(self, file, *, max_array_bytes=MAX_PICKLE_ARRAY_BYTES, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = _numpy_globals(_ArrayBudget(max_array_bytes))

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ForbiddenGlobalError(
                f"global '{module}.{name}' is not allowed (only NumPy arrays may be loaded)"
            ) from None

    def load(self):
        return _plain(super().load())


def restricted_pickle_load(path):
    """Loads one pickle file with `RestrictedUnpickler` and `encoding="bytes"`.

    `encoding="bytes"` keeps Python 2 `str` objects (the keys of the original CIFAR files,
    and NumPy's raw array buffers) as bytes instead of decoding them as text.

    Raises:
        CorruptDatasetError: the file references a forbidden global, is truncated, or is not
            a pickle. The message names the file.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="bytes").load()
    except RefusedArrayError as e:
        raise CorruptDatasetError(
            f"Refusing to load {path}: {e}. A genuine CIFAR-10 batch holds one uint8 array of "
            f"at most 10000 x {_ROW_SIZE}; this file is corrupt or was crafted to exhaust "
            "memory. Delete it and extract the official archive again.",
            path=path,
        ) from e
    except ForbiddenGlobalError as e:
        raise CorruptDatasetError(
            f"Refusing to load {path}: {e}. A genuine CIFAR-10 batch holds only a dict of "
            "bytes, lists and a uint8 array; this file is corrupt or was crafted to run code. "
            "Delete it and extract the official archive again.",
            path=path,
        ) from e
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
    ) as e:
        # Truncation shows up as EOFError ("Ran out of input") or as any of these, depending
        # on where the stream is cut.
        raise CorruptDatasetError(
            f"Could not unpickle {path} ({type(e).__name__}: {e}): the file is truncated or "
            "is not a CIFAR-10 python batch. Expected a pickled dict with b'data' (uint8 "
            "[N, 3072]) and b'labels' (N ints). Extract the official archive again.",
            path=path,
        ) from e


def _get(batch, key):
    # Python 2 files give bytes keys; a batch re-pickled from Python 3 may use str keys.
    if key in batch:
        return batch[key]
    return batch.get(key.decode("ascii"))


def parse_cifar10_batch(batch, path="<batch>"):
    """Validates one unpickled batch and converts it to `(images, labels)`.

    Args:
        batch: The unpickled object.
        path: File name used in error messages.

    Returns:
        uint8 `[N, 32, 32, 3]` images (NHWC) and int32 `[N]` labels in `[0, 10)`.

    Raises:
        CorruptDatasetError: anything other than the documented format.
    """
    expected = "a dict with b'data' (uint8 array [N, 3072]) and b'labels' (N ints in 0..9)"
    if not isinstance(batch, dict):
        raise CorruptDatasetError(
            f"{path}: expected {expected}, found a {type(batch).__name__}.", path=path
        )
    data, labels = _get(batch, b"data"), _get(batch, b"labels")
    if data is None or labels is None:
        keys = sorted(repr(k) for k in batch)
        raise CorruptDatasetError(
            f"{path}: expected {expected}; the dict has keys {', '.join(keys)}. (CIFAR-100 "
            "files, with b'fine_labels', are not CIFAR-10.)",
            path=path,
        )
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or (data.shape[1] != _ROW_SIZE)
    ):
        found = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise CorruptDatasetError(
            f"{path}: b'data' must be a uint8 array of shape [N, {_ROW_SIZE}] "
            f"(3 colour planes of 32x32), found a {found}.",
            path=path,
        )
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as e:  # pragma: no cover - ragged nonsense
        raise CorruptDatasetError(
            f"{path}: b'labels' is not a list of ints ({e}).", path=path
        ) from e
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise CorruptDatasetError(
            f"{path}: b'labels' must be a flat list of ints, found dtype {labels.dtype} with "
            f"shape {labels.shape}.",
            path=path,
        )
    if len(labels) != len(data):
        raise CorruptDatasetError(
            f"{path}: {len(data)} images but {len(labels)} labels; they must match.", path=path
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASS_NAMES)):
        raise CorruptDatasetError(
            f"{path}: labels must lie in [0, {len(CIFAR10_CLASS_NAMES) - 1}], found values "
            f"from {labels.min()} to {labels.max()}.",
            path=path,
        )
    # Rows are [R plane | G plane | B plane], each 32x32 row-major: CHW -> HWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def read_cifar10_batch(path):
    """Reads and validates one CIFAR-10 batch file; returns `(images, labels)`."""
    return parse_cifar10_batch(restricted_pickle_load(path), path=os.fspath(path))


def read_cifar10_class_names(folder):
    """Class names from `batches.meta` in `folder` (the standard names if it is absent)."""
    path = os.path.join(folder, CIFAR10_META_FILE)
    if not os.path.isfile(path):
        return CIFAR10_CLASS_NAMES
    meta = restricted_pickle_load(path)
    names = _get(meta, b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != len(CIFAR10_CLASS_NAMES):
        raise CorruptDatasetError(
            f"{path}: expected a dict with b'label_names' (a list of 10 names), found "
            f"{type(meta).__name__} {names!r:.200}.",
            path=path,
        )
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def find_cifar10_folder(data_dir=None):
    """Returns the `cifar-10-batches-py` folder for `data_dir`, or None if there is none.

    `data_dir` may be that folder itself or its parent. Without `data_dir`, the Keras cache
    (`~/.keras/datasets/cifar-10-batches-py`, where `keras.datasets.cifar10` extracts) is
    tried.
    """
    if data_dir is None:
        keras_cache = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
        candidates = [os.path.join(keras_cache, CIFAR10_FOLDER_NAME)]
    else:
        data_dir = os.fspath(data_dir)
        candidates = [os.path.join(data_dir, CIFAR10_FOLDER_NAME), data_dir]
    all_files = CIFAR10_SPLIT_FILES["train"] + CIFAR10_SPLIT_FILES["test"]
    for folder in candidates:
        if os.path.isdir(folder):
            if any(os.path.isfile(os.path.join(folder, f)) for f in all_files):
                return folder
    return None


def load_cifar10_folder(split, data_dir):
    """Loads a split from the official pickles; see `load_cifar10`."""
    if split not in CIFAR10_SPLIT_FILES:
        raise ValueError(
            f"CIFAR-10 python batches hold the splits 'train' and 'test'; got split={split!r}. "
            "(Slices such as 'train[:10%]' need source='tfds'.)"
        )
    if data_dir is None:
        folder = find_cifar10_folder(None)
        if folder is None:
            raise DatasetNotFoundError(
                f"No CIFAR-10 data_dir given and none in the Keras cache "
                f"(~/.keras/datasets/{CIFAR10_FOLDER_NAME}). {_DOWNLOAD_HINT}"
            )
    else:
        data_dir = os.fspath(data_dir)
        if not os.path.isdir(data_dir):
            raise DatasetNotFoundError(
                f"CIFAR-10 directory {data_dir} does not exist. {_DOWNLOAD_HINT}", path=data_dir
            )
        folder = find_cifar10_folder(data_dir) or (
            os.path.join(data_dir, CIFAR10_FOLDER_NAME)
            if os.path.isdir(os.path.join(data_dir, CIFAR10_FOLDER_NAME))
            else data_dir
        )
    files = CIFAR10_SPLIT_FILES[split]
    missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-10 {split} split: missing {', '.join(missing)} in {folder}. Expected the "
            f"extracted {CIFAR10_FOLDER_NAME} folder with data_batch_1 ... data_batch_5, "
            f"test_batch and batches.meta. {_DOWNLOAD_HINT}",
            path=folder,
        )
    parts = [read_cifar10_batch(os.path.join(folder, f)) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


def load_cifar10_tfds(split, data_dir=None):
    """Loads a split (TFDS split syntax) from a prepared TFDS `cifar10`; see `load_cifar10`."""
    ds = _tfds.tfds_load(
        "cifar10",
        split,
        data_dir,
        as_supervised=True,
        hint=f"Alternatively: {_DOWNLOAD_HINT}",
    )
    images, labels = [], []
    # Batched iteration; `batch_size=-1` in tfds.load aborts the process on TF 2.21 for
    # datasets of unknown cardinality.
    for x, y in ds.batch(4096).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not images:
        return np.zeros((0,) + _IMAGE_SHAPE, np.uint8), np.zeros((0,), np.int32)
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    if images.dtype != np.uint8 or images.shape[1:] != _IMAGE_SHAPE:
        raise CorruptDatasetError(
            f"TFDS cifar10 gave images of dtype {images.dtype} and shape {images.shape[1:]}; "
            f"expected uint8 {_IMAGE_SHAPE}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASS_NAMES)):
        raise CorruptDatasetError(
            f"TFDS cifar10 gave labels from {labels.min()} to {labels.max()}; expected 0..9."
        )
    return images, labels.astype(np.int32)


def load_cifar10(split="train", data_dir=None, source="auto"):
    """Loads CIFAR-10 as NumPy arrays, from local files only.

    Args:
        split: `"train"` (50000 images) or `"test"` (10000). With `source="tfds"` any TFDS
            split string works (e.g. `"train[:5000]"`).
        data_dir: For `"folder"`: the `cifar-10-batches-py` folder or its parent (default:
            the Keras cache `~/.keras/datasets`). For `"tfds"`: the TFDS data directory
            (default: TFDS's own, `~/tensorflow_datasets`).
        source: `"folder"` (official pickles), `"tfds"` (a prepared TFDS `cifar10`), or
            `"auto"`: the pickles if found, else TFDS.

    Returns:
        `(images, labels)`: uint8 `[N, 32, 32, 3]` and int32 `[N]`.

    Raises:
        DatasetNotFoundError: the data is not where it was looked for (the message says
            where and how to get it).
        CorruptDatasetError: a file is truncated, malicious or of the wrong shape.
    """
    if source == "folder":
        return load_cifar10_folder(split, data_dir)
    if source == "tfds":
        return load_cifar10_tfds(split, data_dir)
    if source != "auto":
        raise ValueError(f"`source` must be 'auto', 'folder' or 'tfds', got {source!r}.")
    if split in CIFAR10_SPLIT_FILES and find_cifar10_folder(data_dir) is not None:
        return load_cifar10_folder(split, data_dir)
    try:
        return load_cifar10_tfds(split, data_dir)
    except DatasetNotFoundError as e:
        where = data_dir if data_dir is not None else f"~/.keras/datasets/{CIFAR10_FOLDER_NAME}"
        raise DatasetNotFoundError(
            f"CIFAR-10 not found: no {CIFAR10_FOLDER_NAME} folder with data_batch_1 ... "
            f"data_batch_5 and test_batch at {where}, and {e}",
            path=data_dir,
        ) from e


def cifar10_dataset(split="train", data_dir=None, source="auto"):
    """CIFAR-10 as an unbatched `tf.data.Dataset` of `(uint8 [32, 32, 3], int32 [])`."""
    images, labels = load_cifar10(split, data_dir=data_dir, source=source)
    return tf.data.Dataset.from_tensor_slices((images, labels))
