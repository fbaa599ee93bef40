"""Validation data held out of a training split, for datasets without a validation split.

CIFAR-10 has only train and test, and the ImageNet family's "validation" split is the one
its results are reported on, so validating during training needs examples taken out of
the training split. With `holdout=N` (`config.data.holdout`), `hold_out` removes N
training examples from `"train"` and serves exactly those as the split `"holdout"`:

- which ones: a fixed pseudo-random choice (`HOLDOUT_SEED`, independent of the run's
  seed), so every run and every resume holds out the same examples, and in expectation
  every class loses the same share;
- order: both parts keep the training split's order (the sorted file list for folders);
- the test split is never touched.

`HOLDOUT_DATASETS` lists where this is implemented: in-memory CIFAR-10 (from its batches
or TFDS) and the ImageNet family read from image folders (a TFDS copy streams in shuffled
shards, so its examples have no stable index to choose by).
"""

import numpy as np

HOLDOUT_SPLIT = "holdout"
HOLDOUT_DATASETS = ("cifar10", "imagenet", "imagenette")
HOLDOUT_SEED = 0


def check_holdout(name, split, holdout, source="auto"):
    """Raises ValueError unless `holdout` and `split` fit dataset `name`: `holdout` a
    non-negative int, 0 outside `HOLDOUT_DATASETS` and for TFDS ImageNet copies, and
    positive for the `"holdout"` split."""
    if not isinstance(holdout, (int, np.integer)) or isinstance(holdout, bool) or holdout < 0:
        raise ValueError(f"`holdout` (config.data.holdout) must be a non-negative int; got "
                         f"{holdout!r}.")
    if (holdout or split == HOLDOUT_SPLIT) and name not in HOLDOUT_DATASETS:
        from lps_keras.data.registry import dataset_info

        raise ValueError(
            f"`holdout` (config.data.holdout={holdout}) and the {HOLDOUT_SPLIT!r} split are "
            f"only implemented for {', '.join(HOLDOUT_DATASETS)}; {name} has its own splits "
            f"({', '.join(dataset_info(name).splits)}): validate on one of them and set "
            "holdout to 0.")
    if holdout and name != "cifar10" and source == "tfds":
        raise ValueError(
            f"`holdout` (config.data.holdout={holdout}) needs {name}'s image folders "
            "(config.data.source='folder'); a TFDS copy cannot be split here.")
    if split == HOLDOUT_SPLIT and not holdout:
        raise ValueError(
            f"The {HOLDOUT_SPLIT!r} split is the `holdout` examples held out of training; "
            "set config.data.holdout to how many (e.g. 5000 for CIFAR-10).")


def source_split(split):
    """The stored split `split` is read from: `"train"` for the `"holdout"` split."""
    return "train" if split == HOLDOUT_SPLIT else split


def holdout_mask(count, holdout):
    """Boolean `[count]`: True for the `holdout` held-out examples of a training split of
    `count` examples (the same ones for the same `count`, whatever the run)."""
    if holdout >= count:
        raise ValueError(
            f"`holdout` (config.data.holdout={holdout}) would hold out all {count} training "
            "examples; hold out fewer (e.g. a tenth).")
    mask = np.zeros(count, bool)
    mask[np.random.default_rng(HOLDOUT_SEED).choice(count, holdout, replace=False)] = True
    return mask


def hold_out(arrays, split, holdout):
    """`split`'s part of the training split's `arrays` (a tuple of equally long arrays):
    `"train"` keeps all but the held-out examples, `"holdout"` only those, in order. Other
    splits, and `holdout=0`, pass unchanged."""
    if not holdout or split not in ("train", HOLDOUT_SPLIT):
        return arrays
    mask = holdout_mask(len(arrays[0]), holdout)
    keep = mask if split == HOLDOUT_SPLIT else ~mask
    return tuple(np.asarray(a)[keep] for a in arrays)
