"""The run-directory layout shared by train.py, eval.py and LoadedModel."""

import pytest

from lps_keras import rundir
from lps_keras.rundir import InvalidJSONError, RunDirectory


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
