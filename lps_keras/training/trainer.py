"""The training loop behind `train.py`.

One custom loop serves every strategy: `model.fit` fails under MultiWorkerMirroredStrategy
in TF 2.21, while `strategy.run` + `compute_average_loss` works under
all of them and gives identical weights on every replica.

A run directory (layout in `lps_keras.rundir`) holds:
- `config.json`: the resolved config, written at start;
- `checkpoints/`: model, optimizer, epoch counter and Gumbel seed states after each epoch
  (`tf.train.CheckpointManager`: a crash mid-save leaves the previous one valid);
- `checkpoints/best/`: the best epoch's weights by `config.train.best_metric` (if set;
  `checkpoints.BestCheckpoint`);
- `history.jsonl`: one JSON line per completed epoch, with the validation metrics
  (`val_<metric>`, `lps_keras.training.validation`) of validated epochs;
- `tensorboard/`: scalars `train/...`, `validation/...` and, at the end, `test/...`;
- `model.keras` and `results.json` at the end: the test metrics of
  `lps_keras.evaluation.evaluate` (the same path as `eval.py`, which reproduces them for
  the run directory) and the history; every accuracy, consistency, IoU and mASSC in
  percent (0-100).
A run restarted with the same flags resumes from its last completed epoch.

The weights evaluated, saved as `model.keras` and exported are the last epoch's, unless
`config.train.export_best` is True: then they are the best checkpoint's (`results.json`
says which, under `weights`).

Console: on a terminal each epoch draws a Keras progress bar; when stdout is not a
terminal (a log file, a pipe) each epoch prints one line instead (epoch, loss, training
metric, validation metrics, seconds), so a log holds no progress-bar control codes.

Set `LPS_KERAS_WEIGHTS_CHECKSUM=1` to make every process print
`weights_checksum=<float> worker=<index>` after training (the tests compare replicas and
workers with it).
"""

import collections
import json
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from lps_keras import rundir
from lps_keras.data import build_dataset, dataset_info
from lps_keras.data.errors import CorruptDatasetError
from lps_keras.errors import DivergenceError, RunDirectoryError
from lps_keras.evaluation import (
    LoadedModel,
    default_eval_mode,
    evaluate,
    settings_from_config,
    summary,
)
from lps_keras.layers import lps_layers
from lps_keras.rundir import RunDirectory
from lps_keras.training import builders, checkpoints, preflight, resume
from lps_keras.training.distribute import is_chief, worker_index
from lps_keras.training.naming import run_name
from lps_keras.training.validation import larger_is_better


def _log(message):
    if is_chief():
        print(message, flush=True)


def _seed_states(model):
    # SeedGenerator states are Keras variables that tf.train.Checkpoint does not reach
    # through the model; track them explicitly so a resumed run continues the noise.
    return [v.value for v in model.variables if "seed_generator_state" in v.path]


def _checked_data(train_step, dist):
    """One training step; a corrupt image file (found past the first batch) becomes the
    `CorruptDatasetError` naming it (`tf.data` can only fail with a TensorFlow error)."""
    try:
        return train_step(next(dist))
    except tf.errors.InvalidArgumentError as e:
        corrupt = CorruptDatasetError.from_tf_error(e)
        if corrupt is None:
            raise
        raise corrupt from None


class _Built(collections.namedtuple(
        "_Built", ["steps", "model", "optimizer", "epoch_var", "tau_schedule"])):
    """What `Trainer._build` makes from the config."""


