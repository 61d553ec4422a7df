"""Experiment service: FeatureView look-ups, label checks, trial runs, registration of the best.

One `reconcile` serves the change handlers and the timer (level-triggered). Trial runs go
through `PipelineBackend.submit`, idempotent by the deterministic run name, so a restarted
operator finds its trials instead of launching them again. Trials run the training pipeline
with its own registration gate off: only the best trial of a round is registered, here.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from components.engines import choose_engine, local_input_bytes
from contracts.mlflow_tags import EVALUATION_PASSED
from operators.api.common import ANNOTATION_RETRAIN, GROUP, VERSION
from operators.api.experiment import ExperimentSpec, ExperimentStatus, Trial, TrialState
from operators.api.featureview import FeatureViewSpec, FeatureViewStatus
from operators.backends.runs import PipelineBackend, RunRef, RunState
from operators.config import OperatorConfig
from operators.experiment import reconcile as core
from operators.experiment import trials as planning
from operators.featureview.definition import LocalPaths, component_definition, is_local, local
from operators.featureview.reconcile import definition_version
from operators.kind import KindObject, Outcome
from operators.status import observed

PIPELINE = "training"
Experiment = KindObject[ExperimentSpec, ExperimentStatus]


def parse_hidden_units(text: str) -> list[int]:
    """`"32,16"` -> [32, 16]; `"none"` or empty -> [] (a logistic regression)."""
    if text.strip().lower() in ("", "none"):
        return []
    return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]


# Search parameters that are training-pipeline inputs, with their types; others are only
# recorded with the trial (MLflow params) for trainers that read them.
PIPELINE_PARAMETERS: dict[str, Callable[[str], Any]] = {
    "learning_rate": float,
    "weight_decay": float,
    "epochs": int,
    "batch_size": int,
    "seed": int,
    "hidden_units": parse_hidden_units,
}
PARAMETER_ALIASES = {"lr": "learning_rate"}


class FeatureViewReader(Protocol):
    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...


class KubeFeatureViews:
    """FeatureView objects through the Kubernetes API (client created at startup)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "featureviews", name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found


class Registration(BaseModel):
    version: str


# (tracking_uri, model, run_id, lineage, training_set_dir, feature_columns) -> version
Registrar = Callable[[str, str, str, dict[str, Any], str, list[str]], Registration]


def register_with_mlflow(
    tracking_uri: str,
    model: str,
    run_id: str,
    lineage: dict[str, Any],
    training_set_dir: str,
    feature_columns: list[str],
) -> Registration:
    """The `register_model` component's implementation, called for the best trial only."""
    from components.register_model.impl import Lineage, code_version, register_from_training_set

    registration = register_from_training_set(
        tracking_uri=tracking_uri,
        model_name=model,
        run_id=run_id,
        lineage=Lineage(**lineage, code_version=code_version()),
        training_set_dir=training_set_dir,
        feature_columns=feature_columns,
    )
    return Registration(version=registration.version)


@dataclass
class ExperimentBackends:
    pipelines: PipelineBackend
    featureviews: FeatureViewReader
    paths: LocalPaths
    # Under the storage root (KUBELOOP_STORAGE), as the pipeline tasks see it.
    training_root: str
    tracking_uri: str
    spark_master: str
    registrar: Registrar = register_with_mlflow
    memory_budget_mb: int = 4096
    # nodes > 1: the TrainJob's image and the storage every node and the KFP step share.
    trainjob_image: str = ""
    shared_dir: str = ""

    @classmethod
    def from_config(
        cls,
        config: OperatorConfig,
        reader: FeatureViewReader,
        pipelines: PipelineBackend,
    ) -> ExperimentBackends:
        return cls(
            pipelines=pipelines,
            featureviews=reader,
            paths=LocalPaths(resolve_relative=config.pipeline_backend == "local"),
            training_root=config.storage_root.data_uri("training-sets"),
            tracking_uri=config.effective_mlflow_tracking_uri,
            spark_master=config.spark_master,
            memory_budget_mb=config.duckdb_memory_budget_mb,
            trainjob_image=config.trainjob_image or "",
            shared_dir=config.shared_dir_path,
        )


@dataclass
class ReadyView:
    """A FeatureView whose current definition has been backfilled."""

    name: str
    spec: FeatureViewSpec
    status: FeatureViewStatus


