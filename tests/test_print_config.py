"""`train.py --print_config`: the resolved config, printed without training or writing, and
the config reference (docs/config.md) lists every field of every shipped config."""

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _print_config(args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--print_config", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def test_print_config_prints_the_resolved_config_and_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    result = _print_config([f"--config={REPO / 'configs' / 'cifar10_resnet18_lps.py'}",
                            "--config.model.downsampling=aps", "--config.train.epochs=5",
                            f"--workdir={workdir}",
                            f"--config.export.dir={tmp_path / 'exports'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["name"] == "cifar10_resnet18_aps"  # derived from the overridden model
    assert config["model"]["downsampling"] == "aps"
    assert config["train"]["epochs"] == 5
    assert config["data"]["name"] == "cifar10"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run dir, no export, no runs/


def test_print_config_refuses_unknown_fields(tmp_path):
    result = _print_config(["--config.train.no_such_field=1"], cwd=tmp_path)
    assert result.returncode != 0
    assert "no_such_field" in result.stderr


def _leaves(config, prefix=""):
    for key, value in config.items():
        name = prefix + key
        if hasattr(value, "items") and name not in (
                "model.antialias_kwargs", "train.lr_schedule", "train.tau_schedule"):
            yield from _leaves(value, name + ".")
        else:
            yield name


def _shipped_configs():
    sys.path.insert(0, str(REPO))
    names = sorted(p.stem for p in (REPO / "configs").glob("*.py")
                   if not p.stem.startswith("_") and p.stem != "base")
    return names


@pytest.mark.parametrize("name", ["base", *_shipped_configs()])
def test_every_config_field_is_documented(name):
    module = importlib.import_module(f"configs.{name}")
    config = module.get_base_config() if name == "base" else module.get_config()
    documented = set(re.findall(r"`([a-z0-9_.]+)`", (REPO / "docs" / "config.md").read_text()))
    missing = sorted(set(_leaves(config)) - documented)
    assert not missing, f"fields of configs/{name}.py missing from docs/config.md: {missing}"
