"""The monitor as a subprocess (``python -m services.monitor``) on free ports, for the tests
that kill it, restart it or talk to it as a separate process does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from services.monitor.tests.http_api import TEST_TOKEN
from tests.support.processes import free_port
from tests.support.waiting import wait_for


class MonitorProcess:
    """``start`` (again after ``kill9`` or ``stop``, on the same data dir and ports); the
    embedded token is ``TEST_TOKEN``. ``extra_args`` go on the command line."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.port, self.ingest_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Events go to the fast listener, as loggers would send them; queries to the API.
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}/"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def token_file(self) -> Path:
        """The monitor's embedded token (``--token-file``): what a client must send."""
        return self.data_dir.parent / f"{self.data_dir.name}-token"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> None:
        self.token_file.write_text(TEST_TOKEN)
        command = [
            sys.executable, "-m", "services.monitor", "--port", str(self.port),
            "--ingest-port", str(self.ingest_port), "--data-dir", str(self.data_dir),
            "--token-file", str(self.token_file), "--drift-interval", "3600", *self.extra_args,
        ]  # fmt: skip
        with self.log_file.open("ab") as log:  # a file, not a pipe nobody drains
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                f"monitor exited: {self.log_file.read_text()[-2000:]}"
            )
            try:
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, "the monitor to be ready", interval_s=0.1)

    def health(self) -> Any:
        return httpx.get(self.url + "/healthz", timeout=5).json()

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
