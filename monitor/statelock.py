"""One daemon per state directory. Two `countwatch run` on one state_dir both polled and both
delivered every notification, each with its own id (issue #14). The first takes an exclusive
flock on `state_dir/countwatch.lock` and writes its pid there; the second finds the lock held
and refuses, naming that pid. The lock belongs to the open file, so it dies with its process:
after a kill -9 nothing stale is left for anyone to clean up (the file stays; only the lock
matters, and its pid line is rewritten by the next holder)."""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = "countwatch.lock"


class StateDirBusy(Exception):
    """Another process holds the state directory."""

    def __init__(self, path: Path, holder: str):
        self.path = path
        self.holder = holder
        super().__init__(f"state_dir {path.parent} is in use by {holder} (lock {path}); "
                         "each instance needs a state_dir of its own")


class StateDirLock:
    def __init__(self, state_dir: Path | str):
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "StateDirLock":
        """Take the lock or raise StateDirBusy at once (never waits)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            os.close(fd)
            raise StateDirBusy(self.path, f"process {holder[0]}" + (f" on {holder[1]}" if len(holder) > 1 else "")
                               if holder else "another process (its pid is not written yet)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)          # closing the last descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
