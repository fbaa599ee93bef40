"""Atomic, integer-versioned directories: `<parent>/<version>/` as TF Serving scans them.

Pure OS (no TensorFlow). A version is written into a hidden, non-integer-named sibling
(`<parent>/.<version>.tmp-XXXX`, which servers ignore), flushed to disk and renamed into
place only once complete, so a reader never sees a half-written version. An exception
removes the temporary directory. Replacing an existing version renames the old one aside,
the new one in, then deletes the old one.

A process killed mid-write leaves its temporary directory behind (and, killed between the
two renames of a replacement, the old version aside). The names record the writer's host
and process id, so the next `prepare` of the same parent removes what a dead writer on
this host left, and puts back an old version that was set aside but never replaced.
"""

import contextlib
import os
import re
import secrets
import shutil
import socket
import time

# `.<version>.tmp-<host>-<pid>-<hex>` and `.<version>.old-<host>-<pid>-<hex>`; the form
# without host and pid (`.<version>.tmp-<hex>`) is that of earlier releases.
_STAGING = re.compile(r"^\.(\d+)\.(tmp|old)-(?:(.+)-(\d+)-)?[0-9a-f]+$")
# A staging directory of an earlier release is removed once it is this old (no writer
# takes that long); its name does not say whether the writer is alive.
_LEGACY_AGE = 3600.0


def exists_error(path):
    return FileExistsError(
        f"Version directory {path!r} already exists. Pass overwrite=True to replace it, "
        "another `version`, or version=None for the next free one."
    )


def next_version(parent):
    """1 + the largest integer-named entry of `parent` (1 when there is none)."""
    versions = [int(entry) for entry in os.listdir(parent)
                if entry.isascii() and entry.isdigit()]
    return max(versions, default=0) + 1


def prepare(parent, version=None, overwrite=False):
    """Creates `parent` if missing and returns `(version, final_dir)`.

    `version=None` picks `next_version(parent)`. Raises `FileExistsError` when the version
    exists and `overwrite` is False.
    """
    os.makedirs(parent, exist_ok=True)
    clean_stale(parent)
    if version is None:
        version = next_version(parent)
    final_dir = os.path.join(parent, str(version))
    if os.path.lexists(final_dir) and not overwrite:
        raise exists_error(final_dir)
    return version, final_dir


@contextlib.contextmanager
def staged(final_dir, overwrite=False):
    """Yields a new hidden temporary sibling of `final_dir` to write into; when the block
    ends without an exception, flushes it and renames it to `final_dir` (swapping out an
    existing one with `overwrite`). On any exception the temporary directory is removed.

    (Not `tempfile.mkdtemp`: its 0700 mode would lock out a server running as another
    user.)
    """
    parent, version = os.path.split(final_dir)
    tmp_dir = unused_path(parent, f".{version}.tmp-{_writer()}-")
    os.mkdir(tmp_dir)
    try:
        yield tmp_dir
        fsync_tree(tmp_dir)
        install(tmp_dir, final_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    fsync_dir(parent)


def install(tmp_dir, final_dir, overwrite):
    """Renames the finished `tmp_dir` to `final_dir`; with `overwrite`, swaps it in."""
    if not os.path.lexists(final_dir):
        os.replace(tmp_dir, final_dir)
        return
    if not overwrite:  # appeared while we were writing (a concurrent export)
        raise exists_error(final_dir)
    parent, version = os.path.split(final_dir)
    old_dir = unused_path(parent, f".{version}.old-{_writer()}-")
    os.replace(final_dir, old_dir)
    try:
        os.replace(tmp_dir, final_dir)
    except BaseException:
        os.replace(old_dir, final_dir)  # put the previous version back
        raise
    shutil.rmtree(old_dir, ignore_errors=True)


def _writer():
    return f"{socket.gethostname()}-{os.getpid()}"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, as another user's process
        return True
    return True


def clean_stale(parent):
    """Removes the staging directories under `parent` whose writer is gone (a dead process
    on this host, or an earlier release's directory older than an hour) and renames back
    an old version that such a writer set aside but never replaced. Returns the names
    removed or restored."""
    cleaned = []
    host = socket.gethostname()
    for entry in sorted(os.listdir(parent)):
        match = _STAGING.match(entry)
        if not match:
            continue
        version, kind, writer_host, pid = match.groups()
        path = os.path.join(parent, entry)
        if pid is None:
            try:
                stale = time.time() - os.path.getmtime(path) > _LEGACY_AGE
            except OSError:
                continue
        else:
            stale = writer_host == host and not _alive(int(pid))
        if not stale:
            continue
        final_dir = os.path.join(parent, version)
        if kind == "old" and not os.path.lexists(final_dir):
            os.replace(path, final_dir)  # the replacement never arrived: keep the old one
        else:
            shutil.rmtree(path, ignore_errors=True)
        cleaned.append(entry)
    return cleaned


def unused_path(directory, prefix):
    """`directory/<prefix><random hex>` that does not exist yet."""
    while True:
        path = os.path.join(directory, prefix + secrets.token_hex(6))
        if not os.path.lexists(path):
            return path


def fsync_tree(path):
    """Flushes every file and directory under `path` so a power cut cannot leave a renamed
    but empty version behind."""
    for dirpath, _, filenames in os.walk(path):
        for filename in filenames:
            fd = os.open(os.path.join(dirpath, filename), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
