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


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_python3_pickles_load_too(tmp_path, cifar_arrays, helpers, protocol):
    # Protocol 5 rebuilds arrays with numpy's _frombuffer, 0 to 4 with _reconstruct; 0 to
    # 2 store bytes (keys, labels, the pixel buffer) as _codecs.encode(str, "latin1").
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


def test_python3_protocol2_batch_round_trips(tmp_path, cifar_arrays, helpers):
    # A batch re-pickled with pickle.dumps(batch, protocol=2) (values: arrays and bytes,
    # b"" included, which protocol 2 writes as bytes()) loads to the same arrays.
    images, labels = cifar_arrays["test"]
    batch = {b"data": helpers.cifar_rows(images), b"labels": labels.tolist(),
             b"batch_label": b"testing batch 1 of 1", b"empty": b""}
    path = tmp_path / "p2"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    loaded = cifar.restricted_pickle_load(path)
    assert loaded[b"batch_label"] == b"testing batch 1 of 1" and loaded[b"empty"] == b""
    assert type(loaded[b"data"]) is np.ndarray
    got_images, got_labels = cifar.read_cifar10_batch(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


class _Call:
    """Pickles as a call of `fn(*args)` (then `__setstate__(state)` if given)."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray
    return multiarray


def _numeric():
    try:
        from numpy._core import numeric
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import numeric
    return numeric


@pytest.mark.parametrize("payload", [
    "_codecs.encode(b, latin1)", "_codecs.encode(s, rot13)", "bytes(10**9)"])
def test_protocol2_helpers_only_do_what_bytes_need(tmp_path, payload):
    import _codecs

    call = {
        "_codecs.encode(b, latin1)": _Call(_codecs.encode, b"x", "latin1"),
        "_codecs.encode(s, rot13)": _Call(_codecs.encode, "x", "rot13"),
        "bytes(10**9)": _Call(bytes, 10**9),
    }[payload]
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": call}, protocol=2))
    with pytest.raises(CorruptDatasetError, match="only allowed") as info:
        cifar.restricted_pickle_load(path)
    assert str(path) in str(info.value)


def _crafted(tmp_path, value):
    path = tmp_path / "crafted"
    path.write_bytes(pickle.dumps({b"data": value, b"labels": []}, protocol=4))
    return path


def _peak_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_object_array_bomb_is_refused_before_allocating(tmp_path):
    # A 160-byte file asking _reconstruct for 2e7 object elements (160 MB of None pointers;
    # 2e8 took 1.5 GB and 3.5 s before the check on the content could refuse it).
    multiarray = _multiarray()
    path = _crafted(tmp_path, _Call(multiarray._reconstruct, np.ndarray, (20_000_000,), "O"))
    assert path.stat().st_size < 200

    def load():
        with pytest.raises(CorruptDatasetError, match="object arrays are not allowed") as info:
            cifar.restricted_pickle_load(path)
        assert str(path) in str(info.value) and "exhaust memory" in str(info.value)

    assert _peak_bytes(load) < 5_000_000
    # The measurement sees NumPy's allocations: an unrestricted load does allocate.
    with open(path, "rb") as f:
        assert _peak_bytes(lambda: pickle.load(f, encoding="bytes")) > 150_000_000


@pytest.mark.parametrize("case, message", [
    ("huge uint8", "past 30720000 bytes"), ("huge dtype", "past 30720000 bytes"),
    ("object state", "object arrays"), ("huge state", "past 30720000 bytes"),
    ("many arrays", "past 30720000 bytes"), ("ndarray call", "directly is not allowed"),
    ("frombuffer", "object arrays")])
def test_oversized_or_object_arrays_are_refused(tmp_path, case, message):
    multiarray = _multiarray()
    rec = multiarray._reconstruct
    big = (2**31 - 1,)  # 2 GB of uint8: refused on the declared shape, never allocated
    value = {
        "huge uint8": _Call(rec, np.ndarray, big, "u1"),
        "huge dtype": _Call(rec, np.ndarray, (1,), np.dtype(("u1", (2**31 - 1,)))),
        "object state": _Call(rec, np.ndarray, (0,), "b",
                              state=(1, (3,), np.dtype("O"), False, [1, 2, 3])),
        "huge state": _Call(rec, np.ndarray, (0,), "b",
                            state=(1, big, np.dtype("u1"), False, b"")),
        # Each within the limit, together past it (one batch is 30.72 MB).
        "many arrays": [_Call(rec, np.ndarray, (8_000_000,), "u1") for _ in range(5)],
        "ndarray call": _Call(np.ndarray, big, "u1"),
        "frombuffer": _Call(_numeric()._frombuffer, b"", np.dtype("O"), (0,), "C"),
    }[case]
    path = _crafted(tmp_path, value)
    def load():
        with pytest.raises(CorruptDatasetError, match=message):
            cifar.restricted_pickle_load(path)

    assert _peak_bytes(load) < 50_000_000
