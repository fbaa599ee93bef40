"""lps_keras.versioned_dir: atomic integer-versioned directories, without TensorFlow."""

import subprocess
import sys
from pathlib import Path

import pytest

from lps_keras import versioned_dir

REPO = Path(__file__).resolve().parents[1]


def test_next_version_and_staged_write(tmp_path):
    parent = tmp_path / "m"
    version, final = versioned_dir.prepare(parent)
    assert version == 1 and final == str(parent / "1")
    with versioned_dir.staged(final) as tmp:
        assert Path(tmp).name.startswith(".1.tmp-")
        (Path(tmp) / "f").write_text("a")
    assert (parent / "1" / "f").read_text() == "a"
    assert sorted(p.name for p in parent.iterdir()) == ["1"]
    assert versioned_dir.prepare(parent)[0] == 2
    with pytest.raises(FileExistsError, match="already exists"):
        versioned_dir.prepare(parent, 1)


def test_failure_leaves_nothing_and_overwrite_swaps(tmp_path):
    _, final = versioned_dir.prepare(tmp_path, 3)
    with pytest.raises(RuntimeError), versioned_dir.staged(final):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    for text in ("old", "new"):
        with versioned_dir.staged(final, overwrite=True) as tmp:
            (Path(tmp) / "f").write_text(text)
    assert (tmp_path / "3" / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3"]


def test_imports_no_tensorflow():
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location("
            f"'vd', {str(REPO / 'lps_keras' / 'versioned_dir.py')!r}); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
