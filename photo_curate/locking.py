"""One writer per curation home: an OS file lock that dies with its process.

`fcntl.flock` is released by the kernel when the holder exits, even on `kill -9`, so a crash
never leaves a stale lock; the file only carries who holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from photo_curate.errors import UserError


class Busy(UserError):
    """Another curate process holds the lock."""


@contextmanager
def exclusive(lock_path: Path, what: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the lock for the block; wait up to `wait_seconds`, then refuse clearly."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    raise Busy(
                        f"{what} is busy: another curate process ({holder}) is working on it; "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
