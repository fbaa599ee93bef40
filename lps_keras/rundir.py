"""The layout of a `train.py` run directory, shared by the trainer, `LoadedModel` and
`eval.py`. Pure standard library (no TensorFlow), so the evaluation side does not import
`lps_keras.training`.

A run directory holds:
- `config.json`: the resolved config, written at start;
- `checkpoints/`: model, optimizer, epoch counter and Gumbel seed states after each epoch
  (and the best value and epoch so far of `config.train.best_metric`, when set);
- `checkpoints/best/`: with `config.train.best_metric`, the weights of the best epoch so
  far (`best-<epoch>`, the two newest kept) and `best.json` (metric, mode, value, epoch);
- `history.jsonl`: one JSON line per completed epoch (training loss and metric, the
  learning rate of the epoch's first and last step, `val_<metric>` on validated epochs);
- `tensorboard/`: scalars: `train/...`, `validation/...` per epoch, `test/...` at the end;
- `model.keras` and `results.json` at the end;
- `eval/`: what `eval.py` writes for the run by default;
- `config_changes.jsonl`: settings changed when the run was resumed (if any);
- `.lock`: held by the `train.py` process that owns the run (see `RunDirectory.lock`).

Every file is written whole or not at all (a temporary sibling renamed into place), and
every JSON file is strict JSON: a non-finite number is written as `null`, never as a bare
`NaN` that other JSON readers reject.
"""

import contextlib
import json
import math
import os
import secrets
import socket

from lps_keras.errors import RunDirectoryError

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
BEST = "best"  # inside CHECKPOINTS
HISTORY = "history.jsonl"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
RESULTS = "results.json"
EVAL = "eval"
CONFIG_CHANGES = "config_changes.jsonl"
LOCK = ".lock"


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


def finite_json(value):
    """`value` with every non-finite float replaced by None (and NumPy scalars and arrays
    turned into Python numbers and lists), so that it serialises as strict JSON."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy
        return finite_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value, **kwargs):
    """Strict JSON text of `value` (non-finite floats become `null`)."""
    return json.dumps(finite_json(value), allow_nan=False, **kwargs)


@contextlib.contextmanager
def staged_file(path):
    """Yields a temporary sibling path of `path` (same extension) to write; renames it onto
    `path` when the block succeeds, so readers see the old file or the new one, never a
    part. The temporary file is removed on any exception."""
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(directory, f".{stem}.tmp-{secrets.token_hex(6)}{ext}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Writes `text` to `path` atomically (see `staged_file`)."""
    with staged_file(path) as tmp, open(tmp, "w") as f:
        f.write(text)


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
    best_checkpoints = property(
        lambda self: os.path.join(self.checkpoints, BEST),
        doc="`checkpoints/best/`: the best epoch's weights (`config.train.best_metric`).")
    history_path = _member(HISTORY, "`history.jsonl`: one JSON line per completed epoch.")
    tensorboard = _member(TENSORBOARD, "`tensorboard/`: the scalar summaries.")
    model_path = _member(MODEL, "`model.keras`: the trained model.")
    results_path = _member(RESULTS, "`results.json`: test metrics and history.")
    eval_dir = _member(EVAL, "`eval/`: where `eval.py` writes for this run by default.")
    config_changes_path = _member(CONFIG_CHANGES, "`config_changes.jsonl`: settings "
                                  "changed on resume.")
    lock_path = _member(LOCK, "`.lock`: the owning process's lock file.")

    def worker_checkpoints(self, index):
        """A non-chief worker's scratch checkpoint directory (removed after training)."""
        return self.join(f".worker{index}")

    # ------------------------------------------------------------------ config
    def write_config(self, text):
        """Writes the resolved config (already serialised to JSON text)."""
        write_text(self.config_path, text)

    def has_config(self):
        return os.path.exists(self.config_path)

    def append_config_change(self, record):
        """Records settings changed on a resume (one JSON line per resume)."""
        with open(self.config_changes_path, "a") as f:
            f.write(dumps(record) + "\n")

    def read_config(self):
        """The stored config as a dict; `InvalidJSONError` naming the file if it does not
        parse."""
        return read_json(self.config_path)

    # ------------------------------------------------------------------ history
    def load_history(self):
        """Every record of `history.jsonl` (empty when there is none).

        A last line that does not parse is the torn end of an interrupted write (its epoch
        was never checkpointed, because an epoch is recorded before it is checkpointed): it
        is left out, and `torn_history` says so. A bad line before the last raises
        `RunDirectoryError` naming the file and the line.
        """
        return self._read_history()[0]

    def _read_history(self):
        if not os.path.exists(self.history_path):
            return [], False
        with open(self.history_path) as f:
            lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
        records = []
        for i, (number, line) in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    return records, True
                raise RunDirectoryError(
                    f"{self.history_path}, line {number}, is not valid JSON (only a last "
                    "line can be torn by an interrupted write). Repair or delete that line, "
                    "then run again.") from None
        return records, False

    def torn_history(self):
        """True when the last line of `history.jsonl` is torn (see `load_history`)."""
        return self._read_history()[1]

    def truncate_history(self, last_epoch):
        """Keeps the records of epochs up to `last_epoch` (later lines were written but not
        checkpointed, or torn) and returns them."""
        if not os.path.exists(self.history_path):
            return []
        records = [r for r in self.load_history() if r["epoch"] <= last_epoch]
        write_text(self.history_path, "".join(dumps(r) + "\n" for r in records))
        return records

    def append_history(self, record):
        with open(self.history_path, "a") as f:
            f.write(dumps(record) + "\n")

    # ------------------------------------------------------------------ results
    def write_results(self, results):
        write_text(self.results_path, dumps(results, indent=2))

    def read_results(self):
        """The stored `results.json`, or None when the run has not finished."""
        if not os.path.exists(self.results_path):
            return None
        return read_json(self.results_path)

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self):
        """Holds an exclusive lock on the run directory for the block (creating the
        directory); raises `RunDirectoryError` naming the holder when another process has
        it.

        The lock is an advisory `flock` on `.lock`: the operating system releases it when
        the holder exits or dies, so a killed run never leaves a stale lock. It guards runs
        on one machine (and on file systems with working `flock`, e.g. not every NFS).
        Where `fcntl` does not exist (Windows) there is no lock.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise RunDirectoryError(
                    f"{self.path} is in use by another training process ({holder}). Wait "
                    "for it to end, or pass another --workdir.") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock
