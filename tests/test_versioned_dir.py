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


_DIE_WHILE_WRITING = """
import os, sys
from lps_keras import versioned_dir
version, final = versioned_dir.prepare(sys.argv[1])
with versioned_dir.staged(final) as tmp:
    open(os.path.join(tmp, "saved_model.pb"), "w").write("half")
    os._exit(9)  # dies mid-write: no exception handler, no cleanup runs
"""


def test_what_a_killed_writer_leaves_is_cleaned_by_the_next_prepare(tmp_path):
    parent = tmp_path / "m"
    code = subprocess.run([sys.executable, "-c", _DIE_WHILE_WRITING, str(parent)],
                          env={"PYTHONPATH": str(REPO)}, check=False).returncode
    assert code == 9
    [leftover] = [p.name for p in parent.iterdir()]
    assert leftover.startswith(".1.tmp-")
    version, _ = versioned_dir.prepare(parent)
    assert version == 1 and list(parent.iterdir()) == []


def test_cleaning_spares_live_writers_and_restores_a_version_set_aside(tmp_path):
    import os
    import socket
    import time

    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    live = tmp_path / f".3.tmp-{host}-{os.getpid()}-abc123"  # this process: alive
    other_host = tmp_path / f".4.tmp-elsewhere-{dead}-abc123"  # cannot tell: kept
    legacy_new = tmp_path / ".5.tmp-0123456789ab"  # an earlier release, recent: kept
    legacy_old = tmp_path / ".6.tmp-ba9876543210"  # an earlier release, old: removed
    aside = tmp_path / f".2.old-{host}-{dead}-def456"  # killed between the two renames
    for path in (live, other_host, legacy_new, legacy_old, aside):
        path.mkdir()
    (aside / "saved_model.pb").write_text("version 2")
    hours_ago = time.time() - 3 * 3600
    os.utime(legacy_old, (hours_ago, hours_ago))
    versioned_dir.prepare(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["2", live.name, other_host.name, legacy_new.name])
    assert (tmp_path / "2" / "saved_model.pb").read_text() == "version 2"
