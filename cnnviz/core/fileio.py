"""Atomic file writing and cancellation checks shared by every writer and long job in the core."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cnnviz.core.errors import CnnvizError

PathLike = str | os.PathLike[str]

# Linux's unnamed temporary files: a writer killed mid-write leaves nothing behind. 0 where absent.
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
# What open(O_TMPFILE) gives on a kernel or filesystem without them (an old kernel ignores the flag and
# opens the folder itself, hence EISDIR).
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL})
# An unnamed file gets its name through this link; without /proc the data is copied to a named file.
_PROC_FD = "/proc/self/fd/{}"
_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
# Named temporaries older than this are leftovers of a crash, whoever wrote them.
STALE_TEMPORARY_S = 3600.0


def atomic_writer(
    path: PathLike, *, text: bool = False, durable: bool = True
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Write ``path`` atomically: yield a file beside it; on success fsync it and move it into place.

    A reader never sees a half-written file: either the old one or the complete new one. On any error (or a
    cancellation raised inside the block) nothing is left behind and the old file is left as it was. On Linux
    the data goes to an unnamed file that the kernel frees if the writer is killed; elsewhere a named
    ``.<name>.<host>-<pid>-<random>.tmp`` is used, and such leftovers of dead writers (or older than an hour)
    are removed on the next write to the same target. The result gets the permissions a plain ``open()``
    would give a new file. A target that is a folder, device, FIFO or socket is refused (``OSError`` whose
    ``strerror`` says why); OSErrors reach the caller, which turns them into its own user-facing message.
    ``durable=False`` skips the fsyncs: still atomic for readers and after a killed process, but not
    after a power failure (for files rewritten often and written durably at the end).
    """
    return _atomic_writer(Path(path), text, durable)


def _write_error(path: Path, exc: OSError) -> CnnvizError:
    reason = exc.strerror or str(exc)
    return CnnvizError(f"cannot write '{path}': {reason}; choose a folder you can write to")


