"""CIFAR-10 loading from the official pickles (and TFDS), with hostile and broken inputs."""

import os
import pickle
import pickletools

import numpy as np
import pytest
import tensorflow as tf

from lps_keras.data import cifar
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError


def test_fixture_is_python2_format(cifar_dir):
    # Guard on the fixture itself: it must look like the real (Python 2) files.
    path = os.path.join(cifar_dir, "cifar-10-batches-py", "data_batch_1")
    with open(path, "rb") as f:
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(f.read())]
    names = {name for name, _ in ops}
    assert ("PROTO", 2) in ops
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in ops
    assert "SHORT_BINSTRING" in names and not names & {"BINUNICODE", "SHORT_BINBYTES"}
    with pytest.raises(UnicodeDecodeError):
        # Python 3's default ASCII decoding fails on the raw pixel string, as with the
        # real files; hence encoding="bytes".
        with open(path, "rb") as f:
            pickle.load(f)


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_folder_pixels_and_labels(cifar_dir, cifar_arrays, split):
    images, labels = cifar.load_cifar10(split, data_dir=cifar_dir, source="folder")
    expected_images, expected_labels = cifar_arrays[split]
    assert images.dtype == np.uint8 and images.shape == expected_images.shape
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_rows_are_channel_major_planes(tmp_path, helpers):
    # A hand-made row: red plane 10, green plane 20, blue plane 30, and one marked pixel at
    # (row 2, column 5) in the green plane. Checks the layout independently of cifar_rows.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)])
    row[1024 + 2 * 32 + 5] = 99
    batch = {b"data": row[None].astype(np.uint8), b"labels": [7]}
    path = tmp_path / "one_batch"
    path.write_bytes(helpers.py2_style_pickle(batch))
    images, labels = cifar.read_cifar10_batch(path)
    assert images.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(images[0, 0, 0], [10, 20, 30])
    np.testing.assert_array_equal(images[0, 2, 5], [10, 99, 30])
    assert (images[0, :, :, 0] == 10).all() and (images[0, :, :, 2] == 30).all()
    assert labels.tolist() == [7]


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_python3_pickles_load_too(tmp_path, cifar_arrays, helpers, protocol):
    # Protocol 5 rebuilds arrays with numpy's _frombuffer, 3 and 4 with _reconstruct.
    helpers.write_cifar_folder(str(tmp_path), cifar_arrays, protocol=protocol)
    images, labels = cifar.load_cifar10("test", data_dir=tmp_path, source="folder")
    np.testing.assert_array_equal(images, cifar_arrays["test"][0])
    np.testing.assert_array_equal(labels, cifar_arrays["test"][1])


def test_data_dir_may_be_the_batches_folder(cifar_dir, cifar_arrays):
    folder = os.path.join(cifar_dir, "cifar-10-batches-py")
    images, _ = cifar.load_cifar10("test", data_dir=folder)
    np.testing.assert_array_equal(images, cifar_arrays["test"][0])


def test_class_names_from_meta(cifar_dir):
    names = cifar.read_cifar10_class_names(os.path.join(cifar_dir, "cifar-10-batches-py"))
    assert names == cifar.CIFAR10_CLASS_NAMES
    assert names[0] == "airplane" and names[9] == "truck"


def test_cifar10_dataset_matches_arrays(cifar_dir, cifar_arrays):
    ds = cifar.cifar10_dataset("test", data_dir=cifar_dir)
    assert ds.element_spec[0].dtype == tf.uint8 and ds.element_spec[1].dtype == tf.int32
    got = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([g[0] for g in got]), cifar_arrays["test"][0])
    assert [int(g[1]) for g in got] == cifar_arrays["test"][1].tolist()


# ------------------------------------------------------------------------------------------
# Hostile and broken files


