"""Train, evaluate and export a shift-invariant (or -equivariant) network.

    python train.py                                   # default run, ~1.5 min on 2 CPU cores
    python train.py --config=configs/cifar10_resnet18_lps.py --config.data.data_dir=~/data
    python train.py --config=configs/synthetic_shapes_seg_deeplab.py
    python train.py --strategy=mirrored               # all local GPUs
    python train.py --print_config --config.train.epochs=5   # show the resolved config

Re-running the same command resumes from the last completed epoch in --workdir.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

# config_flags loads a config file by path, as a top-level module, so the configs import
# their shared parts absolutely (`from configs.base import ...`). That resolves because
# Python puts this script's directory, the repository root, first on sys.path.
_HERE = os.path.dirname(os.path.abspath(__file__))

config_flags.DEFINE_config_file(
    "config", os.path.join(_HERE, "configs", "default.py"), "Experiment config file.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config.name>).")
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker"],
                  "tf.distribute strategy; auto picks mirrored with more than one GPU.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices "
                     "(to try MirroredStrategy without GPUs).", lower_bound=1)
flags.DEFINE_bool("print_config", False, "Print the resolved config (after the overrides, "
                  "with the derived run name) as JSON and exit, without training or "
                  "touching the run directory.")
FLAGS = flags.FLAGS


def _fail(error):
    """Prints a user-facing error as one message (no traceback) and exits."""
    if getattr(error, "exit_code", 2) == 1:  # stopped mid-epoch: end the progress bar's line
        print(flush=True)
    print(f"train.py: error: {error}", file=sys.stderr, flush=True)
    sys.exit(getattr(error, "exit_code", 2))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if FLAGS.print_config:
        from lps_keras.training.naming import run_name

        config = FLAGS.config
        config.name = run_name(config)
        # The same JSON as the run's config.json (sorted keys, best effort for odd values).
        print(config.to_json_best_effort(indent=2, sort_keys=True))
        return
    logging.set_verbosity(logging.WARNING)  # keep the console to progress and results
    from lps_keras.training.distribute import configure_cpu_devices, get_strategy

    configure_cpu_devices(FLAGS.cpu_devices)  # before any TF op runs
    from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError
    from lps_keras.errors import RunError
    from lps_keras.training.naming import run_name
    from lps_keras.training.trainer import Trainer

    config = FLAGS.config
    config.name = run_name(config)
    workdir = FLAGS.workdir or os.path.join("runs", config.name)
    try:
        Trainer(config, workdir, get_strategy(FLAGS.strategy)).run()
    except (RunError, DatasetNotFoundError, CorruptDatasetError) as e:
        _fail(e)


if __name__ == "__main__":
    app.run(main)