def atomic_write_bytes(path: PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`); failures are a CnnvizError.

    ``durable=False`` skips the fsync.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise CnnvizError(f"cannot write '{target}': the folder '{folder}' does not exist")
    problem = write_target_problem(target)
    if problem is not None:
        raise CnnvizError(f"cannot write '{target}': it {problem}; give another file name")
    try:
        with atomic_writer(target, durable=durable) as handle:
            handle.write(data)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    return target


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, obj: Any) -> Path:
    """Pretty-printed JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def _atomic_writer(target: Path, text: bool, durable: bool) -> Iterator[IO[Any]]:
    folder = target.parent
    problem = write_target_problem(target)
    if problem is not None:
        raise OSError(errno.EISDIR if "folder" in problem else errno.EINVAL, problem, str(target))
    remove_stale_temporaries(target)
    fd, tmp = _open_temporary(folder, target.name)
    try:
        handle: IO[Any] = os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
            if tmp is None:
                tmp = _give_name(handle.fileno(), folder, target.name)
        # Readers see the old file or the new one: rename is atomic within a folder.
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        _fsync_folder(folder)


def write_target_problem(target: PathLike) -> str | None:
    """Why ``target`` must not be replaced by a new file, as ``"is a folder, not a file"``, or None.

    Folders, devices, FIFOs and sockets are refused (replacing ``/dev/null`` as root would be a disaster);
    a missing path, a regular file or a symbolic link (replaced itself, its target untouched) is fine.
    """
    try:
        mode = os.lstat(target).st_mode
    except (OSError, ValueError):
        return None  # missing (the usual case) or unreadable: the write itself reports the latter
    if stat.S_ISLNK(mode):
        # The link itself is replaced, its target untouched; only a link to a folder is refused, as
        # a plain open() would refuse it.
        with contextlib.suppress(OSError, ValueError):
            mode = os.stat(target).st_mode
        return "is a folder, not a file" if stat.S_ISDIR(mode) else None
    if stat.S_ISREG(mode):
        return None
    return _special_file_reason(mode)


def _open_temporary(folder: Path, name: str) -> tuple[int, Path | None]:
    """A new file in ``folder`` for writing: unnamed (path None) where the system allows, else named."""
    if _O_TMPFILE:
        try:
            return os.open(folder, _O_TMPFILE | os.O_RDWR | _FLAGS, 0o666), None
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
    return _open_named(folder, name)


def _open_named(folder: Path, name: str) -> tuple[int, Path]:
    # Mode 0o666 through open() lets the umask (and a default ACL) apply as for any new file.
    for _ in range(100):
        tmp = folder / _temporary_name(name)
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _give_name(fd: int, folder: Path, name: str) -> Path:
    """Link the unnamed file ``fd`` into ``folder`` under a fresh temporary name; returns that name."""
    for _ in range(100):
        tmp = folder / _temporary_name(name)
        try:
            # src_dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW), which follows the /proc link to
            # the open file; a plain link() would try to link the /proc entry itself (EXDEV).
            dir_fd = os.open(folder, os.O_RDONLY | _FLAGS)
            try:
                os.link(_PROC_FD.format(fd), tmp, src_dir_fd=dir_fd, follow_symlinks=True)
            finally:
                os.close(dir_fd)
            return tmp
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EXDEV, errno.EPERM, errno.ENOTDIR):
                raise
            return _copy_to_named(fd, folder, name)  # no /proc: copy into a named temporary
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _copy_to_named(fd: int, folder: Path, name: str) -> Path:
    out, tmp = _open_named(folder, name)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
        os.fsync(out)
    except BaseException:
        os.close(out)
        _unlink_quietly(tmp)
        raise
    os.close(out)
    return tmp


def _unlink_quietly(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


# --------------------------------------------------------------------------------------------------------------
# Named temporaries: how they are named, and how leftovers are recognised


def _host_tag() -> str:
    # The pid in a name means something only on the machine (and pid namespace) that wrote it.
    return hashlib.sha1(socket.gethostname().encode(), usedforsecurity=False).hexdigest()[:6]


def _temporary_prefix(name: str) -> str:
    if len(os.fsencode(name)) > 200:  # keep the temporary within the 255-byte name limit
        name = "cnnviz-" + hashlib.sha1(os.fsencode(name), usedforsecurity=False).hexdigest()[:16]
    return f".{name}."


def _temporary_name(name: str) -> str:
    return f"{_temporary_prefix(name)}{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


_OURS = re.compile(r"(?P<host>[0-9a-f]{6})-(?P<pid>[0-9]+)-[0-9a-f]{8}")
_MKSTEMP = re.compile(r"[A-Za-z0-9_]{8}")  # what earlier versions (tempfile.mkstemp) left


def _pid_alive(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:
        return True  # cannot tell (on Windows signal 0 is CTRL_C_EVENT): rely on the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Remove leftover temporaries of earlier writes to ``path``; returns what was removed.

    Only names this module makes are touched, and only regular files: those whose writer (by pid, on this
    host) is gone, and any older than :data:`STALE_TEMPORARY_S`. Errors are ignored.
    """
    target = Path(path)
    prefix = _temporary_prefix(target.name)
    removed: list[Path] = []
    now = time.time()
    host = _host_tag()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        middle = name[len(prefix) : -len(".tmp")]
        ours = _OURS.fullmatch(middle)
        if ours is None and _MKSTEMP.fullmatch(middle) is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        dead = ours is not None and ours["host"] == host and not _pid_alive(int(ours["pid"]))
        if dead or now - info.st_mtime > STALE_TEMPORARY_S:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


# --------------------------------------------------------------------------------------------------------------
# Can a folder take new files?


def _write_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is used up"
    return ""


def folder_write_problem(folder: PathLike, *, may_create: bool = False) -> str | None:
    """Why new files cannot be written into ``folder``, as a clause (``"'x' is a file, not a folder"``).

    None when they can. The check really creates a temporary file there (unnamed where possible, so not
    even a crash leaves it behind) and removes it. With ``may_create`` a missing folder is fine when its
    nearest existing parent folder can take new entries.
    """
    wanted = Path(folder)
    probe = wanted
    while True:
        try:
            mode = os.stat(probe).st_mode
            break
        except FileNotFoundError:
            if probe == probe.parent:
                return f"the folder '{wanted}' does not exist"
            if not may_create and probe == wanted and os.path.lexists(probe):
                return f"'{probe}' is a broken symbolic link"
            probe = probe.parent
        except NotADirectoryError:
            probe = probe.parent  # a parent is a file: found on the way up
        except ValueError:
            return f"'{wanted}' is not a valid folder name"
        except OSError as exc:
            return f"the folder '{probe}' cannot be used ({exc.strerror or exc})"
    if not stat.S_ISDIR(mode):
        kind = "a file" if stat.S_ISREG(mode) else "not a regular file"
        return f"'{probe}' is {kind}, not a folder"
    if probe != wanted and not may_create:
        return f"the folder '{wanted}' does not exist"
    try:
        fd, tmp = _open_temporary(probe, ".cnnviz-write-test")
    except OSError as exc:
        reason = _write_reason(exc)
        return f"the folder '{probe}' does not accept new files" + (
            f" ({reason})" if reason else ""
        )
    os.close(fd)
    _unlink_quietly(tmp)
    return None


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_cancelled(cancel: Any) -> bool:
    """True when ``cancel`` (None, a ``threading.Event``-like object or a callable) asks to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def regular_file_problem(path: PathLike) -> str | None:
    """Why ``path`` cannot be read as an ordinary file, in words, or None when it can.

    Checked before anything opens the path, so that a FIFO, socket or device (which would block ``open()`` or
    stream forever) is refused at once, and a symlink loop is named as one instead of "does not exist".
    The reason is a sentence fragment such as ``"does not exist"`` or ``"is a FIFO (named pipe), not a regular file"``.
    """
    import errno

    try:
        info = os.stat(path)
    except FileNotFoundError:
        try:
            os.lstat(path)
        except OSError:
            return "does not exist"
        return "is a broken symbolic link (its target does not exist)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (its links point back at each other)"
        if exc.errno == errno.EACCES:
            return "cannot be read (permission denied)"
        if exc.errno == errno.ENAMETOOLONG:
            return "has a name too long for this system"
        return f"cannot be opened ({exc.strerror or exc})"
    except ValueError:  # an embedded NUL byte
        return "is not a valid file name"
    mode = info.st_mode
    if stat.S_ISREG(mode):
        if not os.access(path, os.R_OK):
            return "cannot be read (permission denied)"
        return None
    return _special_file_reason(mode)


def _special_file_reason(mode: int) -> str:
    """What a non-regular file is, as the end of a sentence: "is a FIFO (named pipe), not a regular file"."""
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kinds = (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file"


def open_regular_file(path: PathLike) -> IO[bytes]:
    """Open ``path`` for binary reading, refusing anything but a regular file without ever blocking.

    The file is opened non-blocking (a FIFO then returns at once instead of waiting for a writer) and
    checked with ``fstat`` on the open descriptor, so a path swapped after :func:`regular_file_problem` is
    still refused. Raises ``OSError`` with the reason as its ``strerror`` for anything else.
    """
    problem = regular_file_problem(path)
    if problem is not None:
        raise OSError(0, problem, os.fspath(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "is not a regular file", os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