class _RunsShellCommand:
    """Unpickling this calls os.system: the classic pickle exploit."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_malicious_pickle_is_rejected_without_running(tmp_path, cifar_dir):
    marker = tmp_path / "pwned"
    path = os.path.join(cifar_dir, "cifar-10-batches-py", "data_batch_2")
    payload = {b"data": _RunsShellCommand(marker), b"labels": [0]}
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=4)
    with pytest.raises(CorruptDatasetError) as info:
        cifar.load_cifar10("train", data_dir=cifar_dir)
    message = str(info.value)
    assert path in message and "system" in message and "not allowed" in message
    assert info.value.path == path
    assert not marker.exists()
    # Sanity check of the test itself: an unrestricted load would have run the command.
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_builtins_eval_is_rejected(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps(_CallsEval()))
    with pytest.raises(CorruptDatasetError, match=r"builtins\.eval"):
        cifar.restricted_pickle_load(path)


def test_truncated_file(cifar_dir):
    path = os.path.join(cifar_dir, "cifar-10-batches-py", "test_batch")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CorruptDatasetError) as info:
        cifar.load_cifar10("test", data_dir=cifar_dir)
    message = str(info.value)
    assert path in message and "truncated" in message and "b'data'" in message


def test_not_a_pickle(cifar_dir):
    path = os.path.join(cifar_dir, "cifar-10-batches-py", "test_batch")
    with open(path, "wb") as f:
        f.write(b"<html>404 Not Found</html>")
    with pytest.raises(CorruptDatasetError, match="test_batch"):
        cifar.load_cifar10("test", data_dir=cifar_dir)


def test_wrong_data_shape(tmp_path, cifar_dir, helpers):
    path = os.path.join(cifar_dir, "cifar-10-batches-py", "test_batch")
    batch = {b"data": np.zeros((4, 1024), np.uint8), b"labels": [0, 1, 2, 3]}
    with open(path, "wb") as f:
        f.write(helpers.py2_style_pickle(batch))
    with pytest.raises(CorruptDatasetError) as info:
        cifar.load_cifar10("test", data_dir=cifar_dir)
    message = str(info.value)
    assert path in message and "[N, 3072]" in message and "(4, 1024)" in message


def test_wrong_dtype(tmp_path, helpers):
    path = tmp_path / "batch"
    path.write_bytes(
        helpers.py2_style_pickle({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]})
    )
    with pytest.raises(CorruptDatasetError, match="float32"):
        cifar.read_cifar10_batch(path)


def test_label_count_and_range(tmp_path, helpers):
    path = tmp_path / "batch"
    path.write_bytes(
        helpers.py2_style_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    )
    with pytest.raises(CorruptDatasetError, match="2 images but 1 labels"):
        cifar.read_cifar10_batch(path)
    path.write_bytes(
        helpers.py2_style_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    )
    with pytest.raises(CorruptDatasetError, match=r"\[0, 9\].*from 0 to 10"):
        cifar.read_cifar10_batch(path)


def test_cifar100_file_is_explained(tmp_path, helpers):
    path = tmp_path / "train"
    path.write_bytes(
        helpers.py2_style_pickle(
            {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [3], b"coarse_labels": [1]}
        )
    )
    with pytest.raises(CorruptDatasetError, match="CIFAR-100"):
        cifar.read_cifar10_batch(path)


def test_missing_directory(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError) as info:
        cifar.load_cifar10("train", data_dir=missing, source="folder")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert missing in message and "does not exist" in message
    assert "cifar-10-python.tar.gz" in message and "--data_dir" in message


def test_missing_batch_file(cifar_dir):
    folder = os.path.join(cifar_dir, "cifar-10-batches-py")
    os.remove(os.path.join(folder, "data_batch_3"))
    with pytest.raises(DatasetNotFoundError) as info:
        cifar.load_cifar10("train", data_dir=cifar_dir)
    message = str(info.value)
    assert "data_batch_3" in message and folder in message
    assert "data_batch_1" in message  # lists the expected files
    # The test split is unaffected.
    assert len(cifar.load_cifar10("test", data_dir=cifar_dir)[0]) == 6


def test_unknown_split_and_source(cifar_dir):
    with pytest.raises(ValueError, match="'train' and 'test'"):
        cifar.load_cifar10("validation", data_dir=cifar_dir, source="folder")
    with pytest.raises(ValueError, match="source"):
        cifar.load_cifar10("train", data_dir=cifar_dir, source="internet")


# ------------------------------------------------------------------------------------------
# TFDS route


def test_tfds_route_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        images, labels = cifar.load_cifar10("train", data_dir=str(tmp_path), source="tfds")
        # "auto" falls back to TFDS when there is no pickle folder.
        auto_images, _ = cifar.load_cifar10("test", data_dir=str(tmp_path), source="auto")
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (5,) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() <= 9
    assert auto_images.shape == (5, 32, 32, 3)


def test_tfds_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetNotFoundError) as info:
        cifar.load_cifar10("train", data_dir=str(tmp_path), source="tfds")
    message = str(info.value)
    assert "cifar10" in message and str(tmp_path) in message and "not prepared" in message
    assert "cifar-10-python.tar.gz" in message


def test_auto_reports_both_places(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetNotFoundError) as info:
        cifar.load_cifar10("train", data_dir=str(tmp_path))
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "TFDS" in message
