"""One training process per run folder: an advisory lock that dies with its holder.

``python -m training.train`` holds an exclusive ``flock`` on ``RUN_DIR/.lock`` (rank 0 only under DDP) from
before it reads or writes the folder until it exits. The file holds the holder's pid and host, so a second
process on the same folder is refused in one line naming the first. The kernel releases the lock when
its holder's last file descriptor closes, which includes the process being killed (``kill -9`` too): a
lock file left behind never blocks a later run. The file itself is never deleted (deleting it would let
two processes lock two different files of the same name).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not guarded
    fcntl = None

LOCK = ".lock"


class RunFolderBusy(RuntimeError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """The lock of one run folder (which must exist).

    Args:
        run_dir: the run folder.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting and record this process in the lock file.

        Raises:
            RunFolderBusy: another process holds it (the message names its pid).
            OSError: the lock file cannot be created.
        """
        if fcntl is None or self._descriptor is not None:
            return
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunFolderBusy(
                f"{self.path.parent} is in use by another training process ({self.holder()}); wait for it to "
                "end or stop it, or pick another --name (a lock left by a process that died is ignored)"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._descriptor = descriptor

    def holder(self) -> str:
        """Who holds the lock, as its file says (``pid N on HOST``)."""
        for _ in range(20):  # the holder writes its pid just after locking: give it a moment
            try:
                text = self.path.read_text().strip()
            except OSError:
                text = ""
            if text:
                return text
            time.sleep(0.01)
        return "pid unknown"

    def release(self) -> None:
        """Drop the lock (the file stays; see the module docstring)."""
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the only descriptor releases the flock
            self._descriptor = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
