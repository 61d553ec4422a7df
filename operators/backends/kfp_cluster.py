"""The pipeline backend on a Kubeflow Pipelines server (`kfp.Client`, created at startup)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from operators.backends.runs import (
    PipelineRunError,
    RunRef,
    RunState,
    RunStatus,
    build_arguments,
    check_run_name,
    default_packages,
    load_spec,
)

KFP_STATES: dict[str, RunState] = {
    "PENDING": RunState.PENDING,
    "RUNTIME_STATE_UNSPECIFIED": RunState.PENDING,
    "PAUSED": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "CANCELING": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "SKIPPED": RunState.SUCCEEDED,
    "FAILED": RunState.FAILED,
    "CANCELED": RunState.FAILED,
}


def map_kfp_state(state: str | None) -> RunState:
    return KFP_STATES.get((state or "PENDING").upper(), RunState.PENDING)


def kfp_run_url(host: str, run_id: str) -> str:
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def pipeline_version_name(pipeline_name: str, package: bytes) -> str:
    """Versions are named by content, so an unchanged package is uploaded once."""
    return f"{pipeline_name}-{hashlib.sha256(package).hexdigest()[:12]}"


def display_name_filter(name: str) -> str:
    """A KFP v2beta1 list filter: display_name EQUALS name."""
    predicate = {"operation": "EQUALS", "key": "display_name", "stringValue": name}
    return json.dumps({"predicates": [predicate]})


def kfp_status(run: Any, ref: RunRef) -> RunStatus:
    """RunStatus from a ``kfp_server_api.V2beta1Run``; the log tail lists failed tasks."""
    state = map_kfp_state(getattr(run, "state", None))
    error = getattr(run, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    tail = None
    if state == RunState.FAILED:
        details = getattr(run, "run_details", None)
        failed = [
            f"task {task.display_name}: {getattr(task.error, 'message', None) or task.state}"
            for task in (getattr(details, "task_details", None) or [])
            if str(task.state).upper() in ("FAILED", "CANCELED")
        ]
        tail = "\n".join(failed) or message
    return RunStatus(
        ref=ref,
        state=state,
        message=message,
        log_tail=tail,
        started_at=getattr(run, "created_at", None),
        finished_at=getattr(run, "finished_at", None) if state.finished else None,
    )


class KfpClusterBackend:
    """Runs on a Kubeflow Pipelines server through a ``kfp.Client`` created by the caller."""

    def __init__(
        self,
        client: Any,
        host: str,
        experiment: str = "kubeloop",
        namespace: str | None = None,
        packages: Mapping[str, Path] | None = None,
    ) -> None:
        self.client = client
        self.host = host
        self.experiment = experiment
        self.namespace = namespace
        self.packages = dict(packages) if packages is not None else default_packages()
        self._experiment_cache: str | None = None

    def _package(self, pipeline_name: str) -> Path:
        if pipeline_name not in self.packages:
            raise PipelineRunError(
                f"unknown pipeline {pipeline_name!r} (known: {sorted(self.packages)})"
            )
        return self.packages[pipeline_name]

    def _ref(self, pipeline_name: str, run_name: str, run_id: str) -> RunRef:
        return RunRef(
            backend="kfp",
            pipeline_name=pipeline_name,
            run_name=run_name,
            run_id=run_id,
            url=kfp_run_url(self.host, run_id),
        )

    def _ensure_version(self, pipeline_name: str, package: Path) -> tuple[str, str]:
        """(pipeline_id, version_id), uploading the pipeline or this version when missing."""
        display = f"kubeloop-{pipeline_name}"
        version = pipeline_version_name(pipeline_name, package.read_bytes())
        pipeline_id = self.client.get_pipeline_id(display)
        if pipeline_id is None:
            pipeline_id = self.client.upload_pipeline(
                str(package), pipeline_name=display, namespace=self.namespace
            ).pipeline_id
        found = self.client.list_pipeline_versions(
            pipeline_id, page_size=1, filter=display_name_filter(version)
        ).pipeline_versions
        if found:
            return pipeline_id, found[0].pipeline_version_id
        created = self.client.upload_pipeline_version(
            str(package), pipeline_version_name=version, pipeline_id=pipeline_id
        )
        return pipeline_id, created.pipeline_version_id

    def _experiment_id(self) -> str:
        # create_experiment returns the existing experiment of that name.
        if self._experiment_cache is None:
            experiment = self.client.create_experiment(self.experiment, namespace=self.namespace)
            self._experiment_cache = str(experiment.experiment_id)
        return self._experiment_cache

    def find(self, pipeline_name: str, run_name: str) -> RunRef | None:
        runs = self.client.list_runs(
            experiment_id=self._experiment_id(),
            namespace=self.namespace,
            page_size=10,
            sort_by="created_at",
            filter=display_name_filter(run_name),
        ).runs
        if not runs:
            return None
        return self._ref(pipeline_name, run_name, runs[0].run_id)

    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef:
        check_run_name(run_name)
        package = self._package(pipeline_name)
        arguments = build_arguments(load_spec(package), run_name, params)
        existing = self.find(pipeline_name, run_name)
        if existing is not None:
            return existing
        pipeline_id, version_id = self._ensure_version(pipeline_name, package)
        run = self.client.run_pipeline(
            experiment_id=self._experiment_id(),
            job_name=run_name,
            params=arguments,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return self._ref(pipeline_name, run_name, run.run_id)

    def get(self, ref: RunRef) -> RunStatus:
        return kfp_status(self.client.get_run(ref.run_id), ref)


# --------------------------------------------------------------------------- kfp.local backend
