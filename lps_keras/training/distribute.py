"""Choosing a tf.distribute strategy and the facts of multi-worker runs."""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def configure_cpu_devices(count):
    """Splits the CPU into `count` logical devices (tests and demos of MirroredStrategy).

    Must run before TensorFlow initialises its runtime (before the first op).
    """
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as err:
        raise RuntimeError(
            "Logical CPU devices must be configured before TensorFlow runs its first op; "
            "pass --cpu_devices on the command line instead of setting it later."
        ) from err


def get_strategy(name="auto"):
    """Returns the strategy for `name`.

    - `auto`: `MirroredStrategy` over all GPUs when more than one is visible, a
      `MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers, else default.
    - `default`: no distribution.
    - `mirrored`: all local GPUs, or all logical CPU devices when there is no GPU.
    - `multi_worker`: `MultiWorkerMirroredStrategy` from `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}; got {name!r}.")
    if name == "auto":
        if len(_tf_config().get("cluster", {}).get("worker", [])) > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        if not _tf_config():
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}).'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}") from err


def worker_index():
    """(task_type, task_index) of this process; ('worker', 0) without TF_CONFIG."""
    task = _tf_config().get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0))


def is_chief():
    """The one process that writes results, exports and logs (worker 0 or 'chief')."""
    task_type, index = worker_index()
    return task_type == "chief" or (task_type == "worker" and index == 0
                                    and "chief" not in _tf_config().get("cluster", {}))
