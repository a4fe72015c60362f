"""Writing results: atomically, so a failed run never leaves a partial or clobbered file."""

from __future__ import annotations

import os
import tempfile

from udnet.errors import UsageError


def write_atomic(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    A symbolic link stays a link: the file it points to is replaced. A device, FIFO or
    socket (``-o /dev/null``, ``-o /dev/stdout``) is written in place: renaming over it
    would replace the device node itself (as root, /dev/null would become a file).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise UsageError(f"cannot write {path}: it is a directory")
    if os.path.exists(real) and not os.path.isfile(real):
        try:
            with open(real, "wb") as f:
                f.write(payload)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}") from None
        return
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise UsageError(f"cannot write {path}: {directory} is not a directory")
        raise UsageError(f"cannot write {path}: the directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".udnet-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
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
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
