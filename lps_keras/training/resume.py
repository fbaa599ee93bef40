"""What may change when a run is resumed: the stored config against the new one.

Settings that decide the model's variables (everything under `model`, the dataset, its
image and crop size, the optimizer) cannot change: the checkpoint holds another model.
Everything else (learning rate, epochs, seed, evaluation, export) may, with a warning:
a resumed run then differs from an uninterrupted one, and the run directory records how
(`config_changes.jsonl`), while `config.json` keeps the settings the run started with.
"""

import os

from lps_keras.errors import RunDirectoryError

# Dotted prefixes of the settings a checkpoint depends on.
MODEL_DEFINING = ("model.", "data.name", "data.image_size", "data.crop_size",
                  "train.optimizer", "train.nesterov")


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def config_changes(stored, current):
    """`{dotted_key: (stored_value, current_value)}` for every setting that differs (a key
    missing on one side has the value None there)."""
    old, new = _flatten(stored), _flatten(current)
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)}


def _describe(changes):
    return "; ".join(f"config.{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def check_resume(stored, current, config_path):
    """Returns the changes allowed on a resume; raises `RunDirectoryError` for a change of a
    model-defining setting (see `MODEL_DEFINING`), naming each one."""
    changes = config_changes(stored, current)
    stored_keys = set(_flatten(stored))
    # A setting the stored config lacks was added by a newer release: it keeps the model
    # the checkpoints hold at its default, so it is a warning, not a refusal.
    fatal = {k: v for k, v in changes.items() if k in stored_keys
             and any(k == p or k.startswith(p) for p in MODEL_DEFINING)}
    if fatal:
        raise RunDirectoryError(
            f"The run in {os.path.dirname(config_path)} was started with other model "
            f"settings, and its checkpoints hold that model: {_describe(fatal)}. Nothing "
            "was changed. Train the new settings in another --workdir, or rerun with the "
            f"stored settings (in {config_path}).")
    return changes


def describe_changes(changes):
    """One warning line for allowed changes."""
    return ("Resuming with changed settings (config.json keeps the original ones; the "
            f"changes are recorded in config_changes.jsonl): {_describe(changes)}.")
