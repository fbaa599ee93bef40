"""Restoring the newest usable checkpoint, and the finiteness check before every save.

A checkpoint is saved only after the epoch's weights were checked finite
(`non_finite_weights`), so the kept checkpoints are all finite and a diverged run can
always resume from the last good epoch. On resume, a checkpoint that cannot be read (a
file truncated by a full disk or a copy) is skipped for the next older one, with a
message; the next save of that epoch number replaces the damaged files.
"""

import keras
import numpy as np

from lps_keras.errors import RunDirectoryError


def restore_newest_valid(checkpoint, manager, log):
    """Restores the newest checkpoint of `manager` that reads completely into
    `checkpoint`; returns its path, or None when there is no checkpoint (a new run).

    Raises:
        RunDirectoryError: checkpoints exist but none can be restored; the message names
            each with its error.
    """
    candidates = list(reversed(manager.checkpoints))
    failures = []
    for path in candidates:
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001 - a damaged file can fail in any way; each is reported
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            failures.append(f"{path}: {reason[:300]}")
            continue
        if failures:
            log(f"WARNING: skipped damaged checkpoint(s) ({'; '.join(failures)}); resuming "
                f"from the older {path}.")
        log(f"Resuming from {path} (epoch {int(checkpoint.epoch.numpy())}).")
        return path
    if failures:
        raise RunDirectoryError(
            f"No checkpoint in {manager.directory} can be restored into this model: "
            f"{'; '.join(failures)}. Move that directory aside to start afresh, or rerun "
            "with the settings the run was started with.")
    return None


def non_finite_weights(model):
    """The paths of the weights of `model` (trainable or not, e.g. BatchNorm statistics)
    that hold a NaN or an infinity; empty when all are finite."""
    return [w.path for w in model.weights
            if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
