"""The pipeline backend of the embedded default: ``kfp.local``, one worker process per run.

Each run has a directory under ``runs_dir`` named by the run name (idempotent submits); the
worker (`kfp_local_worker.py`) records its state there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from operators.backends.runs import (
    PipelineRunError,
    RunRef,
    RunState,
    RunStatus,
    _now,
    build_arguments,
    check_run_name,
    default_packages,
    load_spec,
    log_tail,
)

# A claimed launch whose worker never recorded itself is failed after this long.
LAUNCH_GRACE_S = 120.0

REQUEST_FILE = "request.json"
STATE_FILE = "state.json"
LOG_FILE = "run.log"
CLAIM_FILE = "launch.claim"


class LocalRequest(BaseModel):
    pipeline_name: str
    run_name: str
    package: str
    arguments: dict[str, Any]
    submitted_at: datetime


class LocalState(BaseModel):
    state: RunState
    pid: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


def _write_json_atomic(path: Path, model: BaseModel) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(model.model_dump_json(indent=2))
    temporary.replace(path)


def _process_alive(pid: int, run_dir: Path) -> bool:
    """Alive and still our worker (guards against pid reuse and zombies)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(run_dir).encode() in cmdline.split(b"\0")


class KfpLocalBackend:
    """Runs compiled pipelines through ``kfp.local``, one worker process per run."""

    def __init__(
        self,
        runs_dir: str | Path,
        packages: Mapping[str, Path] | None = None,
        python: str = sys.executable,
        launch_grace_s: float = LAUNCH_GRACE_S,
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.packages = dict(packages) if packages is not None else default_packages()
        self.python = python
        self.launch_grace_s = launch_grace_s
        # Our own children, polled so finished workers are reaped (no zombies).
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def run_dir(self, run_name: str) -> Path:
        return self.runs_dir / check_run_name(run_name)

    def _ref(self, request: LocalRequest) -> RunRef:
        run_dir = self.run_dir(request.run_name)
        return RunRef(
            backend="local",
            pipeline_name=request.pipeline_name,
            run_name=request.run_name,
            run_id=request.run_name,
            url=run_dir.as_uri(),
        )

    def _record(self, run_name: str, params: Mapping[str, Any], pipeline_name: str) -> LocalRequest:
        if pipeline_name not in self.packages:
            raise PipelineRunError(
                f"unknown pipeline {pipeline_name!r} (known: {sorted(self.packages)})"
            )
        package = self.packages[pipeline_name].resolve()
        arguments = build_arguments(load_spec(package), run_name, params)
        return LocalRequest(
            pipeline_name=pipeline_name,
            run_name=run_name,
            package=str(package),
            arguments=arguments,
            submitted_at=_now(),
        )

    def _create_run_dir(self, request: LocalRequest) -> bool:
        """Atomically publish the run directory; False when the run already exists."""
        final = self.run_dir(request.run_name)
        staging = self.runs_dir / f".staging-{request.run_name}-{os.getpid()}-{time.monotonic_ns()}"
        staging.mkdir()
        _write_json_atomic(staging / REQUEST_FILE, request)
        _write_json_atomic(staging / STATE_FILE, LocalState(state=RunState.PENDING))
        try:
            staging.rename(final)
        except OSError:
            (staging / REQUEST_FILE).unlink()
            (staging / STATE_FILE).unlink()
            staging.rmdir()
            if final.is_dir():
                return False
            raise
        return True

    def _launch(self, run_name: str) -> None:
        """Start the worker once: whoever creates the claim file launches it."""
        run_dir = self.run_dir(run_name)
        try:
            claim = os.open(run_dir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(claim)
        with (run_dir / LOG_FILE).open("ab") as log:
            # A new session: the worker outlives an operator restart.
            self._children[run_name] = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "operators.backends.kfp_local_worker",
                    "run-local",
                    str(run_dir),
                ],
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef:
        check_run_name(run_name)
        request = self._record(run_name, params, pipeline_name)
        if not self._create_run_dir(request):
            existing = self._read_request(run_name)
            if existing.pipeline_name != pipeline_name:
                raise PipelineRunError(
                    f"run {run_name!r} already exists for pipeline {existing.pipeline_name!r}"
                )
            request = existing
        # Also for an existing run: a previous operator may have died before launching it.
        self._launch(run_name)
        return self._ref(request)

    def _read_request(self, run_name: str) -> LocalRequest:
        path = self.run_dir(run_name) / REQUEST_FILE
        if not path.exists():
            raise PipelineRunError(f"no local run named {run_name!r} in {self.runs_dir}")
        return LocalRequest.model_validate_json(path.read_text())

    def _read_state(self, run_dir: Path) -> LocalState:
        return LocalState.model_validate_json((run_dir / STATE_FILE).read_text())

    def _reap(self, run_name: str) -> None:
        child = self._children.get(run_name)
        if child is not None and child.poll() is not None:
            del self._children[run_name]

    def _lost(self, run_dir: Path, state: LocalState) -> str | None:
        """Why an unfinished run can never finish (its worker is gone), or None."""
        if state.pid is not None:
            if _process_alive(state.pid, run_dir):
                return None
            # The worker may have finished between our two reads.
            if self._read_state(run_dir).state.finished:
                return None
            return f"the worker process {state.pid} exited without recording a result"
        child = self._children.get(run_dir.name)
        if child is not None:
            code = child.poll()
            if code is None or self._read_state(run_dir).state != RunState.PENDING:
                return None
            return f"the worker process exited with code {code} before it started the run"
        claim = run_dir / CLAIM_FILE
        if claim.exists() and time.time() - claim.stat().st_mtime > self.launch_grace_s:
            return "the worker process never started"
        return None

    def get(self, ref: RunRef) -> RunStatus:
        run_dir = self.run_dir(ref.run_name)
        self._read_request(ref.run_name)  # a clear error for an unknown run
        state = self._read_state(run_dir)
        if not state.state.finished:
            reason = self._lost(run_dir, state)
            self._reap(ref.run_name)
            if reason is not None:
                state = state.model_copy(
                    update={"state": RunState.FAILED, "message": reason, "finished_at": _now()}
                )
                _write_json_atomic(run_dir / STATE_FILE, state)
            else:
                state = self._read_state(run_dir)
        tail = None
        if state.state == RunState.FAILED and (run_dir / LOG_FILE).exists():
            tail = log_tail((run_dir / LOG_FILE).read_text(errors="replace"))
        return RunStatus(
            ref=ref,
            state=state.state,
            outputs=state.outputs,
            message=state.message,
            log_tail=tail,
            started_at=state.started_at,
            finished_at=state.finished_at,
        )

    def wait(
        self,
        ref: RunRef,
        timeout_s: float,
        poll_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RunStatus:
        """Block until the run finishes (tests and the CLI; operators poll ``get``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.get(ref)
            if status.state.finished or time.monotonic() > deadline:
                return status
            sleep(poll_s)


# ----------------------------------------------------------------- the kfp.local worker process
