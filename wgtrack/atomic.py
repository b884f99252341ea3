"""Atomic file replacement: readers see the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path


def directory_problem(filename: Path, where: str, creatable: bool = False) -> str | None:
    """Why ``filename`` cannot be written atomically (its directory), or None when it can.

    With ``creatable`` a missing directory is fine if its parent is writable (made at start).
    """
    directory = filename.parent
    if directory.is_dir():
        return None if os.access(directory, os.W_OK | os.X_OK) else f"{where}: directory {directory} is not writable"
    if creatable and directory.parent.is_dir() and os.access(directory.parent, os.W_OK | os.X_OK):
        return None
    if creatable:
        return f"{where}: neither {directory} nor a writable {directory.parent} exists"
    return f"{where}: directory {directory} does not exist"


def write_atomic(path: Path, data: bytes | Iterable[bytes], mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` (or its pieces, in order) to ``path`` atomically with ``mode`` (blocking:
    call it off the event loop).

    The temp file lives in the same directory (so the rename is atomic) and starts with a
    dot and ends in ``.tmp``, so a consumer's glob for the real name never matches it.
    ``durable=False`` skips the fsync: readers still only ever see a whole file (the rename is
    atomic for them either way); only a machine crash may leave an older or empty one. For files
    rewritten every cycle, where an fsync of megabytes every few seconds costs time and wears
    the flash storage of small routers, for the sake of one cycle's data.
    """
    fd, tmp = _create_temp(path)
    try:
        os.fchmod(fd, mode)  # final mode before the name appears
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                handle.writelines(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _create_temp(path: Path) -> tuple[int, str]:
    """A new file beside ``path``, mode 0600, opened for writing; what ``tempfile.mkstemp`` does,
    without the module (it brings shutil, bz2 and lzma: 0.45 MB of a daemon's RSS)."""
    for _ in range(100):  # bounded: a name taken 100 times in a row is not chance
        tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
