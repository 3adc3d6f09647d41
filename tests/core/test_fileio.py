"""Atomic writes: nothing left behind by a killed writer, old files intact, permissions as open() gives."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviz.core import fileio

CHUNK = 1 << 20

# A child that starts a large atomic write, says so, and keeps writing until it is killed.
WRITER = """
import os, sys, time
from cnnviz.core import fileio
if sys.argv[2] == "named":
    # An old kernel ignores O_TMPFILE's extra bit and opens the folder itself: EISDIR, the fallback.
    fileio._O_TMPFILE = os.O_DIRECTORY
with fileio.atomic_writer(sys.argv[1]) as handle:
    for i in range(64):
        handle.write(os.urandom(1 << 20))
    handle.flush()
    print("writing", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        handle.write(b"x" * 4096)
        time.sleep(0.01)
"""


def _unnamed_supported(folder: Path) -> bool:
    if not fileio._O_TMPFILE:
        return False
    try:
        os.close(os.open(folder, fileio._O_TMPFILE | os.O_RDWR, 0o600))
    except OSError:
        return False
    return True


def _start_writer(target: Path, mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(fileio.__file__).parents[2]))
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "writing"
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_killed_writer_leaves_nothing_and_the_old_file_intact(tmp_path):
    if not _unnamed_supported(tmp_path):
        pytest.skip("this file system has no unnamed temporary files")
    target = tmp_path / "model.pt"
    target.write_bytes(b"old checkpoint")
    child = _start_writer(target, "unnamed")
    try:
        # 64 MiB written so far, and not one new name in the folder.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    finally:
        _kill(child)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert target.read_bytes() == b"old checkpoint"


def test_killed_fallback_writer_is_cleaned_up_by_the_next_write(tmp_path):
    # The named fallback cannot be produced for real on this machine's file system (it has unnamed
    # files), so the child simulates a kernel without them; see WRITER.
    target = tmp_path / "model.pt"
    target.write_bytes(b"old checkpoint")
    child = _start_writer(target, "named")
    _kill(child)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.pt"]
    assert len(leftovers) == 1
    match = re.fullmatch(r"\.model\.pt\.[0-9a-f]{6}-(\d+)-[0-9a-f]{8}\.tmp", leftovers[0])
    assert match is not None and int(match[1]) == child.pid
    assert (tmp_path / leftovers[0]).stat().st_size >= 64 * CHUNK
    assert target.read_bytes() == b"old checkpoint"

    with fileio.atomic_writer(target) as handle:
        handle.write(b"new checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert target.read_bytes() == b"new checkpoint"


@pytest.fixture(params=["unnamed", "named", "no-proc"])
def way(request, monkeypatch, tmp_path):
    """Each way atomic_writer can take: unnamed file, named fallback, unnamed file copied (no /proc)."""
    if request.param == "unnamed" and not _unnamed_supported(tmp_path):
        pytest.skip("this file system has no unnamed temporary files")
    if request.param == "named":
        monkeypatch.setattr(fileio, "_O_TMPFILE", 0)  # as on a system without O_TMPFILE
    if request.param == "no-proc":
        if not _unnamed_supported(tmp_path):
            pytest.skip("this file system has no unnamed temporary files")
        monkeypatch.setattr(fileio, "_PROC_FD", str(tmp_path / "no-proc" / "{}"))
    return request.param


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_content_and_permissions_as_a_plain_open_gives(tmp_path, way, umask):
    data = os.urandom(3 * CHUNK + 17)
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.bin", "wb") as plain:
            plain.write(data)
        with fileio.atomic_writer(tmp_path / "atomic.bin") as handle:
            handle.write(data)
    finally:
        os.umask(old)
    atomic, plain_path = tmp_path / "atomic.bin", tmp_path / "plain.bin"
    assert atomic.read_bytes() == data
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain_path.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.bin", "plain.bin"]


def test_text_mode_writes_utf8(tmp_path, way):
    target = tmp_path / "note.txt"
    with fileio.atomic_writer(target, text=True) as handle:
        handle.write("Gewichte: ä, 畳み込み\n")
    assert target.read_bytes() == "Gewichte: ä, 畳み込み\n".encode()


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_error_or_cancellation_keeps_the_old_file(tmp_path, way, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        with fileio.atomic_writer(target) as handle:
            handle.write(b"half of the new")
            raise error
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_targets_that_are_not_files_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    link_to_folder = tmp_path / "to-folder"
    link_to_folder.symlink_to(folder)
    for target, reason in [(fifo, "FIFO"), (folder, "folder"), (link_to_folder, "folder")]:
        with pytest.raises(OSError) as caught:
            with fileio.atomic_writer(target) as handle:
                handle.write(b"x")
        assert reason in caught.value.strerror
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and folder.is_dir() and link_to_folder.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "pipe", "to-folder"]


def test_a_symbolic_link_is_replaced_and_its_target_untouched(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with fileio.atomic_writer(link, text=True) as handle:
        handle.write("new")
    assert not link.is_symlink() and link.read_text() == "new"
    assert real.read_text() == "keep"


def test_only_stale_temporaries_of_our_own_naming_are_removed(tmp_path):
    target = tmp_path / "model.pt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = fileio._host_tag()
    hours_ago = time.time() - 2 * 3600
    names = {
        "dead_writer": f".model.pt.{host}-{dead.pid}-0123abcd.tmp",
        "live_writer": f".model.pt.{host}-{os.getpid()}-0123abcd.tmp",
        "live_but_old": f".model.pt.{host}-{os.getpid()}-89abcdef.tmp",
        "other_host_dead": f".model.pt.ffffff-{dead.pid}-0123abcd.tmp"
        if host != "ffffff"
        else f".model.pt.eeeeee-{dead.pid}-0123abcd.tmp",
        "mkstemp_fresh": ".model.pt.k2j4h_9a.tmp",
        "mkstemp_old": ".model.pt.x8d0q1mz.tmp",
        "other_target_old": ".other.pt.x8d0q1mz.tmp",
        "user_file_old": ".model.pt.backup.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    for key in ("live_but_old", "mkstemp_old", "other_target_old", "user_file_old"):
        os.utime(tmp_path / names[key], (hours_ago, hours_ago))
    old_dir = tmp_path / f".model.pt.{host}-{dead.pid}-fedcba98.tmp"
    old_dir.mkdir()

    removed = {p.name for p in fileio.remove_stale_temporaries(target)}
    assert removed == {names["dead_writer"], names["live_but_old"], names["mkstemp_old"]}
    left = {p.name for p in tmp_path.iterdir()}
    assert left == (set(names.values()) - removed) | {old_dir.name}


def test_folder_write_problem(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert fileio.folder_write_problem(tmp_path) is None
    assert fileio.folder_write_problem(tmp_path / "new" / "deeper", may_create=True) is None
    assert "does not exist" in (fileio.folder_write_problem(tmp_path / "new") or "")
    assert "is a file, not a folder" in (fileio.folder_write_problem(a_file / "sub") or "")
    assert "is a file" in (fileio.folder_write_problem(a_file / "sub", may_create=True) or "")
    # Nothing left by the probes.
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_folders_even_root_cannot_write_into():
    # Tests may run as root, where chmod does not stop writes; /proc takes no new files from anyone.
    problem = fileio.folder_write_problem("/proc")
    assert problem is not None and "does not accept new files" in problem
    with pytest.raises(OSError):
        with fileio.atomic_writer("/proc/cnnviz-test.bin") as handle:
            handle.write(b"x")
    assert not os.path.lexists("/proc/cnnviz-test.bin")


def test_not_durable_is_still_atomic(tmp_path, way):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    with fileio.atomic_writer(target, text=True, durable=False) as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
