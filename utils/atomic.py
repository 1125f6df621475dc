"""Atomic file writes: a reader (or a crash) never sees half a file at the final path.

Each writer writes a temporary file in the destination folder, flushes and fsyncs it, then renames it
over the final path with ``os.replace`` (atomic on POSIX) and fsyncs the folder so the rename lasts.
Every output of the project goes through here: checkpoints, JSON, tables and reports, figures (PNG, PDF),
GIFs and MP4s (:func:`atomic_output` for writers that need a path rather than a handle, such as ffmpeg).

A temporary file is named ``.NAME.PID.XXXXXXXX.tmp`` (``.tmp.SUFFIX`` for :func:`atomic_output`), after its
writer's pid. A writer killed mid-write (``kill -9``) leaves it behind; the first atomic write of a later
process into that folder removes the temporaries of writers that no longer run, written before that process
started (:func:`remove_stale_temporaries`), and logs what it removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)
_STARTED = time.time()  # (about) when this process started: a temporary written since may be one of its own
_OLD_TEMPORARY_AGE = 3600.0  # seconds after which a temporary named without a pid (older code) is stale
_TEMPORARY = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9]+)?$")
_swept: set[Path] = set()  # folders this process has swept already


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): it runs
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed atomic writes left in ``folder``: named after a pid that no
    longer runs (and not this process's) and written before this process started; a temporary of older code,
    named without a pid, only when also older than an hour. Each folder is swept once per process.

    Returns:
        The files removed (logged as a warning, with their size).
    """
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept:
        return []
    _swept.add(key)
    removed, size, now = [], 0, time.time()
    try:
        candidates = [entry for entry in folder.iterdir() if entry.name.startswith(".")]
    except OSError:
        return []
    for entry in candidates:
        match = _TEMPORARY.match(entry.name)
        if match is None:
            continue
        try:
            status = entry.lstat()
        except OSError:
            continue
        pid = match.group("pid")
        if pid is not None:
            stale = int(pid) != os.getpid() and not _running(int(pid)) and status.st_mtime < _STARTED
        else:
            stale = status.st_mtime < min(_STARTED, now - _OLD_TEMPORARY_AGE)
        if stale and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
                size += status.st_size
    if removed:
        names = ", ".join(entry.name for entry in removed[:5]) + (", ..." if len(removed) > 5 else "")
        logger.warning("removed %d temporary file%s (%.1f MB) that interrupted writes left in %s: %s",
                       len(removed), "" if len(removed) == 1 else "s", size / 1e6, folder, names)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then move it into place.

    Args:
        path: the final path; its folder is created if missing.
        write: writes the content to the binary handle it is given.

    Returns:
        The final path.

    Raises:
        OSError: the folder cannot be written (a full disk too); the final path is then untouched and no
            temporary file is left behind. Its ``filename`` is ``path`` when the failing call named none
            (a write or fsync names no file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # Temporary files are created private (0600); give the result a plain file's permissions.
        os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, path)
    except OSError as error:
        Path(handle.name).unlink(missing_ok=True)
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so a writer that reads the format from the name
    still can) to write to; moved into place when the block ends without an error, removed otherwise.

    Raises:
        OSError: as :func:`atomic_write`; the final path is then untouched and no temporary file remains.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=f".tmp{path.suffix}")
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write JSON (indented; NaN and Infinity kept as Python's json writes them) atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (checkpoints, cached judges).

    Raises:
        OSError: the file cannot be written (a full disk raises ``ENOSPC``, "No space left on device"),
            not the zip writer's ``RuntimeError: ... unexpected pos`` that torch reports in its place.
    """
    import torch  # here, so the data package can use this module without importing torch's saver

    def write(handle: IO[bytes]) -> None:
        try:
            torch.save(obj, handle)
        except RuntimeError as error:
            cause = _os_error_behind(error)
            if cause is None:
                raise
            raise cause from None

    return atomic_write(path, write)


def _os_error_behind(error: BaseException) -> OSError | None:
    """The ``OSError`` a wrapped error was raised while handling (torch's zip writer hides it so)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
