"""Offline access to TensorFlow Datasets (TFDS) with readable errors.

This machine, and many training clusters, cannot download: every TFDS call here passes
`download=False` and turns TFDS's "could not find data" assertion into a
`DatasetNotFoundError` that says where TFDS looked and how to prepare the data.
"""

import os

from lps_keras.data.errors import DatasetNotFoundError


def import_tfds():
    """Imports `tensorflow_datasets` lazily (it takes about a second)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - tfds is an install requirement
        raise ImportError(
            "Loading datasets through TFDS needs the `tensorflow-datasets` package: "
            "`pip install tensorflow-datasets`."
        ) from e
    return tfds


def default_tfds_dir():
    """Where TFDS looks when no `data_dir` is given."""
    default = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    return os.environ.get("TFDS_DATA_DIR", default)


def tfds_load(name, split, data_dir=None, *, hint="", **kwargs):
    """`tfds.load(name, split=split, data_dir=data_dir, download=False, **kwargs)`.

    Args:
        name: TFDS name, e.g. `"cifar10"` or `"imagenette/320px-v2"`.
        split: TFDS split string (slicing such as `"train[:10%]"` works).
        data_dir: TFDS data directory (the one holding `<name>/<version>/`), or None for
            TFDS's default.
        hint: Extra instructions appended to the not-found message.
        **kwargs: Passed to `tfds.load` (e.g. `as_supervised=True`).

    Raises:
        DatasetNotFoundError: the dataset is not prepared in `data_dir`.
    """
    tfds = import_tfds()
    where = data_dir or default_tfds_dir()
    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False, **kwargs)
    except AssertionError as e:
        # TFDS signals "not prepared" with a bare AssertionError ("could not find data in").
        raise DatasetNotFoundError(
            f"TFDS dataset '{name}' is not prepared in {where} (download=False: this "
            f"library never downloads). Either run `tfds build {name} --data_dir={where}` "
            f"on a machine with internet access and copy {where}/{name.split('/')[0]} here, "
            f"or use a local copy of the files. {hint}".rstrip(),
            path=where,
        ) from e
