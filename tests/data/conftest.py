"""Fixtures that write small datasets in their real on-disk formats."""

import os
import pickle
import pickletools
import types

import numpy as np
import pytest
import tensorflow as tf

# --------------------------------------------------------------------------------------------
# CIFAR-10 python pickles


def py2_style_pickle(obj):
    """Pickles `obj` the way Python 2's cPickle wrote the official CIFAR-10 batches.

    Python 3 cannot write Python 2 `str` opcodes, so this pickles with protocol 3 and
    rewrites the opcodes: every bytes/str becomes a Python 2 string (SHORT_BINSTRING /
    BINSTRING, same layout as SHORT_BINBYTES / BINBYTES / BINUNICODE), the header says
    protocol 2, and NumPy globals use the old `numpy.core` module name. Loading the result
    needs `encoding="bytes"`, exactly like the real files.
    """
    raw = bytearray(pickle.dumps(obj, protocol=3))
    replace = {"SHORT_BINBYTES": b"U", "BINBYTES": b"T", "BINUNICODE": b"T"}
    for op, _, pos in pickletools.genops(bytes(raw)):
        if op.name in replace:
            raw[pos : pos + 1] = replace[op.name]
        elif op.name == "PROTO":
            raw[pos + 1] = 2
        elif op.name == "SHORT_BINUNICODE":  # pragma: no cover - protocol 4 only
            raise AssertionError("unexpected protocol-4 opcode")
    return bytes(raw).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_rows(images):
    """NHWC uint8 images -> CIFAR rows (R plane, G plane, B plane, each row-major)."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_cifar_batch(path, images, labels, protocol="py2"):
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in labels],
        b"data": cifar_rows(images),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    data = py2_style_pickle(batch) if protocol == "py2" else pickle.dumps(batch, protocol=protocol)
    with open(path, "wb") as f:
        f.write(data)


CIFAR_TRAIN_PER_BATCH = 4
CIFAR_TEST_SIZE = 6


@pytest.fixture
def cifar_arrays():
    """Expected contents: images uint8 [N, 32, 32, 3] and labels per split."""
    rng = np.random.default_rng(123)
    n_train = 5 * CIFAR_TRAIN_PER_BATCH
    return {
        "train": (
            rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, n_train).astype(np.int32),
        ),
        "test": (
            rng.integers(0, 256, (CIFAR_TEST_SIZE, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, CIFAR_TEST_SIZE).astype(np.int32),
        ),
    }


def write_cifar_folder(root, arrays, protocol="py2"):
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    images, labels = arrays["train"]
    k = CIFAR_TRAIN_PER_BATCH
    for i in range(5):
        write_cifar_batch(
            os.path.join(folder, f"data_batch_{i + 1}"),
            images[i * k : (i + 1) * k],
            labels[i * k : (i + 1) * k],
            protocol,
        )
    write_cifar_batch(os.path.join(folder, "test_batch"), *arrays["test"], protocol=protocol)
    meta = {
        b"num_cases_per_batch": k,
        b"label_names": [
            n.encode()
            for n in (
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
        ],
        b"num_vis": 3072,
    }
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        f.write(py2_style_pickle(meta) if protocol == "py2" else pickle.dumps(meta, protocol))
    return folder


@pytest.fixture
def cifar_dir(tmp_path, cifar_arrays):
    """A data_dir holding `cifar-10-batches-py/` written like the official archive."""
    write_cifar_folder(str(tmp_path), cifar_arrays)
    return str(tmp_path)


# --------------------------------------------------------------------------------------------
# Class-per-folder images


def write_png(path, image):
    tf.io.write_file(path, tf.io.encode_png(image))


def write_jpeg(path, image):
    tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))


def constant_image(height, width, rgb):
    return np.broadcast_to(np.asarray(rgb, np.uint8), (height, width, 3)).copy()


# Each class folder gets images of a distinctive constant colour, so that a decoded image
# identifies its folder (and so its expected label).
FOLDER_CLASSES = {"cat": (200, 10, 10), "dog": (10, 200, 10), "zebra": (10, 10, 200)}


def write_image_folder(root, classes=FOLDER_CLASSES, per_class=2):
    for name, rgb in classes.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            image = constant_image(12 + 2 * i, 20, rgb)
            if i % 2 == 0:
                write_png(os.path.join(root, name, f"{name}_{i}.png"), image)
            else:
                write_jpeg(os.path.join(root, name, f"{name}_{i}.JPEG"), image)
    return root


@pytest.fixture
def image_folder(tmp_path):
    """`root/{cat,dog,zebra}/` with PNG and JPEG files, plus clutter that must be ignored."""
    root = write_image_folder(str(tmp_path / "images"))
    with open(os.path.join(root, "cat", "notes.txt"), "w") as f:
        f.write("not an image")
    os.makedirs(os.path.join(root, ".hidden"))
    write_png(os.path.join(root, ".hidden", "x.png"), constant_image(4, 4, (1, 2, 3)))
    return root


@pytest.fixture
def split_image_folder(tmp_path):
    """An Imagenette-like tree: `root/train/<class>/...` and `root/val/<class>/...`."""
    root = str(tmp_path / "imagenette")
    write_image_folder(os.path.join(root, "train"))
    write_image_folder(os.path.join(root, "val"), per_class=1)
    return root


# --------------------------------------------------------------------------------------------
# PASCAL VOC 2012


def voc_palette():
    """The standard VOC colour map (bit-interleaved class ids), as a flat 768-list."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def write_palette_png(path, indices):
    from PIL import Image

    image = Image.fromarray(np.asarray(indices, np.uint8))  # mode "L"
    image.putpalette(voc_palette())  # turns it into a palette ("P") image, indices kept
    assert image.mode == "P"
    image.save(path)


