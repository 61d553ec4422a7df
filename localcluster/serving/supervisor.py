"""Predictor processes: spawn, probe readiness, notice exits, restart, stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from localcluster.serving.inferenceservice import PredictorSpec
from localcluster.serving.plan import PredictorProcess

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
READY_FAILURE_THRESHOLD = 3


def free_port() -> int:
    # KServe binds 0.0.0.0, so probe the same address.
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def predictor_command(spec: PredictorSpec, port: int, python: str = sys.executable) -> list[str]:
    command = [
        python,
        "-m",
        "localcluster.serving.predictor",
        "--model-name",
        spec.model_name,
        "--inference-service",
        spec.name,
        "--model-uri",
        spec.model_uri,
        "--http-port",
        str(port),
        "--namespace",
        spec.namespace,
        "--model-version",
        spec.model_version,
        "--mlmodel",
        spec.mlmodel,
    ]
    if spec.logger_url:
        command += ["--logger-url", spec.logger_url, "--logger-mode", spec.logger_mode]
    if spec.transformer_args:
        command += ["--transformer-args", json.dumps(list(spec.transformer_args))]
    return command


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the controller dies without cleaning up."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _last_line(path: Path, limit: int = 8192) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    meaningful = [line.strip() for line in lines if line.strip()]
    return meaningful[-1][:500] if meaningful else ""


class _Managed:
    def __init__(self, spec: PredictorSpec, port: int, log_path: Path) -> None:
        self.spec = spec
        self.port = port
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.phase: str = "Starting"
        self.restarts = 0
        self.exited_at: float | None = None
        self.last_failure = ""
        self.probe_failures = 0

    def view(self) -> PredictorProcess:
        return PredictorProcess(
            spec=self.spec,
            port=self.port,
            phase=self.phase,  # type: ignore[arg-type]
            restarts=self.restarts,
            exited_at=self.exited_at,
            last_failure=self.last_failure,
        )


class PredictorSupervisor:
    """Owns the predictor child processes of one controller."""

    def __init__(
        self, log_dir: Path, http: httpx.AsyncClient, env: dict[str, str] | None = None
    ) -> None:
        self.log_dir = log_dir
        self.http = http
        self.env = env
        self._managed: dict[str, _Managed] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._watching: set[asyncio.Task[None]] = set()
        # Called when a child exits, so its owner notices at once (as a kubelet's pod
        # lifecycle events do) instead of at its next periodic pass.
        self.on_exit: Callable[[], None] = lambda: None

    def views(self) -> dict[str, PredictorProcess]:
        return {key: managed.view() for key, managed in self._managed.items()}

    def pid(self, key: str) -> int | None:
        managed = self._managed.get(key)
        return managed.proc.pid if managed and managed.proc else None

    async def start(self, spec: PredictorSpec) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.namespace}_{spec.name}.log"
        managed = _Managed(spec, free_port(), log_path)
        self._managed[spec.key] = managed
        await self._spawn(managed)

    async def restart(self, key: str) -> None:
        managed = self._managed.get(key)
        if managed is None:
            return
        managed.restarts += 1
        managed.phase = "Starting"
        managed.probe_failures = 0
        managed.exited_at = None
        await self._spawn(managed)

    async def _spawn(self, managed: _Managed) -> None:
        with managed.log_path.open("ab") as log_file:
            managed.proc = await asyncio.create_subprocess_exec(
                *predictor_command(managed.spec, managed.port),
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # a terminal's Ctrl-C goes to the controller only
                preexec_fn=_die_with_parent,
            )
        log.info(
            "started predictor %s pid=%s port=%s", managed.spec.key, managed.proc.pid, managed.port
        )
        watch = asyncio.create_task(self._tell_exit(managed.proc))
        self._watching.add(watch)
        watch.add_done_callback(self._watching.discard)

    async def _tell_exit(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self.on_exit()

    def stop(self, key: str) -> None:
        """Forget the process now and terminate it in the background."""
        managed = self._managed.pop(key, None)
        if managed is None or managed.proc is None:
            return
        task = asyncio.create_task(_terminate(managed.proc))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def observe(self) -> None:
        """Refresh phases: exited processes, and readiness of starting ones."""
        for managed in self._managed.values():
            proc = managed.proc
            if proc is None or managed.phase == "Exited":
                continue
            if proc.returncode is not None:
                managed.phase = "Exited"
                managed.exited_at = time.monotonic()
                tail = _last_line(managed.log_path)
                managed.last_failure = (
                    f"exit code {proc.returncode}: {tail}"
                    if tail
                    else f"exit code {proc.returncode}"
                )
                continue
            if await self._is_ready(managed):
                managed.phase, managed.probe_failures = "Ready", 0
                continue
            managed.probe_failures += 1
            # Like a readiness probe's failureThreshold: one slow answer on a busy machine
            # must not flip a serving predictor to not-Ready.
            if managed.phase != "Ready" or managed.probe_failures >= READY_FAILURE_THRESHOLD:
                managed.phase = "Starting"

    async def _is_ready(self, managed: _Managed) -> bool:
        url = f"http://127.0.0.1:{managed.port}/v1/models/{managed.spec.model_name}"
        try:
            response = await self.http.get(url, timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        for key in list(self._managed):
            self.stop(key)
        if self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
