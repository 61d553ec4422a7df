"""Pipeline runs as the operators see them: I/O-free value types and pure helpers.

`RunState`, `RunRef` and `RunStatus` are what a `PipelineBackend` reports; the pure cores
(`featureview/reconcile.py`, `experiment/reconcile.py`) read them from here, never from a
backend module. The backends are `kfp_cluster.py` and `kfp_local.py` (its worker process is
`kfp_local_worker.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, Field, field_validator

RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
RUN_NAME_PARAM = "kfp_run_name"
LOG_TAIL_LINES = 40
# A claimed launch whose worker never recorded itself is failed after this long.
LAUNCH_GRACE_S = 120.0
# Colour codes kfp.local and Spark write into logs; run messages end up in kubectl output.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class RunState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED)


class RunRef(BaseModel):
    backend: str
    pipeline_name: str
    run_name: str
    run_id: str
    url: str


class RunStatus(BaseModel):
    ref: RunRef
    state: RunState
    outputs: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    log_tail: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @field_validator("message", "log_tail")
    @classmethod
    def _plain_text(cls, text: str | None) -> str | None:
        return _ANSI.sub("", text) if text else text

    @property
    def url(self) -> str:
        return self.ref.url


class PipelineBackend(Protocol):
    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef: ...

    def get(self, ref: RunRef) -> RunStatus: ...


class PipelineRunError(ValueError):
    """Bad submit input (unknown pipeline or parameter, bad run name); the message names it."""


# ---------------------------------------------------------------- pure helpers (both backends)


def default_packages(storage_kind: str = "pvc") -> dict[str, Path]:
    """The checked-in compiled pipelines, by name (``feature_backfill``, ``training``), for a
    storage root of ``storage_kind`` (pvc, s3, gs: pipelines/storage.py)."""
    from pipelines.compile import package_path, pipeline_functions

    return {name: package_path(name, storage_kind) for name in pipeline_functions()}


def check_run_name(run_name: str) -> str:
    if not re.fullmatch(RUN_NAME_PATTERN, run_name or ""):
        raise PipelineRunError(
            f"run name {run_name!r} is invalid: use letters, digits, '.', '_', '-' "
            "(first a letter or digit), at most 200 characters"
        )
    return run_name


def pipeline_inputs(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Root input parameters of a compiled pipeline: name -> definition."""
    return dict(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def build_arguments(
    spec: Mapping[str, Any], run_name: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Validated run arguments: unknown or missing parameters are errors naming them."""
    inputs = pipeline_inputs(spec)
    pipeline = spec.get("pipelineInfo", {}).get("name", "?")
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        raise PipelineRunError(
            f"pipeline {pipeline}: unknown parameter {unknown[0]!r} (known: {sorted(inputs)})"
        )
    arguments = dict(params)
    if RUN_NAME_PARAM in inputs and not arguments.get(RUN_NAME_PARAM):
        arguments[RUN_NAME_PARAM] = run_name
    missing = [
        name
        for name, definition in inputs.items()
        if name not in arguments
        and "defaultValue" not in definition
        and not definition.get("isOptional", False)
    ]
    if missing:
        raise PipelineRunError(f"pipeline {pipeline}: missing parameter {missing[0]!r}")
    return arguments


def load_spec(package: Path) -> dict[str, Any]:
    """The PipelineSpec of a compiled package: its first YAML document (a second one, the
    PlatformSpec, carries the Kubernetes config: the storage claim each task mounts)."""
    return dict(next(iter(yaml.safe_load_all(package.read_text()))))


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def _now() -> datetime:
    return datetime.now(UTC)


# Lines of a failed run's log that say what went wrong (the component's own errors first).
_ERROR_LINE = re.compile(r"\b[A-Za-z]+(Error|Exception):")
MESSAGE_TAIL_LINES = 15


def failure_message(run: RunStatus, preferred: tuple[str, ...] = ()) -> str:
    """What went wrong, naming the problem first: the component's error line (`preferred`
    error types first), then the run's message and the end of its log."""
    tail = run.log_tail or ""
    run_message = run.message or ""
    errors = [line.strip() for line in tail.splitlines() if _ERROR_LINE.search(line)]
    specific = [e for e in errors if any(f"{name}:" in e for name in preferred)]
    headline = (specific or errors or [run_message or f"run {run.ref.run_name} failed"])[-1]
    parts = [headline]
    if run_message and run_message not in headline:
        parts.append(f"run: {run_message[:2000]}")
    if tail:
        parts.append("log tail:\n" + "\n".join(tail.splitlines()[-MESSAGE_TAIL_LINES:]))
    return "\n".join(parts)
