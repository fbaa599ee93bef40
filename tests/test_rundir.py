"""The run-directory layout shared by train.py, eval.py and LoadedModel."""

import os
from pathlib import Path

import pytest

from lps_keras import rundir
from lps_keras.rundir import InvalidJSONError, RunDirectory

REPO = Path(__file__).resolve().parents[1]


def test_paths_name_the_documented_files(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.config_path == str(tmp_path / "config.json")
    assert run.checkpoints == str(tmp_path / "checkpoints")
    assert run.history_path == str(tmp_path / "history.jsonl")
    assert run.tensorboard == str(tmp_path / "tensorboard")
    assert run.model_path == str(tmp_path / "model.keras")
    assert run.results_path == str(tmp_path / "results.json")
    assert run.eval_dir == str(tmp_path / "eval")
    assert not rundir.is_run_directory(tmp_path)
    run.write_config('{"name": "x"}')
    assert rundir.is_run_directory(tmp_path)
    assert run.read_config() == {"name": "x"}


def test_history_append_load_truncate(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.load_history() == [] and run.truncate_history(3) == []
    for epoch in (1, 2, 3):
        run.append_history({"epoch": epoch, "loss": 1.0 / epoch})
    assert [r["epoch"] for r in run.load_history()] == [1, 2, 3]
    assert [r["epoch"] for r in run.truncate_history(2)] == [1, 2]
    assert [r["epoch"] for r in run.load_history()] == [1, 2]


def test_invalid_config_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InvalidJSONError, match="config.json is not valid JSON"):
        RunDirectory(tmp_path).read_config()
    with pytest.raises(ValueError, match=str(tmp_path)):
        RunDirectory(tmp_path).read_config()


def test_loaded_model_reports_an_invalid_config(tmp_path):
    from lps_keras.evaluation import LoadedModel

    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.keras").write_text("")
    with pytest.raises(InvalidJSONError, match="config.json is not valid JSON"):
        LoadedModel(tmp_path)


def test_a_torn_last_history_line_is_dropped_and_repaired(tmp_path):
    run = RunDirectory(tmp_path)
    run.append_history({"epoch": 1, "loss": 0.5})
    with open(run.history_path, "a") as f:
        f.write('{"epoch": 2, "lo')
    assert run.torn_history()
    assert run.load_history() == [{"epoch": 1, "loss": 0.5}]
    assert run.truncate_history(1) == [{"epoch": 1, "loss": 0.5}]
    assert not run.torn_history()
    assert (tmp_path / "history.jsonl").read_text() == '{"epoch": 1, "loss": 0.5}\n'


def test_a_bad_line_before_the_last_is_named(tmp_path):
    from lps_keras.errors import RunDirectoryError

    (tmp_path / "history.jsonl").write_text('{"epoch": 1}\n{oops\n{"epoch": 3}\n')
    with pytest.raises(RunDirectoryError, match=r"history\.jsonl, line 2, is not valid JSON"):
        RunDirectory(tmp_path).load_history()


def test_every_json_file_is_strict_json(tmp_path):
    import json

    import numpy as np

    run = RunDirectory(tmp_path)
    run.write_results({"accuracy": float("nan"), "curve": [1.0, float("inf")],
                       "count": np.int64(3), "loss": np.float32(0.25)})
    run.append_history({"epoch": 1, "loss": float("-inf")})

    def refuse(constant):
        raise AssertionError(f"bare {constant} in the file")

    results = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert results == {"accuracy": None, "curve": [1.0, None], "count": 3, "loss": 0.25}
    history = json.loads((tmp_path / "history.jsonl").read_text(), parse_constant=refuse)
    assert history == {"epoch": 1, "loss": None}


def test_staged_file_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError), rundir.staged_file(target) as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]
    with rundir.staged_file(target) as tmp, open(tmp, "w") as f:
        f.write("new")
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["model.keras"]


_HOLD_LOCK = """
import sys, time
from lps_keras.rundir import RunDirectory
with RunDirectory(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(600)
"""


def _hold_lock(path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_the_lock_refuses_a_second_holder_and_dies_with_its_holder(tmp_path):
    from lps_keras.errors import RunDirectoryError

    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(RunDirectoryError, match=rf"in use by another training process "
                                                    rf"\(pid {holder.pid} on "):
            with RunDirectory(tmp_path).lock():
                pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs
        holder.wait()
    with RunDirectory(tmp_path).lock():  # the lock died with its holder
        pass
    with RunDirectory(tmp_path).lock():  # and is released on exit
        pass