class NotReady(Exception):
    """Inputs are not there yet (a FeatureView still backfilling): wait, launch nothing."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BadInputs(Exception):
    """Inputs that can never train; the message names the problem."""


# ------------------------------------------------------------------------------- input checks


def ready_view(backends: ExperimentBackends, namespace: str, name: str) -> ReadyView:
    body = backends.featureviews.get(namespace, name)
    if body is None:
        raise NotReady("FeatureViewNotFound", f"FeatureView {namespace}/{name} does not exist")
    try:
        spec = FeatureViewSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        raise NotReady("FeatureViewInvalid", f"FeatureView {name} has an invalid spec") from None
    status = FeatureViewStatus.model_validate(body.get("status") or {})
    backfilled = next((c for c in status.conditions if c.type == "Backfilled"), None)
    current = status.version == definition_version(spec)
    # A scheduled view is re-backfilled every tick (Backfilled=Unknown meanwhile); what it
    # already holds stays readable, so a freshness mark of this version is enough.
    fresh = status.freshness is not None and status.freshness.offline is not None
    succeeded = backfilled is not None and backfilled.status == "True"
    if not (current and (succeeded or fresh) and status.offline_path):
        state = f"Backfilled={backfilled.status}" if backfilled else "no backfill yet"
        raise NotReady(
            "FeaturesNotReady", f"FeatureView {name} is not backfilled for its definition ({state})"
        )
    return ReadyView(name=name, spec=spec, status=status)


def view_freshness(view: ReadyView) -> core.ViewFreshness:
    last = view.status.last_backfill
    return core.ViewFreshness(
        name=view.name,
        scheduled=view.spec.backfill.schedule is not None,
        offline=view.status.freshness.offline if view.status.freshness else None,
        backfill_end=view.spec.backfill.end,
        last_failed=last is not None and last.state == RunState.FAILED,
    )


def check_features(spec: ExperimentSpec, views: list[ReadyView]) -> None:
    for ref, view in zip(spec.features, views, strict=True):
        declared = [f.name for f in view.spec.features]
        missing = [n for n in ref.names if n not in declared]
        if missing:
            raise BadInputs(
                f"features: {missing} not declared by FeatureView {view.name} (it has {declared})"
            )


def check_labels(backends: ExperimentBackends, spec: ExperimentSpec) -> None:
    """Column names and types of the label events, from the Parquet footer (cheap)."""
    import pyarrow.dataset as pads
    from pyarrow import types

    path = backends.paths.task_uri(spec.labels.source)
    if not is_local(path) or not backends.paths.operator_sees_data:
        return
    if not os.path.exists(local(path)):
        raise BadInputs(f"labels.source {spec.labels.source!r} does not exist")
    try:
        schema = pads.dataset(local(path), format="parquet").schema
    except Exception as error:
        raise BadInputs(f"labels.source {spec.labels.source!r} is not Parquet: {error}") from None
    columns = {field.name: field.type for field in schema}
    labels = spec.labels
    log = labels.prediction_log
    joins = [log.request_id_field, *([log.row_field] if log.row_field else [])] if log else []
    missing = [
        c
        for c in (labels.timestamp_field, labels.label_field, *labels.entity_keys, *joins)
        if c not in columns
    ]
    if missing:
        raise BadInputs(
            f"labels: columns {missing} are absent from {spec.labels.source} (have {sorted(columns)})"
        )
    label_type = columns[labels.label_field]
    if not (types.is_integer(label_type) or types.is_boolean(label_type)):
        raise BadInputs(
            f"labels.labelField {labels.label_field!r} has type {label_type}; a binary label "
            "must be an integer (0/1) or boolean column"
        )
    stamp_type = columns[labels.timestamp_field]
    if not (types.is_timestamp(stamp_type) or types.is_date(stamp_type)):
        raise BadInputs(
            f"labels.timestampField {labels.timestamp_field!r} has type {stamp_type}, not a timestamp"
        )


# ------------------------------------------------------------------------------ trial runs


def training_set_dir(backends: ExperimentBackends, obj: Experiment, trial: Trial) -> str:
    return posixpath.join(backends.training_root, obj.namespace, obj.name, trial.run or trial.name)


def mlflow_experiment(obj: Experiment) -> str:
    return f"kubeloop-{obj.namespace}-{obj.name}"


def ensure_mlflow_experiment(tracking_uri: str, name: str) -> None:
    """On a SQLite store, artifacts go next to the database, not into a run's working dir."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        root = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts" / name
        client.create_experiment(name, artifact_location=root.as_uri())


