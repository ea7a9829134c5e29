"""`countwatch run` as a separate process, the way an operator runs it: started with
`python -m monitor run -c FILE`, read through its JSON log file, signalled, killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

from tests.feed import wait_until

ROOT = Path(__file__).resolve().parents[2]


def daemon_toml(state_dir: Path, instance: str, log_file: Path, listen: str = "127.0.0.1:0") -> str:
    """The [daemon], [metrics] and [log] tables every daemon of these tests starts with: its
    own state, metrics on a loopback port (0: any free one) and a JSON log file to read."""
    return f"""
[daemon]
state_dir = "{state_dir}"
instance = "{instance}"
[metrics]
listen = "{listen}"
[log]
format = "json"
file = "{log_file}"
"""


class DaemonProcess:
    def __init__(self, config: Path, log_file: Path, env: dict[str, str] | None = None, args: tuple = ()):
        self.config = config
        self.args = tuple(args)          # more `countwatch run` options (--record FILE)
        self.log_file = log_file
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.output = log_file.with_suffix(".out")
        self.runs = 0

    def start(self) -> "DaemonProcess":
        self.runs += 1
        # the process's own stdout/stderr (tracebacks, console notifications) go to a file
        # the secret scan reads as well
        out = open(self.output, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(self.config), *self.args], cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        out.close()
        return self

    def lines(self) -> list[dict]:
        """The JSON log lines so far (a line being written is skipped)."""
        if not self.log_file.exists():
            return []
        out = []
        for text in self.log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                pass
        return out

    def events(self, event: str, **fields) -> list[dict]:
        return [line for line in self.lines()
                if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
        ok = wait_until(lambda: bool(predicate()) or not self.running, timeout=timeout, step=0.1)
        assert ok and self.running, f"{what or 'condition'} not reached; daemon running={self.running}\n" + self.tail()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(15)

    def stop(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Always called: nothing outlives the test."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)

    def tail(self, n: int = 30) -> str:
        out = self.output.read_text(errors="replace")[-3000:] if self.output.exists() else ""
        logs = "\n".join(json.dumps(line)[:300] for line in self.lines()[-n:])
        return f"--- output ---\n{out}\n--- log ---\n{logs}"
