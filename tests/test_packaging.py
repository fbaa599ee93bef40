"""The package builds as a wheel and an sdist named `lps-keras` that pass `twine check`.

The build runs on a copy of the source tree (the build leaves `build/` and an `.egg-info`
behind) with `--no-isolation`: the venv's setuptools and wheel, no network.
"""

import email
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from lps_keras._version import __version__

REPO = Path(__file__).resolve().parents[1]
NAME = "lps-keras"
PACKAGES = ("layers", "models", "training", "data", "evaluation", "convert")
IGNORE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "eval",
                                "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
                                "saved_models")

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("build") and importlib.util.find_spec("twine")),
    reason="needs the `build` and `twine` packages (the `test` extra)")


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    root = tmp_path_factory.mktemp("packaging")
    source, out = root / "source", root / "dist"
    shutil.copytree(REPO, source, ignore=IGNORE)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
         "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def test_twine_check_passes(dists):
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def _metadata(text):
    return email.message_from_string(text)


def test_wheel_holds_the_library_only(dists):
    wheel, _ = dists
    assert wheel.name == f"lps_keras-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"lps_keras-{__version__}.dist-info"
        metadata = _metadata(archive.read(f"{info}/METADATA").decode())
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
    assert top_level == ["lps_keras"]
    for package in PACKAGES:
        assert f"lps_keras/{package}/__init__.py" in names, package
    assert "lps_keras/layers/downsampling.py" in names
    # Repository-level parts stay out: `configs` is no importable package of ours (train.py
    # reads it from the source tree), tests and benchmarks are not the library.
    roots = {name.split("/")[0] for name in names}
    assert roots == {"lps_keras", info}, roots
    assert metadata["Name"] == NAME
    assert metadata["Version"] == __version__
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License"] == "Apache-2.0"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "Keras 3" in metadata["Summary"]
    assert "keras" in metadata["Keywords"]
    assert any("Python :: 3.11" in c for c in metadata.get_all("Classifier"))
    assert metadata.get_payload().startswith("# lps_keras")  # the README
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("keras") for r in requires)
    assert any("build" in r and 'extra == "test"' in r for r in requires)


def test_sdist_holds_the_library_scripts_configs_and_docs(dists):
    _, sdist = dists
    # PEP 625 (setuptools >= 69.3) normalises the file name; older setuptools keep the dash.
    assert re.fullmatch(rf"lps[-_]keras-{re.escape(__version__)}\.tar\.gz", sdist.name)
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        top = names[0].split("/")[0]
        pkg_info = _metadata(archive.extractfile(f"{top}/PKG-INFO").read().decode())
    assert top == sdist.name[:-len(".tar.gz")]
    files = {name[len(top) + 1:] for name in names}
    assert pkg_info["Name"] == NAME and pkg_info["Version"] == __version__
    for path in ("README.md", "setup.cfg", "pyproject.toml", "MANIFEST.in", "train.py",
                 "eval.py", "configs/base.py", "configs/default.py", "docs/config.md",
                 "lps_keras/__init__.py", "lps_keras/layers/downsampling.py"):
        assert path in files, path
    for prefix in ("tests/", "benchmarks/", "tools/", "saved_models/", "runs/"):
        assert not any(f.startswith(prefix) for f in files), prefix