def pipeline_parameters(params: dict[str, str]) -> dict[str, Any]:
    """Trial parameters the training pipeline takes as inputs (`lr` means learning_rate)."""
    mapped: dict[str, Any] = {}
    for name, value in params.items():
        key = PARAMETER_ALIASES.get(name, name)
        if key in PIPELINE_PARAMETERS:
            mapped[key] = PIPELINE_PARAMETERS[key](value)
    return mapped


def join_engine(
    backends: ExperimentBackends, spec: ExperimentSpec, views: list[ReadyView]
) -> tuple[str, str]:
    """(engine, why) of the training set's point-in-time join; auto resolves here."""
    paths = [backends.paths.task_uri(spec.labels.source)]
    paths += [v.status.offline_path or "" for v in views]
    sizes = local_input_bytes(paths) if backends.paths.operator_sees_data else None
    return choose_engine(str(spec.engine), backends.spark_master, sizes, backends.memory_budget_mb)


def trial_params(
    backends: ExperimentBackends,
    obj: Experiment,
    status: ExperimentStatus,
    views: list[ReadyView],
    trial: Trial,
) -> dict[str, Any]:
    spec = obj.spec
    labels = spec.labels.to_k8s()
    labels["source"] = backends.paths.task_uri(spec.labels.source)
    if spec.labels.prediction_log is not None:
        log = labels["predictionLog"]
        log["path"] = backends.paths.task_uri(spec.labels.prediction_log.path)
        log["namespace"] = obj.namespace
    return {
        "labels": labels,
        "feature_views": [
            {
                "featureView": component_definition(backends.paths, v.name, v.spec),
                "offlinePath": v.status.offline_path,
                "names": ref.names,
            }
            for ref, v in zip(spec.features, views, strict=True)
        ],
        "split": core.trial_split(spec, status),
        "training_set_dir": training_set_dir(backends, obj, trial),
        "model_name": spec.registration.model,
        "objective": {
            "metric": spec.objective.metric,
            "threshold": spec.objective.threshold,
            "minImprovement": spec.objective.min_improvement,
        },
        "register": False,
        "experiment": obj.name,
        "trial": trial.name,
        "trial_params": trial.params,
        "feature_view_versions": {v.name: v.status.version for v in views},
        "spark_master": backends.spark_master,
        "join_method": join_engine(backends, spec, views)[0],
        "epochs": spec.trainer.epochs,
        "batch_size": spec.trainer.batch_size,
        "nproc_per_node": spec.trainer.nproc_per_node,
        "nodes": spec.trainer.nodes,
        # What train_ddp needs for a TrainJob (it refuses nodes > 1 without them); the job
        # runs in the Experiment's namespace.
        "shared_dir": backends.shared_dir,
        "trainjob_image": backends.trainjob_image,
        "trainjob_namespace": obj.namespace,
        "backend": str(spec.trainer.backend),
        "mlflow_tracking_uri": backends.tracking_uri,
        "mlflow_experiment": mlflow_experiment(obj),
        **pipeline_parameters(trial.params),
    }


def _submit(backends: ExperimentBackends, params: dict[str, Any], trial: Trial) -> RunRef:
    assert trial.run is not None
    return backends.pipelines.submit(PIPELINE, trial.run, params)


def launch_and_observe(
    backends: ExperimentBackends,
    obj: Experiment,
    status: ExperimentStatus,
    views: list[ReadyView],
) -> ExperimentStatus:
    """Observe running trials, then launch pending ones up to `parallelTrials`."""
    running = [t for t in status.trials if t.state == TrialState.RUNNING]
    status = _observe_all(backends, obj, status, views, running)
    launch = planning.to_launch(status.trials, obj.spec.search.parallel_trials)
    if launch:
        ensure_mlflow_experiment(backends.tracking_uri, mlflow_experiment(obj))
        engine, why = join_engine(backends, obj.spec, views)
        status = status.model_copy(update={"engine": f"{engine} ({why})"})
    return _observe_all(backends, obj, status, views, launch)


