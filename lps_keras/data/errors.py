"""Exceptions raised by the data loaders.

Both carry a message written for the person at the keyboard: what was looked for, where, and
how to get it. They subclass the built-in exceptions that generic code already catches
(`FileNotFoundError` for absent data, `ValueError` for unreadable data).
"""

import codecs
import os
import re


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk (or not prepared for TFDS) where it was looked for.

    Args:
        message: What is missing and how to obtain it.
        path: The main path that was searched, if any (kept as `.path`).
    """

    def __init__(self, message, path=None):
        # A single argument keeps `str(error) == message` (OSError formats 2+ args as
        # "[Errno ...]", which would bury the instructions).
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class CorruptDatasetError(ValueError):
    """A dataset file exists but does not hold what the format promises.

    Args:
        message: What was expected, what was found, and in which file.
        path: The offending file, if any (kept as `.path`).
    """

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)

    @classmethod
    def from_tf_error(cls, error):
        """The `CorruptDatasetError` carried by a `tf.errors.OpError` from a pipeline, or None.

        Checks inside `tf.data` pipelines (such as the image signature check of
        `imagenet.decode_image_file`) can only fail with a TensorFlow error; this recovers
        the message and the file it names.
        """
        from lps_keras.data.imagenet import CORRUPT_IMAGE_MESSAGE, CORRUPT_IMAGE_REASON

        pattern = f"{re.escape(CORRUPT_IMAGE_MESSAGE)} (.*?){re.escape(CORRUPT_IMAGE_REASON)}"
        match = re.search(pattern, str(error), re.S)
        if match is None:
            return None
        # TF prints the path C-escaped (a quote as \\', non-ASCII bytes in octal).
        raw = codecs.escape_decode(match.group(1).encode("utf-8"))[0]
        path = raw.decode("utf-8", "surrogateescape")
        return cls(f"{CORRUPT_IMAGE_MESSAGE} {path}{CORRUPT_IMAGE_REASON}", path=path)
