"""The monitor as a subprocess (``python -m services.monitor``) on free ports, for the tests
that kill it, restart it or talk to it as a separate process does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from services.monitor.tests.http_api import TEST_TOKEN
from tests.support.processes import Process, free_port, start_process
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
        self.process: Process | None = None

    @property
    def token_file(self) -> Path:
        """The monitor's embedded token (``--token-file``): what a client must send."""
        return self.data_dir.parent / f"{self.data_dir.name}-token"

    def start(self) -> None:
        self.token_file.write_text(TEST_TOKEN)
        command = [
            sys.executable, "-m", "services.monitor", "--port", str(self.port),
            "--ingest-port", str(self.ingest_port), "--data-dir", str(self.data_dir),
            "--token-file", str(self.token_file), "--drift-interval", "3600", *self.extra_args,
        ]  # fmt: skip
        # Its log: <data dir>.log beside the data dir (a file, not a pipe nobody drains).
        process = self.process = start_process(
            self.data_dir.name, command, self.data_dir.parent, env={}
        )

        def ready() -> bool:
            assert process.alive(), f"monitor exited: {process.log_tail(2000)}"
            try:
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, "the monitor to be ready", interval_s=0.1)

    def health(self) -> Any:
        return httpx.get(self.url + "/healthz", timeout=5).json()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.terminate()