def _observe_all(
    backends: ExperimentBackends,
    obj: Experiment,
    status: ExperimentStatus,
    views: list[ReadyView],
    trials: list[Trial],
) -> ExperimentStatus:
    for trial in trials:
        status = core.replace_trial(status, _observe(backends, obj, status, views, trial))
    return status


def _observe(
    backends: ExperimentBackends,
    obj: Experiment,
    status: ExperimentStatus,
    views: list[ReadyView],
    trial: Trial,
) -> Trial:
    try:
        ref = _submit(backends, trial_params(backends, obj, status, views, trial), trial)
        return core.observe_trial(trial, backends.pipelines.get(ref), obj.spec.objective.metric)
    except Exception as error:  # a backend problem fails the trial, never the operator
        return trial.model_copy(
            update={
                "state": TrialState.FAILED,
                "message": f"{type(error).__name__}: {error}"[:2000],
            }
        )


# ------------------------------------------------------------------------------ registration


def register_best(
    backends: ExperimentBackends,
    obj: Experiment,
    status: ExperimentStatus,
    views: list[ReadyView],
    why: str,
) -> ExperimentStatus:
    spec = obj.spec
    assert status.best is not None
    best = next(t for t in status.trials if t.name == status.best.trial)
    try:
        ref = _submit(backends, trial_params(backends, obj, status, views, best), best)
        run = backends.pipelines.get(ref)
        _, feature_columns = core.trial_metrics(run.outputs, spec.objective.metric)
        lineage = {
            "feature_view_versions": {v.name: v.status.version or "" for v in views},
            "data_window": core.lineage_window(run.outputs, status),
            "kfp_run_id": ref.run_id,
            "kfp_run_name": ref.run_name,
            "experiment": obj.name,
            "trial": best.name,
            # Only a best trial that passed registration_verdict() gets this far.
            "evaluation": EVALUATION_PASSED,
            # What the trials' runs were launched with (status.engine: "<engine> (why)").
            "training_set_engine": (status.engine or "").split(" ")[0],
            **core.retrain_lineage(status),
            **planning.comparison_lineage(status.best),
        }
        registration = backends.registrar(
            backends.tracking_uri,
            spec.registration.model,
            best.mlflow_run_id or "",
            lineage,
            training_set_dir(backends, obj, best),
            feature_columns,
        )
    except Exception as error:  # retried on the next tick; the operator stays up
        message = f"registering {best.name}: {type(error).__name__}: {error}"[:2000]
        return core.registration_failed(status, message, obj.generation)
    return core.registered(
        status, registration.version, spec.registration.model, why, obj.generation
    )


# --------------------------------------------------------------------------------- reconcile


def reconcile(
    backends: ExperimentBackends, obj: Experiment, now: datetime
) -> Outcome[ExperimentStatus]:
    spec = obj.spec
    status = observed(obj.status, obj.generation)
    request = core.parse_retrain_request(obj.annotations.get(ANNOTATION_RETRAIN))
    if core.needs_new_round(status, obj.generation, request):
        fresh = request if core.is_new_request(status, request) else None
        status = core.start_round(obj.name, spec, status, obj.generation, now, fresh)
    if core.round_done(status):
        return Outcome(status)
    try:
        views = [ready_view(backends, obj.namespace, ref.feature_view) for ref in spec.features]
    except NotReady as waiting:
        return Outcome(core.waiting(status, waiting.reason, str(waiting), obj.generation))
    # Features from the prediction log were served already: no FeatureView to wait for.
    read = [] if spec.labels.prediction_log else [view_freshness(v) for v in views]
    lagging = core.lagging_views(status, read)
    if lagging:
        return Outcome(core.waiting_for_features(status, lagging, obj.generation))
    if any(t.state == TrialState.PENDING for t in status.trials):
        try:
            check_features(spec, views)
            check_labels(backends, spec)
        except BadInputs as bad:
            status = core.fail_unlaunched(status, str(bad))
    status = launch_and_observe(backends, obj, status, views)
    if not planning.all_finished(status.trials):
        return Outcome(core.running(status, obj.generation))
    status, should_register, why = core.conclude(spec, status, obj.generation)
    if status.best is None:
        return Outcome(status)
    if not should_register:
        return Outcome(core.not_registered(status, why, obj.generation))
    return Outcome(register_best(backends, obj, status, views, why))
