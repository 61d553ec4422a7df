"""Child processes of a test: free ports, start with a log file, stop cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubeloop.embedded.launcher import free_port, kill_pipeline_workers, port_is_free

__all__ = ["Process", "free_port", "kill_pipeline_workers", "port_is_free", "start_process"]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGINT first: the serving controller stops its predictors only on a clean exit."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, as the kubelet sends before it deletes a pod, and wait for the exit."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()
        return self.popen.wait(timeout_s)

    def kill(self, timeout_s: float = 10.0) -> int:
        """SIGKILL (`kill -9`, an OOM kill): no handler runs, nothing is flushed."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        return self.popen.wait(timeout_s)


def start_process(name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> Process:
    """Start `argv` with `os.environ` plus `env`, its output appended to `<log_dir>/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
    return Process(name, popen, log_path)
