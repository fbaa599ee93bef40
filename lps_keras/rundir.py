"""The layout of a `train.py` run directory, shared by the trainer, `LoadedModel` and
`eval.py`. Pure standard library (no TensorFlow), so the evaluation side does not import
`lps_keras.training`.

A run directory holds:
- `config.json`: the resolved config, written at start;
- `checkpoints/`: model, optimizer, epoch counter and Gumbel seed states after each epoch;
- `history.jsonl`: one JSON line per completed epoch;
- `tensorboard/`: scalars;
- `model.keras` and `results.json` at the end;
- `eval/`: what `eval.py` writes for the run by default.
"""

import json
import os

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
HISTORY = "history.jsonl"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
RESULTS = "results.json"
EVAL = "eval"


class InvalidJSONError(ValueError):
    """A run-directory or export file that is not valid JSON; the message names it."""


def read_json(path):
    """The JSON value stored at `path`; `InvalidJSONError` (a ValueError) naming the file
    when it does not parse."""
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise InvalidJSONError(f"{path} is not valid JSON: {e}.") from None


def is_run_directory(path):
    """True when `path` is a directory holding a `config.json`."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, CONFIG))


def _member(name, doc):
    return property(lambda self: self.join(name), doc=doc)


class RunDirectory:
    """Paths and files of one run directory (nothing is created until written).

    Args:
        path: the run directory; stored absolute as `path`.
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))

    def join(self, name):
        return os.path.join(self.path, name)

    config_path = _member(CONFIG, "`config.json`: the resolved config.")
    checkpoints = _member(CHECKPOINTS, "`checkpoints/`: the chief's training checkpoints.")
    history_path = _member(HISTORY, "`history.jsonl`: one JSON line per completed epoch.")
    tensorboard = _member(TENSORBOARD, "`tensorboard/`: the scalar summaries.")
    model_path = _member(MODEL, "`model.keras`: the trained model.")
    results_path = _member(RESULTS, "`results.json`: test metrics and history.")
    eval_dir = _member(EVAL, "`eval/`: where `eval.py` writes for this run by default.")

    def worker_checkpoints(self, index):
        """A non-chief worker's scratch checkpoint directory (removed after training)."""
        return self.join(f".worker{index}")

    # ------------------------------------------------------------------ config
    def write_config(self, text):
        """Writes the resolved config (already serialised to JSON text)."""
        with open(self.config_path, "w") as f:
            f.write(text)

    def read_config(self):
        """The stored config as a dict; `InvalidJSONError` naming the file if it does not
        parse."""
        return read_json(self.config_path)

    # ------------------------------------------------------------------ history
    def load_history(self):
        """Every record of `history.jsonl` (empty when there is none)."""
        if not os.path.exists(self.history_path):
            return []
        with open(self.history_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def truncate_history(self, last_epoch):
        """Keeps the records of epochs up to `last_epoch` (later lines were written but not
        checkpointed) and returns them."""
        if not os.path.exists(self.history_path):
            return []
        records = [r for r in self.load_history() if r["epoch"] <= last_epoch]
        with open(self.history_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        return records

    def append_history(self, record):
        with open(self.history_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ results
    def write_results(self, results):
        with open(self.results_path, "w") as f:
            json.dump(results, f, indent=2, default=float)
