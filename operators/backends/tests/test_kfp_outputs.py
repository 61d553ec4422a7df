"""Run outputs of the KFP cluster backend, on the real ``kfp_server_api`` model classes.

No KFP server or ML Metadata service runs here: ``get_run`` answers with ``V2beta1Run``
objects (so every field name is the server's), and MLMD answers through a fake store shaped
like ``ml_metadata.MetadataStore`` (executions with ``custom_properties['outputs']`` holding a
``google.protobuf.Struct``, as KFP's launcher publishes them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import struct_pb2
from kfp_server_api import (
    V2beta1ArtifactList,
    V2beta1PipelineTaskDetail,
    V2beta1Run,
    V2beta1RunDetails,
)

from operators.api.experiment import Trial, TrialState
from operators.backends.kfp_cluster import (
    OUTPUTS_GRACE_S,
    KfpClusterBackend,
    MlmdExecutionReader,
    OutputSource,
    resolve_root_outputs,
    root_output_sources,
    task_outputs,
)
from operators.backends.runs import RunRef, RunState, default_packages, load_spec
from operators.experiment.reconcile import lineage_window, observe_trial

FINISHED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
METRICS = {
    "windows": {"validation": {"auc": 0.91}},
    "objective": {"value": 0.91, "baseline_value": 0.8},
    "feature_columns": ["f0", "f1"],
}
WINDOW = {"start": "2026-11-01T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00"}


class FakeValue:
    """An ``ml_metadata`` ``Value``: a oneof named ``value``."""

    def __init__(self, **field: Any) -> None:
        ((self._kind, payload),) = field.items()
        setattr(self, self._kind, payload)

    def WhichOneof(self, name: str) -> str:  # noqa: N802 - the protobuf method name
        assert name == "value"
        return self._kind


def struct_value(values: dict[str, Any]) -> FakeValue:
    message = struct_pb2.Struct()
    message.update(values)
    return FakeValue(struct_value=message)


class FakeStore:
    """``get_executions_by_id`` / ``get_artifacts_by_id`` as ``ml_metadata.MetadataStore``."""

    def __init__(self, executions: dict[int, dict[str, Any]], artifacts: dict[int, Any]) -> None:
        self.executions = executions
        self.artifacts = artifacts
        self.asked: list[list[int]] = []

    def get_executions_by_id(self, ids: Sequence[int]) -> list[Any]:
        self.asked.append(list(ids))
        return [
            SimpleNamespace(id=i, custom_properties={"outputs": struct_value(self.executions[i])})
            for i in ids
            if i in self.executions
        ]

    def get_artifacts_by_id(self, ids: Sequence[int]) -> list[Any]:
        return [self.artifacts[i] for i in ids if i in self.artifacts]

    def get_executions_by_context(self, context_id: int) -> list[Any]:
        assert context_id == 500
        return getattr(self, "context", [])


def execution(execution_id: int, task_name: str | None, parent: int | None) -> Any:
    properties: dict[str, FakeValue] = {}
    if task_name is not None:
        properties["task_name"] = FakeValue(string_value=task_name)
    if parent is not None:
        properties["parent_dag_id"] = FakeValue(int_value=parent)
    return SimpleNamespace(id=execution_id, custom_properties=properties)


class FakeClient:
    def __init__(self, run: V2beta1Run) -> None:
        self.run = run

    def get_run(self, run_id: str) -> V2beta1Run:
        assert run_id == self.run.run_id
        return self.run


def task(
    name: str,
    task_id: str,
    parent: str | None,
    execution_id: str | None = None,
    state: str = "SUCCEEDED",
    artifacts: dict[str, list[str]] | None = None,
) -> V2beta1PipelineTaskDetail:
    return V2beta1PipelineTaskDetail(
        run_id="r1",
        task_id=task_id,
        display_name=name,
        state=state,
        execution_id=execution_id,
        parent_task_id=parent,
        outputs={k: V2beta1ArtifactList(artifact_ids=v) for k, v in (artifacts or {}).items()},
    )


def training_run(state: str = "SUCCEEDED") -> V2beta1Run:
    return V2beta1Run(
        run_id="r1",
        display_name="exp-t0",
        state=state,
        created_at=FINISHED - timedelta(minutes=30),
        finished_at=FINISHED,
        run_details=V2beta1RunDetails(
            task_details=[
                task("root", "t-root", None, "10"),
                task("build-training-set", "t-b", "t-root", "11"),
                task("training-set-handoff", "t-h", "t-root", "12", artifacts={"train": ["7"]}),
                task("train-ddp", "t-t", "t-root", "13", artifacts={"model": ["8"]}),
                task("evaluate", "t-e", "t-root", "14"),
                task("condition-1", "t-c", "t-root", "15"),
                # Nested in the registration condition, same name as no root task: harmless.
                task("register-model", "t-r", "t-c", "16"),
            ]
        ),
    )


def training_store() -> FakeStore:
    return FakeStore(
        executions={
            12: {"data_window": WINDOW, "feature_columns": ["f0", "f1"], "label_column": "y"},
            13: {"mlflow_run_id": "abc123", "model_uri": "runs:/abc123/model"},
            14: {"metrics_json": json.dumps(METRICS), "beats_baseline": True},
        },
        artifacts={},
    )


def backend(run: V2beta1Run, store: FakeStore) -> KfpClusterBackend:
    return KfpClusterBackend(
        FakeClient(run), host="http://kfp", outputs=MlmdExecutionReader(store=store)
    )


def ref(pipeline: str) -> RunRef:
    return RunRef(backend="kfp", pipeline_name=pipeline, run_name="exp-t0", run_id="r1", url="u")


def test_training_run_yields_the_trial_metrics_and_mlflow_run_id() -> None:
    """The break of issue #13 item 1: on a real KFP server trials had no metrics and no
    MLflow run id, so no model was ever registered. Fails on the code before this change."""
    store = training_store()
    status = backend(training_run(), store).get(ref("training"), now=FINISHED)
    assert status.state == RunState.SUCCEEDED
    assert status.outputs == {
        "data_window": WINDOW,
        "metrics_json": json.dumps(METRICS),
        "mlflow_run_id": "abc123",
    }
    # Only the producers of root outputs are read from MLMD, in one call.
    assert store.asked == [[12, 13, 14]]
    trial = observe_trial(Trial(name="t0"), status, "auc")
    assert trial.state == TrialState.SUCCEEDED
    assert trial.mlflow_run_id == "abc123"
    assert trial.metrics["auc"] == pytest.approx(0.91)
    assert trial.metrics["baseline_auc"] == pytest.approx(0.8)
    assert lineage_window(status.outputs, status=None) == WINDOW  # type: ignore[arg-type]


def test_backfill_rows_come_back_as_an_integer() -> None:
    run = V2beta1Run(
        run_id="r1",
        state="SUCCEEDED",
        finished_at=FINISHED,
        run_details=V2beta1RunDetails(
            task_details=[
                task("root", "t-root", None, "1"),
                task("spark-feature-backfill", "t-s", "t-root", "2"),
                task("feast-apply-materialize", "t-f", "t-root", "3"),
            ]
        ),
    )
    # MLMD keeps every number as a Struct double.
    store = FakeStore({2: {"Output": 7.0}, 3: {"Output": '{"applied": 1}'}}, {})
    status = backend(run, store).get(ref("feature_backfill"), now=FINISHED)
    assert status.state == RunState.SUCCEEDED
    assert status.outputs == {"rows": 7, "feast_summary_json": '{"applied": 1}'}
    assert isinstance(status.outputs["rows"], int)


def test_missing_outputs_wait_then_succeed_naming_them() -> None:
    store = training_store()
    del store.executions[13]  # train-ddp's execution not published yet
    cluster = backend(training_run(), store)
    waiting = cluster.get(ref("training"), now=FINISHED + timedelta(seconds=5))
    assert waiting.state == RunState.RUNNING
    assert waiting.outputs == {}
    assert "mlflow_run_id" in (waiting.message or "")
    late = FINISHED + timedelta(seconds=OUTPUTS_GRACE_S + 1)
    given_up = cluster.get(ref("training"), now=late)
    assert given_up.state == RunState.SUCCEEDED
    assert "mlflow_run_id" not in given_up.outputs
    assert given_up.message == "run succeeded without outputs ['mlflow_run_id']"
    # A naive finished_at is read as UTC.
    naive = training_run()
    naive.finished_at = FINISHED.replace(tzinfo=None)
    assert backend(naive, store).get(ref("training"), now=late).state == RunState.SUCCEEDED


def test_unreachable_mlmd_keeps_polling_and_a_missing_client_fails() -> None:
    class Down(FakeStore):
        def get_executions_by_id(self, ids: Sequence[int]) -> list[Any]:
            raise ConnectionError("metadata-grpc-service: connection refused")

    status = backend(training_run(), Down({}, {})).get(ref("training"), now=FINISHED)
    assert status.state == RunState.RUNNING
    assert "connection refused" in (status.message or "")

    no_client = KfpClusterBackend(FakeClient(training_run()), host="http://kfp")
    try:
        import ml_metadata  # noqa: F401
    except ImportError:
        failed = no_client.get(ref("training"), now=FINISHED)
        assert failed.state == RunState.FAILED
        assert "ml-metadata" in (failed.message or "")


def test_unfinished_and_failed_runs_read_no_outputs() -> None:
    store = training_store()
    for state, expected in (("RUNNING", RunState.RUNNING), ("FAILED", RunState.FAILED)):
        status = backend(training_run(state), store).get(ref("training"), now=FINISHED)
        assert status.state == expected
        assert status.outputs == {}
    assert store.asked == []


def test_root_outputs_of_the_compiled_pipelines() -> None:
    packages = default_packages()
    training = root_output_sources(load_spec(packages["training"]))
    assert training == {
        "data_window": OutputSource("parameter", "training-set-handoff", "data_window", "STRUCT"),
        "metrics_json": OutputSource("parameter", "evaluate", "metrics_json", "STRING"),
        "mlflow_run_id": OutputSource("parameter", "train-ddp", "mlflow_run_id", "STRING"),
    }
    backfill = root_output_sources(load_spec(packages["feature_backfill"]))
    assert backfill["rows"] == OutputSource(
        "parameter", "spark-feature-backfill", "Output", "NUMBER_INTEGER"
    )
    # A run's own pipeline_spec, wrapped with a platform spec, reads the same.
    wrapped = {"pipeline_spec": load_spec(packages["training"]), "platform_spec": {}}
    assert root_output_sources(wrapped) == training


def test_tasks_prefer_root_level_and_borrow_the_driver_execution() -> None:
    run = V2beta1Run(
        run_details=V2beta1RunDetails(
            task_details=[
                task("root", "a", None, "1"),
                task("condition-1", "b", "a", "2"),
                task("evaluate", "c", "b", "3"),  # nested namesake
                task("evaluate", "d", "a", None),
                task("evaluate-driver", "e", "a", "4"),
            ]
        )
    )
    tasks = task_outputs(run)
    assert "root" not in tasks
    assert tasks["evaluate"].task_id == "d"
    assert tasks["evaluate"].execution_id == "4"
    # Servers that report no parent ids: every task counts as root-level.
    flat = V2beta1Run(
        run_details=V2beta1RunDetails(task_details=[task("evaluate", "x", None, "9")])
    )
    assert task_outputs(flat)["evaluate"].execution_id == "9"


def test_artifact_outputs_take_uri_and_metadata() -> None:
    sources = {"model": OutputSource("artifact", "train-ddp", "model")}
    run = V2beta1Run(
        run_details=V2beta1RunDetails(
            task_details=[task("train-ddp", "t", None, "5", artifacts={"model": ["8"]})]
        )
    )
    artifact = SimpleNamespace(
        id=8,
        uri="s3://bucket/train-ddp/model",
        custom_properties={
            "display_name": FakeValue(string_value="model"),
            "accuracy": FakeValue(double_value=0.9),
        },
    )
    reader = MlmdExecutionReader(store=FakeStore({}, {8: artifact}))
    outputs, missing = resolve_root_outputs(sources, task_outputs(run), {}, reader.artifacts(["8"]))
    assert missing == []
    assert outputs == {
        "model": {
            "uri": "s3://bucket/train-ddp/model",
            "metadata": {"display_name": "model", "accuracy": 0.9},
        }
    }


def test_metadata_address_is_configured_and_checked() -> None:
    from operators.backends.pipelines import pipeline_backend_from_config
    from operators.backends.runs import PipelineRunError
    from operators.config import OperatorConfig

    config = OperatorConfig.from_env(
        {
            "KUBELOOP_PIPELINE_BACKEND": "kfp",
            "KUBELOOP_KFP_HOST": "http://kfp.example:8888",
            "KUBELOOP_KFP_METADATA_ADDRESS": "mlmd",
        }
    )
    with pytest.raises(PipelineRunError, match="kfp_metadata_address 'mlmd' is not host:port"):
        pipeline_backend_from_config(config)
    assert OperatorConfig().kfp_metadata_address == "metadata-grpc-service.kubeflow:8080"


def test_producers_without_execution_ids_are_found_in_the_run_context() -> None:
    """When the run API lists no execution id (or no task) for a producer, the run's MLMD
    context (``pipeline_run_context_id``) gives it by task name among the root DAG's tasks."""
    run = training_run()
    run.run_details.pipeline_run_context_id = "500"
    for detail in run.run_details.task_details:
        detail.execution_id = None
    run.run_details.task_details = [
        t for t in run.run_details.task_details if t.display_name != "evaluate"
    ]
    store = training_store()
    store.context = [  # type: ignore[attr-defined]
        execution(10, "root", None),
        execution(12, "training-set-handoff", 10),
        execution(13, "train-ddp", 10),
        execution(14, "evaluate", 10),
        execution(15, "condition-1", 10),
        execution(99, "evaluate", 15),  # a nested namesake is not a root output's producer
    ]
    status = backend(run, store).get(ref("training"), now=FINISHED)
    assert status.state == RunState.SUCCEEDED
    assert status.outputs["mlflow_run_id"] == "abc123"
    assert json.loads(status.outputs["metrics_json"]) == METRICS
    assert store.asked == [[12, 13, 14]]


