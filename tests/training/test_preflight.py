"""Every config in configs/ passes the pre-training checks against generated data.

`Trainer.check` runs what `train.py` checks before its first step: the settings, one
training batch, the model and optimizer, the run's evaluation path on two examples and the
export settings. The data is written by the test in each dataset's on-disk layout, with
just enough images for one training batch of the config. Deep backbones are swapped for
ResNet-18 and the evaluation batch is capped at 2 images (the check pads its two
examples to a full evaluation batch) to keep the suite fast; every other setting is the
config's own.
"""

import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from lps_keras.errors import ConfigError
from lps_keras.training import preflight
from lps_keras.training.trainer import Trainer
from tests.test_configs import CONFIGS, fast_variant, load


def _images(rng, count, height, width):
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def write_cifar10(root, num_train, rng):
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    per_batch = -(-num_train // 5)

    def batch(name, count):
        rows = _images(rng, count, 32, 32).transpose(0, 3, 1, 2).reshape(count, 3072)
        content = {b"data": rows, b"labels": rng.integers(0, 10, count).tolist()}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(content, f, protocol=4)

    for i in range(5):
        batch(f"data_batch_{i + 1}", per_batch)
    batch("test_batch", 4)
    return root


def write_image_folder(root, num_train, rng, splits=("train", "val")):
    for split in splits:
        count = num_train if split == "train" else 4
        for k, image in enumerate(_images(rng, count, 20, 24)):
            folder = os.path.join(root, split, f"class{k % 2}")
            os.makedirs(folder, exist_ok=True)
            tf.io.write_file(os.path.join(folder, f"{k}.png"), tf.io.encode_png(image))
    return root


def write_voc(root, num_train, rng):
    from PIL import Image

    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(os.path.join(voc, sub))
    ids = {"train": [f"2007_{k:06d}" for k in range(num_train)],
           "val": [f"2008_{k:06d}" for k in range(2)]}
    for split, names in ids.items():
        for name in names:
            image = _images(rng, 1, 24, 28)[0]
            tf.io.write_file(os.path.join(voc, "JPEGImages", f"{name}.jpg"),
                             tf.io.encode_jpeg(image))
            mask = Image.fromarray(rng.integers(0, 21, (24, 28)).astype(np.uint8), mode="P")
            mask.putpalette([v for k in range(256) for v in (k, k, k)])
            mask.save(os.path.join(voc, "SegmentationClass", f"{name}.png"))
        with open(os.path.join(voc, "ImageSets", "Segmentation", f"{split}.txt"), "w") as f:
            f.write("\n".join(names) + "\n")
    return root


def write_fastmri(root, batch_size, rng, side=40):
    """fastMRI single-coil volumes (HDF5, the real layout) with one batch of slices per
    split; the configs' checks crop them to 32x32 (`checked_config`)."""
    import h5py

    from lps_keras.data import fastmri, mri

    for split, folder in fastmri.FASTMRI_SPLIT_FOLDERS.items():
        os.makedirs(os.path.join(root, folder))
        images = rng.uniform(0.5, 1.0, (batch_size, side, side)).astype(np.complex64)
        kspace = np.asarray(mri.fft2c(images)).astype(np.complex64)
        with h5py.File(os.path.join(root, folder, f"file_{split}.h5"), "w") as f:
            f["kspace"] = kspace
            f["reconstruction_esc"] = np.abs(images[:, 4:36, 4:36]).astype(np.float32)
    return root


WRITERS = {"cifar10": write_cifar10, "imagenet": write_image_folder, "voc": write_voc,
           "fastmri": write_fastmri}


def checked_config(name, tmp_path):
    config = load(name)
    small = fast_variant(config.model)
    for key in ("depth", "backbone", "channels"):
        if key in small:
            config.model[key] = small[key]
    if config.data.name == "fastmri":
        config.data.crop_size = 32
    config.eval.batch_size = min(config.eval.batch_size, 2)
    config.export.dir = str(tmp_path / "exports")
    writer = WRITERS.get(config.data.name)
    if writer is not None:
        rng = np.random.default_rng(0)
        config.data.data_dir = writer(str(tmp_path / "data"), config.train.batch_size, rng)
    return config


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_passes_the_checks_before_training(name, tmp_path):
    config = checked_config(name, tmp_path)
    trainer = Trainer(config, str(tmp_path / "run"), tf.distribute.get_strategy())
    built = trainer.check()
    assert built.steps >= 1
    assert os.path.isdir(tmp_path / "exports")  # proved writable, nothing exported in it
    assert os.listdir(tmp_path / "exports") == []
    assert not (tmp_path / "run").exists()


def test_a_missing_evaluation_split_is_found_before_training(tmp_path):
    # The training folder is there, the validation folder is not: only reading the
    # evaluation data finds that, so the check runs the evaluation path.
    config = load("imagenet_resnet18_lps.py")
    config.data.source = "folder"
    config.eval.batch_size = 8
    config.data.data_dir = write_image_folder(str(tmp_path / "data"), 256,
                                              np.random.default_rng(0), splits=("train",))
    config.export.dir = str(tmp_path / "exports")
    trainer = Trainer(config, str(tmp_path / "run"), tf.distribute.get_strategy())
    with pytest.raises(FileNotFoundError, match="No 'validation' folder under"):
        trainer.check()


def test_the_setting_context_names_the_setting():
    with pytest.raises(ConfigError, match=r"^config\.model: bad depth$"):
        with preflight.setting("config.model"):
            raise ValueError("bad depth")
    with pytest.raises(KeyError):  # not a setting problem: passes through
        with preflight.setting("config.model"):
            raise KeyError("x")