def write_gray_png(path, values):
    from PIL import Image

    image = Image.fromarray(np.asarray(values, np.uint8))
    assert image.mode == "L"
    image.save(path)


def random_mask(rng, height, width):
    """Blocky masks with classes 0-20 and a 255 border around one block."""
    mask = np.zeros((height, width), np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, height - 6), rng.integers(0, width - 6)
        mask[y : y + 8, x : x + 8] = 255
        mask[y + 1 : y + 7, x + 1 : x + 7] = rng.integers(1, 21)
    return mask


VOC_IDS = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000063"]}
VOC_SIZES = {"2007_000032": (30, 40), "2007_000039": (24, 24), "2007_000063": (20, 36)}


@pytest.fixture
def voc_dir(tmp_path):
    """`tmp/VOCdevkit/VOC2012` with JPEGs, palette masks, split files and an SBD 'aug' set.

    Returns `(data_dir, masks)` where `masks[id]` is the written index array.
    """
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in (
        "JPEGImages",
        "SegmentationClass",
        "SegmentationClassAug",
        "ImageSets/Segmentation",
    ):
        os.makedirs(root / sub)
    rng = np.random.default_rng(7)
    masks = {}
    for image_id, (h, w) in VOC_SIZES.items():
        mask = random_mask(rng, h, w)
        masks[image_id] = mask
        # The image encodes nothing special; a smooth gradient survives JPEG well.
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        image = np.stack([yy * 5, xx * 5, np.full_like(yy, 90)], -1).astype(np.uint8)
        write_jpeg(str(root / "JPEGImages" / f"{image_id}.jpg"), image)
        write_palette_png(str(root / "SegmentationClass" / f"{image_id}.png"), mask)
        # The SBD masks differ from the VOC ones (class 1 everywhere the VOC mask has an
        # object) so a test can tell which folder was read.
        aug = np.where((mask > 0) & (mask < 255), 1, mask).astype(np.uint8)
        write_gray_png(str(root / "SegmentationClassAug" / f"{image_id}.png"), aug)
    for split, ids in VOC_IDS.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    # DeepLab's list format: "<image path> <mask path>" per line.
    aug_ids = VOC_IDS["train"] + VOC_IDS["val"]
    lines = [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in aug_ids]
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("\n".join(lines) + "\n")
    return str(tmp_path), masks


@pytest.fixture
def helpers():
    """The writers above, for tests (imported through a fixture: test modules do not
    import conftest by name, which could clash with other conftest files)."""
    return types.SimpleNamespace(
        py2_style_pickle=py2_style_pickle,
        cifar_rows=cifar_rows,
        write_cifar_batch=write_cifar_batch,
        write_cifar_folder=write_cifar_folder,
        write_png=write_png,
        write_jpeg=write_jpeg,
        constant_image=constant_image,
        write_image_folder=write_image_folder,
        voc_palette=voc_palette,
        write_palette_png=write_palette_png,
        write_gray_png=write_gray_png,
    )
