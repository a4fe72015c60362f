"""Writing results: atomically, so a failed run never leaves a partial or clobbered file."""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile

from udnet.errors import UsageError, show_path

#: Paths that name one of this process's open descriptors. Their links resolve to whatever
#: the descriptor is (``>> log.txt`` makes /dev/stdout resolve to log.txt): the data goes
#: to the descriptor, at its offset and with its append mode, and nothing is replaced.
_STD_STREAMS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/(?:dev/fd|proc/self/fd|proc/thread-self/fd|proc/(\d+)/fd|proc/(\d+)/task/\d+/fd)/(\d+)")


def write_atomic(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    A symbolic link stays a link: the file it points to is replaced. A device, FIFO or
    socket (``-o /dev/null``) is written in place: renaming over it would replace the
    device node itself (as root, /dev/null would become a file). A path that names an open
    descriptor (``-o /dev/stdout``, /dev/fd/N, /proc/self/fd/N) is written to that
    descriptor, never replaced: under ``>> log.txt`` the model is appended to log.txt.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not path:
        raise UsageError("the output path is empty", hint="name a file, or - for standard output")
    shown = show_path(path)
    fd = _descriptor(path)
    if fd is not None:
        _write_descriptor(fd, payload, shown)
        return
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise UsageError(f"cannot write {shown}: it is a directory")
    if os.path.exists(real) and not os.path.isfile(real):
        _write_in_place(real, payload, shown)
        return
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise UsageError(f"cannot write {shown}: {show_path(directory)} is not a directory")
        raise UsageError(f"cannot write {shown}: the directory {show_path(directory)} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".udnet-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write {shown}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(real):
            os.chmod(tmp, os.stat(real).st_mode & 0o777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, real)
    except OSError as e:
        _remove(tmp)
        raise UsageError(f"cannot write {shown}: {e.strerror}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _descriptor(path: str) -> int | None:
    """The descriptor ``path`` names (/dev/stdout, /dev/fd/N, /proc/self/fd/N, or a link to
    one of them), else None."""
    p = os.path.abspath(path)
    for _ in range(40):  # links to links, up to the kernel's own limit
        p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        if p in _STD_STREAMS:
            return _STD_STREAMS[p]
        m = _FD_PATH.fullmatch(p)
        if m:
            pid = m.group(1) or m.group(2)
            return int(m.group(3)) if pid is None or int(pid) == os.getpid() else None
        try:
            target = os.readlink(p)
        except OSError:  # not a link (or not there): an ordinary path
            return None
        p = os.path.normpath(os.path.join(os.path.dirname(p), target))
    return None


def _write_descriptor(fd: int, payload: bytes, shown: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    view = memoryview(payload)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UsageError(f"cannot write {shown}: {e.strerror}") from None


def _write_in_place(real: str, payload: bytes, shown: str) -> None:
    """A device, FIFO or socket. A FIFO is opened without waiting: with no reader, opening
    it would block until one comes, possibly forever."""
    try:
        fifo = stat.S_ISFIFO(os.stat(real).st_mode)
    except OSError as e:
        raise UsageError(f"cannot write {shown}: {e.strerror}") from None
    try:
        fd = os.open(real, os.O_WRONLY | (os.O_NONBLOCK if fifo else 0))
    except OSError as e:
        if e.errno == errno.ENXIO:
            what = "a FIFO with no reader" if fifo else "not a file that can be opened for writing"
            raise UsageError(
                f"cannot write {shown}: it is {what}",
                hint="start the reader first, or write a regular file" if fifo else None,
            ) from None
        raise UsageError(f"cannot write {shown}: {e.strerror}") from None
    try:
        if fifo:
            os.set_blocking(fd, True)
        _write_descriptor(fd, payload, shown)
    finally:
        os.close(fd)