class Trainer:
    """Trains, evaluates and exports one config.

    Args:
        config: the resolved `ml_collections.ConfigDict` (see `configs/base.py`).
        workdir: run directory (created if missing; reused to resume).
        strategy: a `tf.distribute.Strategy`.
    """

    def __init__(self, config, workdir, strategy):
        config.name = run_name(config)  # an empty name is derived from data and model
        self.config = config
        self.run_dir = RunDirectory(workdir)
        self.workdir = self.run_dir.path
        self.strategy = strategy
        with preflight.setting("config.data.name"):
            self.info = dataset_info(config.data.name, data_dir=config.data.data_dir or None)
        self.task = self.info.task
        self.global_batch = int(config.train.batch_size)

    # ----------------------------------------------------------------- data
    def _dataset(self, split, training, seed, batch_size=None, normalize=True):
        d = self.config.data
        kwargs = dict(data_dir=d.data_dir or None, training=training, seed=seed,
                      augment=d.augment if training else "none", normalize=normalize,
                      max_shift=d.max_shift, source=d.source, holdout=d.get("holdout", 0))
        for key in ("image_size", "crop_size"):
            if d.get(key):
                kwargs[key] = d[key]
        num = d.get(f"num_{'train' if training else 'eval'}_examples")
        if num:
            kwargs["num_examples"] = num
        return build_dataset(d.name, split, batch_size or self.global_batch, **kwargs)

    # ----------------------------------------------------------------- steps
    def _make_train_step(self, model, optimizer, loss_fn):
        strategy = self.strategy
        global_batch = self.global_batch
        ignore = self.info.ignore_index if self.info.ignore_index is not None else 255

        def replica_step(images, targets):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                per_example = loss_fn(targets, logits)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            variables = model.trainable_variables
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            correct, total = builders.batch_metric(self.task, targets, logits, ignore)
            return tf.reduce_sum(per_example), tf.cast(tf.shape(per_example)[0], tf.float32), \
                correct, total

        # Trace the replica step once, as a function of its own, so every replica runs the
        # same graph: traced per replica thread, collectives (gradient all-reduce, synced
        # BN) get instance keys in different orders and fail or mismatch.
        self._xla = self._use_xla()
        replica_fn = tf.function(replica_step, jit_compile=self._xla)

        @tf.function
        def train_step(batch):
            results = strategy.run(replica_fn, args=batch)
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]

        return train_step

    def _use_xla(self):
        """XLA as configured, except across replicas without GPUs: XLA has no CPU
        collectives (UnimplementedError), so the step then runs as a plain graph."""
        wanted = bool(self.config.train.jit_compile)
        if wanted and self.strategy.num_replicas_in_sync > 1 \
                and not tf.config.list_logical_devices("GPU"):
            _log("XLA is off: it has no collectives on CPU devices (config.train.jit_compile "
                 "applies to single-replica and GPU runs).")
            return False
        return wanted

    # ----------------------------------------------------------------- main
    def run(self):
        """Trains (or resumes), evaluates and exports; returns the results dict (None on a
        non-chief worker).

        Raises `lps_keras.errors.RunError` subclasses for what the user must act on: a bad
        setting (before anything is written), a run directory in use or holding another
        model, and divergence (`DivergenceError`, after which the checkpoints still hold
        the last finite epoch).
        """
        if not is_chief():  # only the chief writes the run directory
            return self._run(chief=False)
        with self.run_dir.lock():
            return self._run(chief=True)

    def check(self):
        """Checks every setting of the run without training or writing the run directory:
        the config's values, the training data (one batch is read), the model, optimizer
        and schedules, the evaluation (the run's own path on two examples), the per-epoch
        validation (on two examples of its split, if any) and the export
        settings (the export directory is created to prove it writable). Raises
        `lps_keras.errors.ConfigError` (or a data error) naming what is wrong. `run` does
        all of this before its first training step."""
        validator = preflight.check_settings(self.config, self.info,
                                             self.strategy.num_replicas_in_sync)
        built = self._build()
        self._check_after_training_settings(built.model, validator)
        return built

    def _check_after_training_settings(self, model, validator):
        preflight.check_evaluation(model, self._evaluate, self.config.eval.batch_size)
        if validator is not None:  # the validation split is read and scored once
            with preflight.setting("config.eval.validation_split"):
                validator.on_first(2)(model)
        if self.config.export.enabled:
            preflight.check_export(model, self.config, self.info)

    def _build(self):
        """The model, its optimizer and schedules, and the steps per epoch."""
        cfg = self.config
        keras.utils.set_random_seed(int(cfg.seed))
        probe = self._dataset("train", True, cfg.seed)
        steps = preflight.steps_per_epoch(int(probe.cardinality()), cfg)
        preflight.check_readable(probe)
        input_shape = tuple(probe.element_spec[0].shape[1:])
        with self.strategy.scope():
            with preflight.setting("config.model"):
                model = builders.build_model(cfg.model, input_shape, self.info.num_classes)
            with preflight.setting("config.train"):
                optimizer = builders.build_optimizer(cfg.train, steps, model)
            optimizer.build(model.trainable_variables)
            epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        with preflight.setting("config.train.tau_schedule"):
            tau_schedule = builders.build_tau_schedule(cfg.train)
        return _Built(steps, model, optimizer, epoch_var, tau_schedule)

    def _run(self, chief):
        cfg = self.config
        validator = preflight.check_settings(cfg, self.info,
                                             self.strategy.num_replicas_in_sync)
        if not chief:  # only the chief validates
            validator = None
        changes = self._check_stored_config() if chief else {}
        steps, model, optimizer, epoch_var, tau_schedule = self._build()
        best = None
        if cfg.train.get("best_metric"):
            best = checkpoints.BestCheckpoint(
                self.run_dir.best_checkpoints, model, cfg.train.best_metric,
                larger_is_better(cfg.train.best_metric))
        extra = {"best": best.state} if best is not None else {}
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var,
                                         seed_states=_seed_states(model), **extra)
        ckpt_dir = self.run_dir.checkpoints
        if not chief:  # every worker must save; only the chief's copy is kept
            ckpt_dir = self.run_dir.worker_checkpoints(worker_index()[1])
        manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=2)
        restored = checkpoints.restore_newest_valid(checkpoint, manager, _log)
        start_epoch = int(epoch_var.numpy())
        if best is not None and chief and restored is not None:
            best.check_resumed(_log)
        epochs = int(cfg.train.epochs)
        if chief:
            stored = self.run_dir.read_results() if start_epoch >= epochs else None
            if stored is not None and not changes:
                _log(f"This run is already complete ({start_epoch} epochs); its results are "
                     f"in {self.run_dir.results_path}: {summary(stored)}")
                return stored
            if start_epoch < epochs:  # settings used only after training: check them now
                self._check_after_training_settings(model, validator)
            if restored is None or not self.run_dir.has_config():
                self.run_dir.write_config(cfg.to_json_best_effort(indent=2, sort_keys=True))
            elif changes:
                self.run_dir.append_config_change({"resumed_at_epoch": start_epoch, "changes": {
                    k: {"stored": old, "now": new} for k, (old, new) in changes.items()}})
            if self.run_dir.torn_history():
                _log(f"{self.run_dir.history_path}: dropped a partial last line (the write "
                     "was interrupted; that epoch was never checkpointed).")
        # Epochs after start_epoch were written but not checkpointed: they go.
        history = self.run_dir.truncate_history(start_epoch) if chief else []

        lps = lps_layers(model)
        ignore = self.info.ignore_index if self.info.ignore_index is not None else 255
        train_step = self._make_train_step(model, optimizer, builders.per_example_loss(
            self.task, ignore, cfg.train.get("loss", "auto")))
        metric, scale, _ = builders.TRAIN_METRICS[self.task]
        every = int(cfg.eval.get("validate_every", 1))
        interactive = chief and sys.stdout.isatty()
        writer = tf.summary.create_file_writer(self.run_dir.tensorboard) \
            if chief else tf.summary.create_noop_writer()
        if start_epoch < epochs:
            _log(f"Training {model.name} ({model.count_params():,} parameters) on "
                 f"{cfg.data.name}: epochs {start_epoch + 1}-{epochs}, {steps} steps of "
                 f"{self.global_batch} images, {self.strategy.num_replicas_in_sync} "
                 "replica(s).")

        for epoch in range(start_epoch, epochs):
            tau = tau_schedule.set_epoch(epoch, lps) if tau_schedule is not None else None
            # A fresh, epoch-seeded pipeline: a resumed run sees the same data order.
            data = self._dataset("train", True, int(cfg.seed) * 100_003 + epoch)
            dist = iter(self.strategy.experimental_distribute_dataset(data))
            bar = keras.utils.Progbar(steps, verbose=1 if interactive else 0,
                                      stateful_metrics=["loss", metric])
            if interactive:
                _log(f"Epoch {epoch + 1}/{epochs}" + (f" (tau {tau:.3g})" if tau else ""))
            sums = np.zeros(4)
            start = time.time()
            lr_first = lr_last = None
            for step in range(steps):
                if epoch == start_epoch and step == 0:
                    _log("Compiling the train step" + (" (XLA)" if self._xla else "")
                         + " ...")
                if step == 0:
                    lr_first = float(optimizer.learning_rate)  # the rate this step uses
                if step == steps - 1:
                    lr_last = float(optimizer.learning_rate)
                values = np.array([float(v) for v in _checked_data(train_step, dist)])
                if not np.isfinite(values[0]):
                    raise self._diverged(epoch, f"step {step + 1}: the loss is {values[0]}")
                sums += values
                bar.update(step + 1, [("loss", sums[0] / sums[1]),
                                      (metric, scale * sums[2] / max(sums[3], 1))])
            bad = checkpoints.non_finite_weights(model)
            if bad:
                raise self._diverged(epoch, f"the end: weights {', '.join(bad[:3])}"
                                     + (" and others" if len(bad) > 3 else "")
                                     + " are not finite")
            # Training accuracy in percent, like every metric in results.json.
            record = {"epoch": epoch + 1, "loss": sums[0] / sums[1],
                      metric: scale * sums[2] / max(sums[3], 1), "tau": tau,
                      "learning_rate_first_step": lr_first,
                      "learning_rate_last_step": lr_last,
                      "seconds": time.time() - start}
            if chief:
                validation = {}
                if validator is not None and ((epoch + 1) % every == 0
                                              or epoch + 1 == epochs):
                    validation = validator(model)
                    record.update({f"val_{k}": v for k, v in validation.items()})
                    record["validation_seconds"] = time.time() - start - record["seconds"]
                improved = best is not None and best.update(
                    epoch + 1, record.get(cfg.train.best_metric))
                if interactive:
                    if validation:
                        _log("Validation: " + ", ".join(f"{k} {v:.4g}"
                                                        for k, v in validation.items())
                             + (f" (best {cfg.train.best_metric} so far)" if improved else ""))
                else:
                    _log(self._epoch_line(record, epochs, metric, improved))
                self.run_dir.append_history(record)
                history.append(record)
                with writer.as_default(step=epoch + 1):
                    for key in ("loss", metric, "learning_rate_first_step",
                                "learning_rate_last_step"):
                        tf.summary.scalar(f"train/{key}", record[key])
                    for key, value in validation.items():
                        tf.summary.scalar(f"validation/{key}", value)
                    if tau is not None:
                        tf.summary.scalar("train/tau", tau)
                writer.flush()
            epoch_var.assign(epoch + 1)
            # After the best checkpoint (see `checkpoints.BestCheckpoint`).
            manager.save(checkpoint_number=epoch + 1)

        if os.environ.get(CHECKSUM_ENV) == "1":
            # Every process reports it: replicas and workers must end with identical weights.
            print(f"weights_checksum={weights_checksum(model):.10e} "
                  f"worker={worker_index()[1]}", flush=True)
        if not chief:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            return None
        return self._finish(model, history, best, writer)

    def _check_stored_config(self):
        """Compares the config with the one the run started with, when there is a run to
        resume; returns the allowed changes or raises for an incompatible model."""
        if not (self.run_dir.has_config() and os.path.isdir(self.run_dir.checkpoints)):
            return {}
        try:
            stored = self.run_dir.read_config()
        except rundir.InvalidJSONError as e:
            raise RunDirectoryError(
                f"{e} It records the settings of the checkpointed run; restore it (e.g. from "
                "a backup), or move the run directory aside to start afresh.") from None
        current = json.loads(self.config.to_json_best_effort())
        changes = resume.check_resume(stored, current, self.run_dir.config_path)
        if changes:
            _log("WARNING: " + resume.describe_changes(changes))
        return changes

    @staticmethod
    def _epoch_line(record, epochs, metric, improved):
        """The one line an epoch prints when stdout is not a terminal."""
        unit = "%" if metric == "accuracy" else ""
        parts = [f"loss {record['loss']:.4f}", f"{metric} {record[metric]:.2f}{unit}"]
        parts += [f"{k} {v:.4g}" for k, v in record.items()
                  if k.startswith("val_") and isinstance(v, float)]
        if record.get("tau") is not None:
            parts.append(f"tau {record['tau']:.3g}")
        parts.append(f"lr {record['learning_rate_last_step']:.3g}")
        parts.append(f"{record['seconds']:.1f} s"
                     + (f" (+{record['validation_seconds']:.1f} s validation)"
                        if "validation_seconds" in record else ""))
        return (f"Epoch {record['epoch']}/{epochs}: " + ", ".join(parts)
                + (" [best]" if improved else ""))

    def _diverged(self, epoch, where):
        done = f"epoch {epoch}" if epoch else "no epoch (the run starts afresh)"
        return DivergenceError(
            f"Training diverged in epoch {epoch + 1}, at {where}. Nothing of this epoch was "
            f"saved, exported or reported; the checkpoints in {self.run_dir.checkpoints} "
            f"hold {done}. Lower config.train.learning_rate (now "
            f"{self.config.train.learning_rate}) and run again: the run resumes from there "
            "(a changed learning rate is allowed on resume).")

    def _finish(self, model, history, best, writer):
        cfg = self.config
        epochs = int(cfg.train.epochs)
        weights = {"epoch": epochs, "chosen_by": "last epoch"}
        if best is not None:
            weights["best"] = {"metric": best.metric, "mode": best.mode,
                               "value": best.best_value, "epoch": best.best_epoch,
                               "checkpoint": best.path()}
        if cfg.train.get("export_best") and best.path() is None:
            # Not knowable before training: keep the run's results rather than fail.
            _log(f"WARNING: config.train.export_best: no epoch had a finite {best.metric}; "
                 "using the last epoch's weights.")
        elif cfg.train.get("export_best"):
            epoch = best.restore_weights()
            weights.update(epoch=epoch, chosen_by=f"best {best.metric}")
            _log(f"Using the weights of epoch {epoch}, the best by {best.metric} "
                 f"({best.best_value:.6g}; config.train.export_best).")
        results = self.evaluate(model)
        results["weights"] = weights
        results["history"] = history
        metric, _, unit = builders.TRAIN_METRICS[self.task]
        results["history_units"] = {
            "loss": "mean per-example training loss", metric: unit,
            "learning_rate_first_step": "learning rate of the epoch's first optimizer step",
            "learning_rate_last_step": "learning rate of the epoch's last optimizer step",
            "seconds": "wall-clock time of the epoch's training steps",
            "validation_seconds": "wall-clock time of the epoch's validation",
            "val_*": "on config.eval.validation_split (first num_validation_examples); "
                     "loss as the training loss, accuracy/mean_iou/circular_consistency/"
                     "circular_massc in percent, psnr in dB, ssim in [0, 1], nmse and "
                     "equivariance_nmse as plain ratios"}
        with writer.as_default(step=epochs):
            for key, value in results.items():
                if key not in ("num_examples", "max_shift", "seed") \
                        and isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(f"test/{key}", value)
        writer.flush()
        keras_path = self.run_dir.model_path
        with rundir.staged_file(keras_path) as tmp:
            model.save(tmp)
        results["keras_model"] = keras_path
        if cfg.export.enabled:
            results["saved_model"] = self.export(model)
        self.run_dir.write_results(results)
        _log(f"Test ({results['num_examples']} images): {summary(results)}")
        if "per_class_iou" in results:
            _log("IoU per class: " + ", ".join(
                f"{k} {'n/a' if v is None else f'{v:.1f}%'}"
                for k, v in results["per_class_iou"].items()))
        _log(f"Model written to {keras_path}" + (
            f"; SavedModel to {results['saved_model']}" if "saved_model" in results else ""))
        return results

    # ----------------------------------------------------------------- eval/export
    def evaluate(self, model):
        """The test metrics of `model` (see `_evaluate`)."""
        return self._evaluate(model)

    def _evaluate(self, model, num_examples=None):
        """Test metrics of `model`, exactly as `eval.py` reports them for this run.

        Runs `lps_keras.evaluation.evaluate` on raw pixels (the model is wrapped with the
        dataset's normalisation) with the run's evaluation settings and the dataset's
        protocol: accuracy, circular and standard consistency for a classifier; mIoU,
        per-class IoU and circular and standard mASSC for a segmenter. Returns a flat dict
        of percentages plus `num_examples`, `protocol`, `max_shift`, `split` and `units`.
        Single process (the chief).
        """
        settings = settings_from_config(self.config)
        if num_examples is not None:  # the pre-training check of the evaluation path
            settings["num_examples"] = num_examples
        wrapped = LoadedModel.from_keras(model, self.info.mean, self.info.std,
                                         name=self.config.name, task=self.info.task)
        seg_max_shift = settings.pop("seg_max_shift")
        if self.task == "segmentation":
            settings["max_shift"] = seg_max_shift
        log = _log if num_examples is None else None
        if log:
            _log(f"Evaluating on {settings['dataset']} {settings['split']}:")
        result = evaluate(wrapped, default_eval_mode(self.task), curves=False, log=log,
                          **settings)
        entry = result["models"][wrapped.name]
        return {key: result[key] for key in ("split", "num_examples", "protocol",
                                             "max_shift", "seed", "units")} | entry

    def export(self, model):
        """Exports `model` as the next SavedModel version, unless a version with exactly
        these weights exists (a rerun, or a run killed after exporting): that one is
        returned instead, so a server never switches to a copy of what it serves."""
        from lps_keras.export import export_saved_model, find_export, weights_fingerprint

        arguments = preflight.export_arguments(self.config, self.info)
        existing = find_export(arguments["export_dir"], arguments["name"],
                               weights_fingerprint(model))
        if existing:
            _log(f"These weights are already exported as {existing}; not exporting again.")
            return existing
        return export_saved_model(model, **arguments)


CHECKSUM_ENV = "LPS_KERAS_WEIGHTS_CHECKSUM"


def weights_checksum(model):
    """A float that changes with any weight: sum of |w| * (1 + index) over all weights."""
    return float(sum(np.abs(keras.ops.convert_to_numpy(w)).sum() * (i + 1)
                     for i, w in enumerate(model.weights)))

