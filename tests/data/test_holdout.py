"""`lps_keras.data.holdout`: the same held-out examples every time, and a partition."""

import numpy as np
import pytest

from lps_keras.data.holdout import check_holdout, hold_out, holdout_mask


def test_the_mask_is_fixed_and_has_the_requested_size():
    mask = holdout_mask(1000, 100)
    assert mask.dtype == bool and mask.sum() == 100
    np.testing.assert_array_equal(holdout_mask(1000, 100), mask)  # every run, every resume
    assert not np.array_equal(holdout_mask(1000, 100)[:100], np.ones(100, bool))


def test_hold_out_partitions_every_array_in_order():
    ids = np.arange(50)
    labels = ids % 10
    train_ids, train_labels = hold_out((ids, labels), "train", 8)
    held_ids, held_labels = hold_out((ids, labels), "holdout", 8)
    assert len(held_ids) == 8 and len(train_ids) == 42
    assert sorted(np.concatenate([train_ids, held_ids]).tolist()) == ids.tolist()
    assert np.all(np.diff(train_ids) > 0) and np.all(np.diff(held_ids) > 0)
    np.testing.assert_array_equal(train_labels, train_ids % 10)
    np.testing.assert_array_equal(held_labels, held_ids % 10)
    for split, holdout in (("test", 8), ("validation", 8), ("train", 0)):
        assert hold_out((ids, labels), split, holdout)[0] is ids


@pytest.mark.parametrize("args, match", [
    (("cifar10", "train", True), "non-negative int"),
    (("cifar10", "train", -3), "non-negative int"),
    (("synthetic_mri", "train", 4), "only implemented for cifar10"),
    (("imagenet", "train", 4, "tfds"), "image folders"),
    (("imagenet", "holdout", 0), "set config.data.holdout"),
])
def test_bad_settings_name_the_setting(args, match):
    with pytest.raises(ValueError, match=match):
        check_holdout(*args)
    check_holdout("cifar10", "holdout", 5, "tfds")  # CIFAR-10 from TFDS is in memory
