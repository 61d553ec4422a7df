"""The pipeline backend on a Kubeflow Pipelines server (`kfp.Client`, created at startup).

Run outputs. ``RunStatus.outputs`` holds the pipeline's root outputs, as the local backend
reports them (`kfp_local_worker.py`: ``task.outputs`` of the compiled pipeline). KFP's
v2beta1 run API does not carry parameter values: ``GetRun`` returns
``run_details.task_details[]`` whose ``outputs`` is ``map<string, ArtifactList>`` and an
``ArtifactList`` is only ``artifact_ids`` (kubeflow/pipelines
``backend/api/v2beta1/run.proto``, messages ``PipelineTaskDetail`` and ``ArtifactList``;
``kfp_server_api.V2beta1ArtifactList`` has the one field ``artifact_ids``). A KFP v2 task's
output parameters live only in ML Metadata: the launcher publishes them as the execution's
custom property ``outputs`` (a Struct), and artifacts as MLMD artifacts linked by OUTPUT events
(``backend/src/v2/metadata/client.go``: ``PublishExecution``, ``keyOutputs = "outputs"``).
So the outputs are read in two steps: the run API gives each task's ``execution_id`` and
output ``artifact_ids`` (`task_outputs`), an `ExecutionReader` (MLMD's gRPC service, through
the ``ml-metadata`` client) gives the values, and the compiled pipeline's root DAG says which
task output is which pipeline output (`root_output_sources`, `resolve_root_outputs`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from contracts.storage import STORAGE_PVC_PARAMETER, STORAGE_SECRET_ENV, STORAGE_SECRET_PARAMETER
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
    pipeline_inputs,
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


# MLMD custom properties of a KFP execution (client.go keyOutputs, keyTaskName, keyParentDagID).
MLMD_OUTPUTS_PROPERTY = "outputs"
MLMD_TASK_NAME_PROPERTY = "task_name"
MLMD_PARENT_DAG_PROPERTY = "parent_dag_id"
# MLMD's gRPC service in a standalone or full Kubeflow install (manifests: metadata-grpc-service).
MLMD_DEFAULT_HOST = "metadata-grpc-service.kubeflow"
MLMD_DEFAULT_PORT = 8080
# A run can be SUCCEEDED before the persistence agent has recorded its last tasks in
# run_details; its outputs are waited for this long before the run is reported without them.
OUTPUTS_GRACE_S = 120.0


class OutputsUnavailable(RuntimeError):
    """Run outputs cannot be read at all (e.g. no MLMD client installed): permanent."""


class ExecutionReader(Protocol):
    """Values behind the ids the run API returns (ML Metadata on a real KFP)."""

    def output_parameters(self, execution_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """execution id -> the execution's output parameters (missing ids left out)."""
        ...

    def artifacts(self, artifact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """artifact id -> {"uri", "metadata"} (the local backend's artifact shape)."""
        ...

    def root_executions(self, run_context_id: str) -> dict[str, str]:
        """task name -> execution id of the root DAG's tasks in the run's MLMD context."""
        ...


@dataclass(frozen=True)
class OutputSource:
    kind: str  # "parameter" or "artifact"
    task: str  # producerSubtask: a task of the root DAG
    key: str  # the task's output name
    parameter_type: str | None = None


@dataclass
class TaskOutputs:
    """One task of a run as the v2beta1 API reports it (ids only, values come from MLMD)."""

    task_id: str
    execution_id: str | None
    artifact_ids: dict[str, list[str]] = field(default_factory=dict)


def pipeline_spec_of(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The PipelineSpec inside a run's ``pipeline_spec`` (KFP wraps it as
    ``{pipeline_spec, platform_spec}`` when the package carries a platform config)."""
    if "root" not in spec and isinstance(spec.get("pipeline_spec"), Mapping):
        return dict(spec["pipeline_spec"])
    return spec


def root_output_sources(spec: Mapping[str, Any]) -> dict[str, OutputSource]:
    """Pipeline output name -> the root DAG task output it comes from (compiled IR:
    ``root.dag.outputs.parameters[*].valueFromParameter`` and
    ``root.dag.outputs.artifacts[*].artifactSelectors``)."""
    root = pipeline_spec_of(spec).get("root", {})
    declared = root.get("outputDefinitions", {}).get("parameters", {})
    outputs = root.get("dag", {}).get("outputs", {})
    sources: dict[str, OutputSource] = {}
    for name, definition in (outputs.get("parameters") or {}).items():
        selector = definition.get("valueFromParameter")
        if selector:
            sources[name] = OutputSource(
                "parameter",
                selector["producerSubtask"],
                selector["outputParameterKey"],
                declared.get(name, {}).get("parameterType"),
            )
    for name, definition in (outputs.get("artifacts") or {}).items():
        for selector in definition.get("artifactSelectors") or []:
            sources[name] = OutputSource(
                "artifact", selector["producerSubtask"], selector["outputArtifactKey"]
            )
    return sources


def task_outputs(run: Any) -> dict[str, TaskOutputs]:
    """Tasks of a ``V2beta1Run`` by task name (``display_name``): their MLMD execution id and
    output artifact ids. When tasks carry parent ids, the root DAG (no parent) is left out and
    a task nested in a sub-DAG (a condition, a loop) yields to a shallower one of the same
    name: root outputs name root-level tasks. A task without an execution id borrows that of
    its ``<name>-driver`` node, the Argo node that creates the MLMD execution (KFP
    ``docs/contributing/anatomy.md``: ``component-name-driver`` then ``component-name``)."""
    details = getattr(run, "run_details", None)
    tasks = [t for t in (getattr(details, "task_details", None) or []) if t.display_name]
    by_id = {str(t.task_id): t for t in tasks if t.task_id}
    nested = any(t.parent_task_id for t in tasks)

    def depth(task: Any) -> int:
        level, parent = 0, task.parent_task_id
        while parent and str(parent) in by_id and level <= len(tasks):
            level, parent = level + 1, by_id[str(parent)].parent_task_id
        return level

    found: dict[str, tuple[int, TaskOutputs]] = {}
    for task in tasks:
        if nested and not task.parent_task_id:
            continue  # the root DAG itself
        level = depth(task) if nested else 1
        entry = TaskOutputs(
            task_id=str(task.task_id or ""),
            execution_id=str(task.execution_id) if task.execution_id else None,
            artifact_ids={
                name: [str(i) for i in (artifact_list.artifact_ids or [])]
                for name, artifact_list in (task.outputs or {}).items()
            },
        )
        previous = found.get(task.display_name)
        if previous is None or level < previous[0]:
            found[task.display_name] = (level, entry)
    result = {name: entry for name, (_, entry) in found.items()}
    for name, entry in result.items():
        driver = result.get(f"{name}-driver")
        if entry.execution_id is None and driver is not None:
            entry.execution_id = driver.execution_id
    return result


def _typed(value: Any, parameter_type: str | None) -> Any:
    # MLMD stores every number as a Struct double; the local backend returns an int.
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def resolve_root_outputs(
    sources: Mapping[str, OutputSource],
    tasks: Mapping[str, TaskOutputs],
    parameters: Mapping[str, Mapping[str, Any]],
    artifacts: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], list[str]]:
    """(pipeline outputs, names of declared outputs not found). Pure: ``parameters`` is
    execution id -> output parameters, ``artifacts`` artifact id -> {uri, metadata}."""
    outputs: dict[str, Any] = {}
    missing: list[str] = []
    for name, source in sorted(sources.items()):
        task = tasks.get(source.task)
        value: Any = None
        if task is not None and source.kind == "parameter" and task.execution_id:
            produced = parameters.get(task.execution_id, {})
            if source.key in produced:
                value = _typed(produced[source.key], source.parameter_type)
        elif task is not None and source.kind == "artifact":
            ids = task.artifact_ids.get(source.key) or []
            if ids and ids[0] in artifacts:
                value = dict(artifacts[ids[0]])
        if value is None:
            missing.append(name)
        else:
            outputs[name] = value
    return outputs, missing


def read_run_outputs(
    run: Any, spec: Mapping[str, Any], reader: ExecutionReader
) -> tuple[dict[str, Any], list[str]]:
    """A run's pipeline outputs through the run API's ids and ``reader``'s values."""
    sources = root_output_sources(spec)
    if not sources:
        return {}, []
    tasks = task_outputs(run)
    wanted = {s.task for s in sources.values()}
    unknown = {n for n in wanted if n not in tasks or not tasks[n].execution_id}
    context = getattr(getattr(run, "run_details", None), "pipeline_run_context_id", None)
    if unknown and context:
        # The run API left a producer without its execution: find it in the run's MLMD
        # context (RunDetails.pipeline_run_context_id) by task name, as KFP's UI does.
        for name, execution_id in reader.root_executions(str(context)).items():
            if name in unknown:
                known = tasks.get(name) or TaskOutputs(task_id="", execution_id=None)
                known.execution_id = execution_id
                tasks[name] = known
    execution_ids = sorted(
        {t.execution_id for n, t in tasks.items() if n in wanted and t.execution_id}
    )
    artifact_ids = sorted(
        {
            ids[0]
            for s in sources.values()
            if s.kind == "artifact" and s.task in tasks
            for ids in [tasks[s.task].artifact_ids.get(s.key) or []]
            if ids
        }
    )
    parameters = reader.output_parameters(execution_ids) if execution_ids else {}
    artifacts = reader.artifacts(artifact_ids) if artifact_ids else {}
    return resolve_root_outputs(sources, tasks, parameters, artifacts)


def kfp_status(
    run: Any,
    ref: RunRef,
    outputs: Mapping[str, Any] | None = None,
    missing: Sequence[str] = (),
    now: datetime | None = None,
    outputs_error: str | None = None,
) -> RunStatus:
    """RunStatus from a ``kfp_server_api.V2beta1Run``; the log tail lists failed tasks.

    A SUCCEEDED run is reported as RUNNING while its outputs are not readable yet
    (``outputs_error``: MLMD unreachable) or some declared output is still missing within
    `OUTPUTS_GRACE_S` of ``finished_at``: a trial or backfill judged on a half-recorded
    run would lose its metrics for good. Past the grace the run succeeds with what was found
    and the message names what was not."""
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
    finished_at = getattr(run, "finished_at", None)
    if state == RunState.SUCCEEDED and outputs_error:
        state, message = (
            RunState.RUNNING,
            f"run succeeded; outputs not readable yet: {outputs_error}",
        )
    elif state == RunState.SUCCEEDED and missing:
        waited = None
        if now is not None and isinstance(finished_at, datetime):
            # The API's timestamps are UTC; a naive one is read as such.
            finished = finished_at if finished_at.tzinfo else finished_at.replace(tzinfo=UTC)
            waited = now - finished
        if waited is None or waited < timedelta(seconds=OUTPUTS_GRACE_S):
            state = RunState.RUNNING
            message = f"run succeeded; waiting for outputs {sorted(missing)}"
        else:
            message = f"run succeeded without outputs {sorted(missing)}"
    return RunStatus(
        ref=ref,
        state=state,
        outputs=dict(outputs or {}) if state == RunState.SUCCEEDED else {},
        message=message,
        log_tail=tail,
        started_at=getattr(run, "created_at", None),
        finished_at=finished_at if state.finished else None,
    )


def _mlmd_value(value: Any) -> Any:
    """A plain value from an ``ml_metadata.proto.metadata_store_pb2.Value`` (oneof ``value``)."""
    from google.protobuf.json_format import MessageToDict

    kind = value.WhichOneof("value")
    if kind == "struct_value":
        return MessageToDict(value.struct_value)
    if kind in ("int_value", "double_value", "string_value", "bool_value"):
        return getattr(value, kind)
    return None


# Seconds one MLMD call may take; a slow answer is retried on the next poll.
MLMD_TIMEOUT_S = 10.0


class MlmdGrpcStore:
    """ML Metadata's ``MetadataStoreService`` over plain gRPC, with the same three read calls
    as ``ml_metadata.MetadataStore``. Only the package's generated protos are used
    (``ml_metadata.proto``): ``MetadataStore`` itself needs absl and a native extension, and
    the ml-metadata release pins protobuf<5 while kfp 2.16 runs on protobuf 6 (the 4.x
    generated modules load under it)."""

    def __init__(self, channel: Any, timeout_s: float = MLMD_TIMEOUT_S) -> None:
        from ml_metadata.proto import metadata_store_service_pb2_grpc

        self._stub = metadata_store_service_pb2_grpc.MetadataStoreServiceStub(channel)
        self._timeout_s = timeout_s

    def get_executions_by_id(self, ids: Sequence[int]) -> list[Any]:
        from ml_metadata.proto import metadata_store_service_pb2 as service

        request = service.GetExecutionsByIDRequest(execution_ids=list(ids))
        return list(self._stub.GetExecutionsByID(request, timeout=self._timeout_s).executions)

    def get_artifacts_by_id(self, ids: Sequence[int]) -> list[Any]:
        from ml_metadata.proto import metadata_store_service_pb2 as service

        request = service.GetArtifactsByIDRequest(artifact_ids=list(ids))
        return list(self._stub.GetArtifactsByID(request, timeout=self._timeout_s).artifacts)

    def get_executions_by_context(self, context_id: int) -> list[Any]:
        from ml_metadata.proto import metadata_store_pb2
        from ml_metadata.proto import metadata_store_service_pb2 as service

        executions: list[Any] = []
        token = ""
        while True:
            options = metadata_store_pb2.ListOperationOptions(next_page_token=token)
            request = service.GetExecutionsByContextRequest(context_id=context_id, options=options)
            response = self._stub.GetExecutionsByContext(request, timeout=self._timeout_s)
            executions.extend(response.executions)
            token = response.next_page_token
            if not token:
                return executions


class MlmdExecutionReader:
    """`ExecutionReader` on ML Metadata's gRPC service (the store KFP v2 writes outputs to).

    ``store`` is anything with ``get_executions_by_id`` / ``get_artifacts_by_id`` /
    ``get_executions_by_context`` (`MlmdGrpcStore`, ``ml_metadata.MetadataStore``); without
    one a channel is opened on first use, so building the backend does no I/O."""

    def __init__(
        self, host: str = MLMD_DEFAULT_HOST, port: int = MLMD_DEFAULT_PORT, store: Any = None
    ) -> None:
        self.host = host
        self.port = port
        self._store = store

    def _connect(self) -> Any:
        if self._store is None:
            try:
                import grpc
                import ml_metadata.proto.metadata_store_service_pb2_grpc  # noqa: F401
            except ImportError as error:
                raise OutputsUnavailable(
                    "reading KFP run outputs needs the ml-metadata package's protos (KFP v2 "
                    "keeps output parameters only in ML Metadata)"
                ) from error
            self._store = MlmdGrpcStore(grpc.insecure_channel(f"{self.host}:{self.port}"))
        return self._store

    def output_parameters(self, execution_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        executions = self._connect().get_executions_by_id([int(i) for i in execution_ids])
        found: dict[str, dict[str, Any]] = {}
        for execution in executions:
            properties = execution.custom_properties
            if MLMD_OUTPUTS_PROPERTY in properties:
                value = _mlmd_value(properties[MLMD_OUTPUTS_PROPERTY])
                found[str(execution.id)] = dict(value) if isinstance(value, dict) else {}
        return found

    def root_executions(self, run_context_id: str) -> dict[str, str]:
        executions = self._connect().get_executions_by_context(int(run_context_id))
        # The root DAG is the one execution without a parent DAG (client.go CreateExecution).
        roots = {e.id for e in executions if MLMD_PARENT_DAG_PROPERTY not in e.custom_properties}
        found: dict[str, str] = {}
        for execution in executions:
            properties = execution.custom_properties
            if (
                MLMD_PARENT_DAG_PROPERTY not in properties
                or MLMD_TASK_NAME_PROPERTY not in properties
            ):
                continue
            if _mlmd_value(properties[MLMD_PARENT_DAG_PROPERTY]) in roots:
                found[str(_mlmd_value(properties[MLMD_TASK_NAME_PROPERTY]))] = str(execution.id)
        return found

    def artifacts(self, artifact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        artifacts = self._connect().get_artifacts_by_id([int(i) for i in artifact_ids])
        return {
            str(artifact.id): {
                "uri": artifact.uri,
                "metadata": {
                    key: _mlmd_value(value) for key, value in artifact.custom_properties.items()
                },
            }
            for artifact in artifacts
        }


class KfpClusterBackend:
    """Runs on a Kubeflow Pipelines server through a ``kfp.Client`` created by the caller."""

    def __init__(
        self,
        client: Any,
        host: str,
        experiment: str = "kubeloop",
        namespace: str | None = None,
        packages: Mapping[str, Path] | None = None,
        outputs: ExecutionReader | None = None,
        storage_pvc: str = "",
        storage_kind: str = "pvc",
        storage_secret: str = "",
    ) -> None:
        self.client = client
        # How every task reaches the storage root (pipelines/storage.py): a pvc root's claim
        # is mounted, an s3/gs root's credentials Secret is handed in; the packages are the
        # ones compiled for that kind, and runs are submitted with the claim or Secret name.
        self.storage_kind = storage_kind
        self.storage_pvc = storage_pvc
        self.storage_secret = storage_secret
        self.outputs: ExecutionReader = outputs if outputs is not None else MlmdExecutionReader()
        self.host = host
        self.experiment = experiment
        self.namespace = namespace
        self.packages = dict(packages) if packages is not None else default_packages(storage_kind)
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
        spec = load_spec(package)
        params = {**params, **self._storage_params(pipeline_name, pipeline_inputs(spec))}
        arguments = build_arguments(spec, run_name, params)
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

    def _storage_params(self, pipeline_name: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        """The claim (pvc) or credentials Secret (s3, gs) the package's tasks need."""
        if self.storage_kind == "pvc":
            if STORAGE_PVC_PARAMETER not in inputs:
                return {}
            if not self.storage_pvc:
                raise PipelineRunError(
                    f"pipeline {pipeline_name!r} mounts the storage claim into every task: "
                    "configure a pvc://<claim>/<dir> storage root (KUBELOOP_STORAGE)"
                )
            return {STORAGE_PVC_PARAMETER: self.storage_pvc}
        if STORAGE_SECRET_PARAMETER not in inputs:
            return {}
        if not self.storage_secret:
            raise PipelineRunError(
                f"pipeline {pipeline_name!r} hands every task the {self.storage_kind}:// "
                f"credentials: name their Secret ({STORAGE_SECRET_ENV}, the chart's "
                "storage.credentialsSecret)"
            )
        return {STORAGE_SECRET_PARAMETER: self.storage_secret}

    def _run_spec(self, run: Any, pipeline_name: str) -> Mapping[str, Any]:
        """The run's own pipeline spec when the API returns it, else the package submitted
        (versions are named by content, so it is the one the run was made from)."""
        spec = getattr(run, "pipeline_spec", None)
        if isinstance(spec, Mapping) and pipeline_spec_of(spec).get("root"):
            return spec
        return load_spec(self._package(pipeline_name))

    def get(self, ref: RunRef, now: datetime | None = None) -> RunStatus:
        run = self.client.get_run(ref.run_id)
        if map_kfp_state(getattr(run, "state", None)) != RunState.SUCCEEDED:
            return kfp_status(run, ref)
        try:
            outputs, missing = read_run_outputs(
                run, self._run_spec(run, ref.pipeline_name), self.outputs
            )
        except OutputsUnavailable as error:
            return RunStatus(
                ref=ref,
                state=RunState.FAILED,
                message=f"run succeeded but its outputs cannot be read: {error}",
                started_at=getattr(run, "created_at", None),
                finished_at=getattr(run, "finished_at", None),
            )
        except Exception as error:  # MLMD unreachable or mid-restart: poll again
            return kfp_status(run, ref, outputs_error=f"{type(error).__name__}: {error}")
        return kfp_status(run, ref, outputs, missing, now or _now())


# --------------------------------------------------------------------------- kfp.local backend
