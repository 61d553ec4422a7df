"""Register a run's logged model as an MLflow model version, with lineage and a drift reference.

When the evaluate component saved the model's validation scores to the run
(``SCORE_REFERENCE_ARTIFACT``), the version is tagged with their URI (``SCORE_REFERENCE``): the
monitor's prediction-drift baseline for that version.

Idempotent: the version for (registered model, run) is looked up first, so re-registering the
same run returns the existing version; the reference snapshot is uploaded only when missing.
The client is passed in (or built from a tracking URI by the caller), never a global.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from contracts import mlflow_tags as tag
from contracts.mlflow_tags import (
    REFERENCE_ARTIFACT,
    REFERENCE_DIR,
    REFERENCE_FILE,
    SCORE_REFERENCE_ARTIFACT,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

DEFAULT_SAMPLE_ROWS = 5000


class RegistrationError(ValueError):
    """Bad registration input or a run without a model; the message names the problem."""


class Lineage(BaseModel):
    """Where a model version came from; stored as model-version tags (contracts/mlflow_tags.py)."""

    model_config = ConfigDict(extra="forbid")

    feature_view_versions: dict[str, str] = Field(default_factory=dict)
    data_window: dict[str, Any] = Field(default_factory=dict)
    code_version: str = ""
    kfp_run_id: str = ""
    kfp_run_name: str = ""
    experiment: str = ""
    trial: str = ""
    # "passed" when the caller registers a version that met the objective and beat the
    # baseline; MLModels with `follow: latest-passing` serve the newest such version.
    evaluation: str = ""
    # Set when the version comes from a retrain round: why it was retrained (the request's
    # reason), the drift report that caused it (URL) and when it was requested (ISO 8601).
    retrain_reason: str = ""
    drift_report: str = ""
    retrain_requested_at: str = ""
    # Champion/challenger figures (camelCase JSON, see comparison_lineage): the paired
    # comparison with the champion (empty when there was none yet) and with the best baseline.
    vs_champion: str = ""
    vs_baseline: str = ""
    # The engine that built the training set's point-in-time join (duckdb or spark).
    training_set_engine: str = ""

    def tags(self) -> dict[str, str]:
        values = {
            tag.FEATURE_VIEW_VERSIONS: json.dumps(self.feature_view_versions, sort_keys=True),
            tag.DATA_WINDOW: json.dumps(self.data_window, sort_keys=True, default=_iso),
            tag.CODE_VERSION: self.code_version,
            tag.KFP_RUN_ID: self.kfp_run_id,
            tag.KFP_RUN_NAME: self.kfp_run_name,
            tag.EXPERIMENT: self.experiment,
            tag.TRIAL: self.trial,
            tag.EVALUATION: self.evaluation,
            tag.RETRAIN_REASON: self.retrain_reason,
            tag.DRIFT_REPORT: self.drift_report,
            tag.RETRAIN_REQUESTED_AT: self.retrain_requested_at,
            tag.VS_CHAMPION: self.vs_champion,
            tag.VS_BASELINE: self.vs_baseline,
            tag.TRAINING_SET_ENGINE: self.training_set_engine,
        }
        return {key: value for key, value in values.items() if value}


class Registration(BaseModel):
    model_name: str
    version: str
    run_id: str
    source: str
    created: bool  # False: the run was registered before and that version is returned
    reference_artifact_uri: str
    tags: dict[str, str]
    score_reference_uri: str | None = None  # the validation scores, when evaluate saved them


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {value!r}")


def comparison_lineage(evaluation_json: str) -> dict[str, str]:
    """``vs_champion``/``vs_baseline`` lineage from an evaluation report (components/evaluate's
    ``metrics_json``): each comparison as camelCase JSON, the form the Experiment's status and
    the operator's registration use too; absent comparisons are left out."""
    if not evaluation_json.strip():
        return {}
    try:
        report = json.loads(evaluation_json)
    except json.JSONDecodeError as error:
        raise RegistrationError(f"evaluation_json is not JSON: {error}") from None
    lineage = {}
    for key in ("vs_champion", "vs_baseline"):
        comparison = report.get(key) if isinstance(report, dict) else None
        if isinstance(comparison, dict):
            camel = {to_camel(name): value for name, value in comparison.items()}
            lineage[key] = json.dumps(
                {k: v for k, v in camel.items() if v is not None}, sort_keys=True
            )
    return lineage


def code_version(repo_dir: str | Path | None = None) -> str:
    """The git commit when running from a checkout, else the installed package version."""
    directory = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        if sha:
            return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"kubeloop=={metadata.version('kubeloop')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def reference_sample(
    frame: pd.DataFrame, feature_columns: Sequence[str], rows: int, seed: int = 0
) -> pd.DataFrame:
    """A deterministic sample of the training features (the drift detector's reference)."""
    missing = [column for column in feature_columns if column not in frame.columns]
    if missing:
        raise RegistrationError(f"feature column {missing[0]!r} missing from the training features")
    if not feature_columns:
        raise RegistrationError("feature_columns is empty: nothing to save as drift reference")
    if rows < 1:
        raise RegistrationError(f"sample_rows must be >= 1, got {rows}")
    features = frame[list(feature_columns)]
    if len(features) > rows:
        features = features.sample(n=rows, random_state=seed).sort_index()
    return features.reset_index(drop=True)


