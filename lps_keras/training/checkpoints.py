"""Restoring the newest usable checkpoint, and the finiteness check before every save.

A checkpoint is saved only after the epoch's weights were checked finite
(`non_finite_weights`), so the kept checkpoints are all finite and a diverged run can
always resume from the last good epoch. On resume, a checkpoint that cannot be read (a
file truncated by a full disk or a copy) is skipped for the next older one, with a
message; the next save of that epoch number replaces the damaged files.

`BestCheckpoint` keeps the weights of the best epoch by `config.train.best_metric`.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from lps_keras import rundir
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


class BestCheckpoint:
    """The weights of the best epoch so far by one history metric, in their own directory
    (`checkpoints/best/`, kept apart from the per-epoch checkpoints).

    The best value and epoch are variables (`state`) that the trainer puts into every
    per-epoch checkpoint, so a resumed run restores them with the epoch counter. An epoch's
    best weights are saved before its per-epoch checkpoint, and the two newest best
    checkpoints are kept: a run killed between the two saves resumes with the best epoch
    its per-epoch checkpoint recorded, whose weights are still there (`best-<epoch>`).
    Each save is a `tf.train.CheckpointManager` save (the index is rewritten only after
    the files are complete), followed by `best.json`, a human-readable note of the metric,
    value and epoch.

    Args:
        directory: where the best checkpoints go.
        model: the model whose weights are kept.
        metric: the history key (e.g. `"val_accuracy"`); `larger` its direction.
    """

    def __init__(self, directory, model, metric, larger):
        self.directory = directory
        self.metric = metric
        self.larger = bool(larger)
        self.value = tf.Variable(float("nan"), dtype=tf.float64, trainable=False,
                                 name="best_value")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        # Keyed by the metric's name: a resume with another best_metric starts afresh.
        self.state = tf.train.Checkpoint(**{f"best_{metric}": tf.train.Checkpoint(
            value=self.value, epoch=self.epoch)})
        self._model = model
        self._checkpoint = tf.train.Checkpoint(model=model, epoch=self.epoch, value=self.value)
        self._manager = None

    def _get_manager(self):
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self.directory,
                                                       max_to_keep=2, checkpoint_name="best")
        return self._manager

    @property
    def mode(self):
        """`"max"` or `"min"`: the direction of the metric."""
        return "max" if self.larger else "min"

    @property
    def best_epoch(self):
        """The best epoch so far (0: none yet)."""
        return int(self.epoch.numpy())

    @property
    def best_value(self):
        """The best value so far (None: none yet)."""
        value = float(self.value.numpy())
        return None if math.isnan(value) else value

    def path(self):
        """The checkpoint prefix holding the best epoch's weights, or None."""
        if not self.best_epoch:
            return None
        prefix = os.path.join(self.directory, f"best-{self.best_epoch}")
        return prefix if tf.io.gfile.exists(prefix + ".index") else None

    def check_resumed(self, log):
        """After the per-epoch checkpoint was restored: forgets a best epoch whose weights
        are missing (with a message), so the next validated epoch becomes the best."""
        if self.best_epoch and self.path() is None:
            log(f"WARNING: the best checkpoint of epoch {self.best_epoch} is missing from "
                f"{self.directory}; the next validated epoch starts the best record afresh.")
            self.value.assign(float("nan"))
            self.epoch.assign(0)
        elif self.best_epoch:
            log(f"Best {self.metric} so far: {self.best_value:.6g} (epoch {self.best_epoch}).")

    def update(self, epoch, value):
        """Saves the model's weights as the best if `value` (of `epoch`) beats the best so
        far (strictly; a non-finite value never does); returns True when it did."""
        if value is None or not math.isfinite(value):
            return False
        best = self.best_value
        if best is not None and not (value > best if self.larger else value < best):
            return False
        self.value.assign(float(value))
        self.epoch.assign(int(epoch))
        self._get_manager().save(checkpoint_number=int(epoch))
        rundir.write_text(os.path.join(self.directory, "best.json"), rundir.dumps(
            {"metric": self.metric, "mode": self.mode,
             "value": float(value), "epoch": int(epoch),
             "checkpoint": f"best-{int(epoch)}"}, indent=2))
        return True

    def restore_weights(self):
        """Loads the best epoch's weights into the model; returns the epoch."""
        path = self.path()
        if path is None:
            raise RunDirectoryError(
                f"No best checkpoint in {self.directory} to export (config.train.export_best): "
                f"no validated epoch had a finite {self.metric}.")
        tf.train.Checkpoint(model=self._model).read(path).expect_partial()
        return self.best_epoch