def test_grpc_store_reads_a_metadata_store_service_over_the_wire() -> None:
    """`MlmdGrpcStore` against an in-process ``MetadataStoreService`` on ML Metadata's own
    generated protos (skipped where the ml-metadata protos are not installed)."""
    grpc = pytest.importorskip("grpc")
    pb2 = pytest.importorskip("ml_metadata.proto.metadata_store_pb2")
    service = pytest.importorskip("ml_metadata.proto.metadata_store_service_pb2")
    service_grpc = pytest.importorskip("ml_metadata.proto.metadata_store_service_pb2_grpc")
    from concurrent import futures

    from operators.backends.kfp_cluster import MlmdGrpcStore

    def make(execution_id: int, task_name: str, parent: int | None, outputs: dict) -> Any:
        made = pb2.Execution(id=execution_id)
        made.custom_properties["task_name"].string_value = task_name
        if parent is not None:
            made.custom_properties["parent_dag_id"].int_value = parent
        if outputs:
            made.custom_properties["outputs"].struct_value.update(outputs)
        return made

    executions = {
        10: make(10, "root", None, {}),
        13: make(13, "train-ddp", 10, {"mlflow_run_id": "abc123"}),
        14: make(14, "evaluate", 10, {"metrics_json": "{}"}),
    }

    servicer: Any = service_grpc.MetadataStoreServiceServicer

    class Service(servicer):  # type: ignore[misc,valid-type]
        def GetExecutionsByID(self, request: Any, context: Any) -> Any:  # noqa: N802
            found = [executions[i] for i in request.execution_ids if i in executions]
            return service.GetExecutionsByIDResponse(executions=found)

        def GetExecutionsByContext(self, request: Any, context: Any) -> Any:  # noqa: N802
            # Two pages, as a large run's context would answer.
            ordered = [executions[i] for i in sorted(executions)]
            if not request.options.next_page_token:
                return service.GetExecutionsByContextResponse(
                    executions=ordered[:2], next_page_token="page-2"
                )
            return service.GetExecutionsByContextResponse(executions=ordered[2:])

        def GetArtifactsByID(self, request: Any, context: Any) -> Any:  # noqa: N802
            artifact = pb2.Artifact(id=8, uri="s3://b/model")
            artifact.custom_properties["display_name"].string_value = "model"
            return service.GetArtifactsByIDResponse(artifacts=[artifact])

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service_grpc.add_MetadataStoreServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        reader = MlmdExecutionReader(store=MlmdGrpcStore(channel))
        assert reader.output_parameters(["13", "14", "99"]) == {
            "13": {"mlflow_run_id": "abc123"},
            "14": {"metrics_json": "{}"},
        }
        assert reader.root_executions("500") == {"train-ddp": "13", "evaluate": "14"}
        assert reader.artifacts(["8"]) == {
            "8": {"uri": "s3://b/model", "metadata": {"display_name": "model"}}
        }
        channel.close()
    finally:
        server.stop(None)