def _has_reference(client: MlflowClient, run_id: str, artifact: str = REFERENCE_ARTIFACT) -> bool:
    return any(item.path == artifact for item in client.list_artifacts(run_id, REFERENCE_DIR))


def score_reference(client: MlflowClient, run_id: str) -> str | None:
    """runs:/ URI of the run's validation scores, or None when evaluate saved none."""
    if not _has_reference(client, run_id, SCORE_REFERENCE_ARTIFACT):
        return None
    return f"runs:/{run_id}/{SCORE_REFERENCE_ARTIFACT}"


def ensure_reference(client: MlflowClient, run_id: str, sample: pd.DataFrame) -> str:
    """Upload ``reference/features.parquet`` to the run once; returns its runs:/ URI."""
    if not _has_reference(client, run_id):
        with tempfile.TemporaryDirectory(prefix="kubeloop-reference-") as tmp:
            path = Path(tmp) / REFERENCE_FILE
            sample.to_parquet(path, index=False)
            client.log_artifact(run_id, str(path), REFERENCE_DIR)
    return f"runs:/{run_id}/{REFERENCE_ARTIFACT}"


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def existing_version(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The oldest version of ``name`` made from ``run_id`` (the first registration wins)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return min(versions, key=lambda v: int(v.version)) if versions else None


def model_source(client: MlflowClient, run_id: str, artifact_path: str) -> tuple[str, str | None]:
    """(source, model_id) of the run's model: an MLflow 3 logged model, else run artifacts."""
    run = client.get_run(run_id)
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{artifact_path}'",
    )
    if logged:
        newest = max(logged, key=lambda model: model.creation_timestamp)
        # The storage location, not models:/<id>: MLflow's SQL registry store resolves
        # models:/ through the process-global tracking URI (embedded default), and serving
        # needs the storage location anyway. model_id keeps the link to the logged model.
        return str(newest.artifact_location), newest.model_id
    names = {item.path for item in client.list_artifacts(run_id, artifact_path)}
    if f"{artifact_path}/MLmodel" in names:
        return f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", None
    raise RegistrationError(
        f"run {run_id} has no model at artifact path {artifact_path!r} "
        "(neither a logged model nor an MLmodel file)"
    )


def _check_run(client: MlflowClient, run_id: str) -> None:
    from mlflow.exceptions import MlflowException

    if not run_id:
        raise RegistrationError("mlflow run id is empty")
    try:
        client.get_run(run_id)
    except MlflowException as error:
        raise RegistrationError(f"mlflow run {run_id!r} not found: {error.message}") from None


def register_model(
    client: MlflowClient,
    model_name: str,
    run_id: str,
    lineage: Lineage | Mapping[str, Any],
    reference_features: pd.DataFrame,
    feature_columns: Sequence[str],
    model_artifact_path: str = "model",
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> Registration:
    """Create (or find) the model version for ``run_id`` under ``model_name``."""
    if not model_name.strip():
        raise RegistrationError("model_name is empty")
    lineage = lineage if isinstance(lineage, Lineage) else Lineage.model_validate(dict(lineage))
    _check_run(client, run_id)
    sample = reference_sample(reference_features, feature_columns, sample_rows, seed)
    reference_uri = ensure_reference(client, run_id, sample)
    scores_uri = score_reference(client, run_id)
    tags = {
        **lineage.tags(),
        tag.REFERENCE: reference_uri,
        tag.FEATURE_COLUMNS: json.dumps(list(feature_columns)),
        **({tag.SCORE_REFERENCE: scores_uri} if scores_uri else {}),
    }
    found = existing_version(client, model_name, run_id)
    if found is not None:
        return Registration(
            model_name=model_name,
            version=str(found.version),
            run_id=run_id,
            source=str(found.source),
            created=False,
            reference_artifact_uri=reference_uri,
            tags=dict(found.tags),
            score_reference_uri=scores_uri,
        )
    source, model_id = model_source(client, run_id, model_artifact_path)
    if model_id:
        # The REST API does not echo model_id on the version; keep the link as a tag.
        tags[tag.LOGGED_MODEL_ID] = model_id
    ensure_registered_model(client, model_name)
    version = client.create_model_version(
        name=model_name, source=source, run_id=run_id, tags=tags, model_id=model_id
    )
    return Registration(
        model_name=model_name,
        version=str(version.version),
        run_id=run_id,
        source=source,
        created=True,
        reference_artifact_uri=reference_uri,
        tags=tags,
        score_reference_uri=scores_uri,
    )


def register_from_training_set(
    tracking_uri: str,
    model_name: str,
    run_id: str,
    lineage: Lineage | Mapping[str, Any],
    training_set_dir: str | Path,
    feature_columns: Sequence[str],
    model_artifact_path: str = "model",
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> Registration:
    """Service entry for the component: the reference comes from the train split."""
    from mlflow import MlflowClient

    from components import uris

    train_dir = uris.join(str(training_set_dir), "train")
    if not uris.exists(train_dir):
        raise RegistrationError(f"training set split 'train' not found at {train_dir}")
    # All columns: reference_sample names a missing feature column clearly.
    frame = uris.read_parquet(train_dir)
    return register_model(
        MlflowClient(tracking_uri=tracking_uri),
        model_name=model_name,
        run_id=run_id,
        lineage=lineage,
        reference_features=frame,
        feature_columns=feature_columns,
        model_artifact_path=model_artifact_path,
        sample_rows=sample_rows,
    )
