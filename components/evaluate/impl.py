"""Evaluate a trained model on the time-based validation and test windows, against baselines.

Input is the training-set directory written by ``build_training_set``
(``<dir>/{train,validation,test}/`` Parquet) and an MLflow model URI (``runs:/``, ``models:/``
or a local model directory) whose pyfunc flavor maps raw features to probabilities.

The model must beat heuristics fitted on the *train* window only: the training base rate, and
the best single feature (positive rate per quantile bin). The objective is assessed on one
window (``validation`` by default; the test window is reported, and kept for a final check).

The model's scores on the validation window are saved to the run too
(``contracts.mlflow_tags.SCORE_REFERENCE_ARTIFACT``): they are what the served version's
scores are compared with by the monitor's prediction-drift check, so that check measures
drift from what the model did before it was deployed, not from its first served traffic.

Champion/challenger (as TFX's Evaluator blesses a model only against a baseline model,
https://www.tensorflow.org/tfx/guide/evaluator): given the registered model's name, the current
production model (the version under ``contracts.mlflow_tags.CHAMPION_ALIAS``, which the MLModel
operator moves to its stable version) is scored on the same test window as the candidate, the
freshest rows and the ones no trial was selected on. The candidate passes only if it beats the
champion by ``objective.minImprovement`` with a paired bootstrap interval above zero, and the
best heuristic baseline the same way (``metrics.compare``). No champion yet (a first version):
the baseline comparison only.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components import uris
from components.evaluate.metrics import (
    Baseline,
    Comparison,
    EvaluationError,
    Scorer,
    WindowMetrics,
    base_rate_baseline,
    better,
    check_binary_labels,
    check_probabilities,
    compare,
    metric_value,
    single_feature_baseline,
    window_metrics,
)
from components.validation import problems
from contracts.mlflow_tags import (
    CHAMPION_ALIAS,
    EVAL_METRIC_PREFIX,
    REFERENCE_DIR,
    SCORE_REFERENCE_COLUMN,
    SCORE_REFERENCE_FILE,
)

SPLITS = ("train", "validation", "test")
EVALUATED_WINDOWS = ("validation", "test")
# Where candidate, champion and baseline are compared: the freshest window, not selected on.
COMPARISON_WINDOW = "test"
METRICS_ARTIFACT = "evaluation/metrics.json"
MAX_SAVED_SCORES = 50_000  # validation scores kept as the prediction-drift baseline
Metric = Literal["auc", "logloss", "ece"]
GOALS: dict[str, str] = {"auc": "maximize", "logloss": "minimize", "ece": "minimize"}
# Logged for the MLModel operator (validation accuracy vs served accuracy), not an objective.
LOGGED_METRICS: dict[str, str] = {**GOALS, "accuracy": "maximize"}

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["EvaluationError", "EvaluationReport", "Objective", "evaluate", "evaluate_frames"]


class Objective(BaseModel):
    """The Experiment's objective (``metric``/``goal``/``threshold``) and the window it uses."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: Metric = "auc"
    goal: Literal["maximize", "minimize"] | None = None
    threshold: float | None = None
    window: Literal["validation", "test"] = "validation"
    # How much better than the champion and the best baseline (point estimate, in the metric's
    # units) the candidate must be, on top of a paired bootstrap interval above zero.
    min_improvement: float = Field(default=0.0, ge=0.0, alias="minImprovement")

    @model_validator(mode="after")
    def _goal_matches_metric(self) -> Objective:
        expected = GOALS[self.metric]
        if self.goal is not None and self.goal != expected:
            raise ValueError(f"goal {self.goal!r} does not fit metric {self.metric!r} ({expected})")
        self.goal = expected  # type: ignore[assignment]
        return self


class BaselineReport(BaseModel):
    name: str
    description: str
    windows: dict[str, WindowMetrics]


class ObjectiveReport(BaseModel):
    metric: Metric
    goal: str
    window: str
    value: float | None
    threshold: float | None
    passes_threshold: bool
    baseline: str | None
    baseline_value: float | None
    beats_baseline: bool
    # True without a champion (a first version): only the baselines are compared then.
    beats_champion: bool = True
    passed: bool
    reason: str


class EvaluationReport(BaseModel):
    label_column: str
    feature_columns: list[str]
    model_uri: str | None = None
    windows: dict[str, WindowMetrics]
    baselines: list[BaselineReport]
    objective: ObjectiveReport
    # Paired bootstrap comparisons on COMPARISON_WINDOW (metrics.compare).
    vs_champion: Comparison | None = None
    vs_baseline: Comparison | None = None
    # The model's scores per evaluated window (kept out of metrics.json and the KFP output).
    scores: dict[str, list[float]] = Field(default_factory=dict, exclude=True)

    def flat_metrics(self) -> dict[str, float]:
        """Scalar metrics for MLflow and the KFP UI: ``validation_auc``, ``baseline_test_ece``…"""
        flat: dict[str, float] = {}
        for window, metrics in self.windows.items():
            for metric in LOGGED_METRICS:
                value = metrics.value(metric)
                if value is not None:
                    flat[f"{window}_{metric}"] = value
        best = self.objective.baseline_value
        if best is not None:
            flat[f"baseline_{self.objective.window}_{self.objective.metric}"] = best
        for name, comparison in (
            ("vs_champion", self.vs_champion),
            ("vs_baseline", self.vs_baseline),
        ):
            for key in ("improvement", "low", "high"):
                figure = getattr(comparison, key) if comparison is not None else None
                if figure is not None:
                    flat[f"{name}_{key}"] = figure
        return flat


def parse_objective(objective: dict[str, Any] | Objective | None) -> Objective:
    if isinstance(objective, Objective):
        return objective
    try:
        return Objective.model_validate(objective or {})
    except ValidationError as error:
        raise EvaluationError(problems(error, prefix="objective.")) from None


def read_split(training_set_dir: str | Path, split: str) -> pd.DataFrame:
    """One split of the training set at ``training_set_dir`` (a URI or a local path)."""
    location = uris.join(str(training_set_dir), split)
    if not uris.exists(location):
        raise EvaluationError(f"training set split {split!r} not found at {location}")
    return uris.read_parquet(location)


def check_columns(frame: pd.DataFrame, columns: Sequence[str], split: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise EvaluationError(
            f"column {missing[0]!r} missing from the {split} split"
            + (f" (also missing: {missing[1:]})" if missing[1:] else "")
        )
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(
            frame[column]
        ):
            raise EvaluationError(
                f"feature column {column!r} in the {split} split must be numeric, "
                f"got dtype {frame[column].dtype}"
            )


def impute(frame: pd.DataFrame, features: Sequence[str], means: pd.Series) -> pd.DataFrame:
    """Missing feature values get the training mean, as the trainer does before serving."""
    return frame[list(features)].astype(np.float64).fillna(means).fillna(0.0)


def assess_objective(
    objective: Objective,
    windows: dict[str, WindowMetrics],
    baselines: list[BaselineReport],
    vs_baseline: Comparison | None = None,
    vs_champion: Comparison | None = None,
) -> ObjectiveReport:
    """Threshold and baselines on the objective's window (point estimates); with comparisons,
    the baseline must also be beaten on the comparison window with an interval above zero,
    and the champion (when there is one) the same way."""
    metric, window = objective.metric, objective.window
    value = windows[window].value(metric)
    candidates = [
        (b.name, b.windows[window].value(metric))
        for b in baselines
        if b.windows[window].value(metric) is not None
    ]
    best_baseline: tuple[str, float] | None = None
    for name, baseline_value in candidates:
        assert baseline_value is not None
        if best_baseline is None or better(metric, baseline_value, best_baseline[1]):
            best_baseline = (name, baseline_value)
    passes = value is not None and (
        objective.threshold is None
        or value == objective.threshold
        or better(metric, value, objective.threshold)
    )
    beats = value is not None and (best_baseline is None or better(metric, value, best_baseline[1]))
    reason = _reason(objective, value, passes, beats, best_baseline)
    point_ok = passes and beats
    comparisons = [c for c in (vs_baseline, vs_champion) if c is not None]
    failed = [c.reason for c in comparisons if not c.passed]
    if vs_baseline is not None:
        beats = beats and vs_baseline.passed
    beats_champion = vs_champion is None or vs_champion.passed
    if failed:
        reason = "; ".join([*([] if point_ok else [reason]), *failed])
    elif point_ok and comparisons:
        reason = "; ".join([reason, *(c.reason for c in comparisons)])
    return ObjectiveReport(
        metric=metric,
        goal=GOALS[metric],
        window=window,
        value=value,
        threshold=objective.threshold,
        passes_threshold=passes,
        baseline=best_baseline[0] if best_baseline else None,
        baseline_value=best_baseline[1] if best_baseline else None,
        beats_baseline=beats,
        beats_champion=beats_champion,
        passed=passes and beats and beats_champion,
        reason=reason,
    )


def _reason(
    objective: Objective,
    value: float | None,
    passes: bool,
    beats: bool,
    best_baseline: tuple[str, float] | None,
) -> str:
    label = f"{objective.window} {objective.metric}"
    if value is None:
        return f"{label} is undefined (the window is empty or holds a single class)"
    parts = []
    if not passes:
        parts.append(f"{label} {value:.4f} does not pass the threshold {objective.threshold}")
    if not beats and best_baseline is not None:
        parts.append(
            f"{label} {value:.4f} does not beat the baseline {best_baseline[0]} "
            f"({best_baseline[1]:.4f})"
        )
    return "; ".join(parts) or f"{label} {value:.4f} passes the objective and beats the baselines"


@dataclass(frozen=True)
class Champion:
    """The production model to beat: its registered version, scorer and input columns."""

    version: str
    score: Scorer
    input_columns: list[str]


def evaluate_frames(
    splits: dict[str, pd.DataFrame],
    label_column: str,
    feature_columns: Sequence[str],
    score: Scorer,
    objective: Objective,
    champion: Champion | None = None,
) -> EvaluationReport:
    """Core: metrics of ``score`` and of the baselines on the evaluated windows, and the
    paired comparisons with the best baseline and the champion on COMPARISON_WINDOW."""
    if not feature_columns:
        raise EvaluationError("feature_columns is empty: the model's input features are unknown")
    labels = {}
    for split in SPLITS:
        check_columns(splits[split], [label_column], split)
        check_columns(splits[split], feature_columns, split)
        labels[split] = check_binary_labels(splits[split][label_column], label_column, split)
    train = splits["train"]
    if labels["train"].size == 0:
        raise EvaluationError("the train split is empty: baselines cannot be fitted")
    means = train[list(feature_columns)].astype(np.float64).mean()
    baselines: list[Baseline] = [base_rate_baseline(labels["train"])]
    single = single_feature_baseline(train, labels["train"], list(feature_columns))
    if single is not None:
        baselines.append(single)
    windows: dict[str, WindowMetrics] = {}
    window_scores: dict[str, list[float]] = {}
    baseline_windows: dict[str, dict[str, WindowMetrics]] = {b.name: {} for b in baselines}
    for window in EVALUATED_WINDOWS:
        frame = splits[window]
        scores = score(impute(frame, feature_columns, means)) if len(frame) else np.empty(0)
        scores = check_probabilities(scores, window)
        if scores.size != len(frame):
            raise EvaluationError(
                f"the model returned {scores.size} scores for {len(frame)} {window} rows"
            )
        windows[window] = window_metrics(labels[window], scores)
        window_scores[window] = scores.tolist()
        for baseline in baselines:
            baseline_windows[baseline.name][window] = window_metrics(
                labels[window], baseline.score(frame)
            )
    reports = [
        BaselineReport(name=b.name, description=b.description, windows=baseline_windows[b.name])
        for b in baselines
    ]
    vs_baseline, vs_champion = _comparisons(
        splits, labels, feature_columns, baselines, champion, objective, window_scores
    )
    return EvaluationReport(
        label_column=label_column,
        feature_columns=list(feature_columns),
        windows=windows,
        baselines=reports,
        objective=assess_objective(objective, windows, reports, vs_baseline, vs_champion),
        vs_champion=vs_champion,
        vs_baseline=vs_baseline,
        scores=window_scores,
    )


def _comparisons(
    splits: dict[str, pd.DataFrame],
    labels: dict[str, np.ndarray],
    feature_columns: Sequence[str],
    baselines: list[Baseline],
    champion: Champion | None,
    objective: Objective,
    window_scores: dict[str, list[float]],
) -> tuple[Comparison, Comparison | None]:
    """The candidate against the best baseline (by point value on the window, the hardest
    one) and against the champion, all on the same COMPARISON_WINDOW rows."""
    window, metric = COMPARISON_WINDOW, objective.metric
    frame, truth = splits[window], labels[window]
    candidate = np.asarray(window_scores[window], dtype=np.float64)
    hardest: tuple[str, np.ndarray] | None = None
    hardest_value: float | None = None
    for baseline in baselines:
        scores = check_probabilities(baseline.score(frame), f"baseline {baseline.name}")
        value = metric_value(metric, truth, scores)
        if hardest is None or (
            value is not None and (hardest_value is None or better(metric, value, hardest_value))
        ):
            hardest, hardest_value = (baseline.name, scores), value
    assert hardest is not None  # the base rate is always there
    minimum = objective.min_improvement
    vs_baseline = compare(metric, window, truth, candidate, hardest[1], hardest[0], minimum)
    if champion is None:
        return vs_baseline, None
    columns = champion.input_columns or list(feature_columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EvaluationError(
            f"the champion (version {champion.version}) reads columns {missing} that the "
            f"{window} split lacks: it cannot be scored on the same rows (move the "
            f"{CHAMPION_ALIAS!r} alias or retrain on its features)"
        )
    check_columns(frame, columns, window)
    champion_means = splits["train"][columns].astype(np.float64).mean()
    scores = champion.score(impute(frame, columns, champion_means)) if len(frame) else np.empty(0)
    scores = check_probabilities(scores, f"champion {window}")
    if scores.size != len(frame):
        raise EvaluationError(
            f"the champion returned {scores.size} scores for {len(frame)} {window} rows"
        )
    vs_champion = compare(
        metric, window, truth, candidate, scores, CHAMPION_ALIAS, minimum, champion.version
    )
    return vs_baseline, vs_champion


def resolve_download_uri(model_uri: str, tracking_uri: str | None) -> str:
    """``models:/`` URIs resolved through the given server (MLflow's own resolution would use
    the process-global tracking URI); other URIs are returned unchanged."""
    if not model_uri.startswith("models:/"):
        return model_uri
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    reference = model_uri.removeprefix("models:/").strip("/")
    if reference.startswith("m-") and "/" not in reference:  # an MLflow 3 logged model id
        return str(client.get_logged_model(reference).artifact_location)
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
        return str(client.get_model_version_download_uri(name, version))
    name, _, version = reference.rpartition("/")
    if not name:
        raise EvaluationError(f"model_uri {model_uri!r}: use models:/<name>/<version> or @alias")
    return str(client.get_model_version_download_uri(name, version))


class ModelScorer:
    """An MLflow pyfunc model as a scorer; knows its input columns from the signature."""

    def __init__(self, model_uri: str, tracking_uri: str | None) -> None:
        import mlflow.pyfunc
        from mlflow.artifacts import download_artifacts

        local = Path(model_uri)
        if not local.exists():
            download_uri = resolve_download_uri(model_uri, tracking_uri)
            local = Path(download_artifacts(artifact_uri=download_uri, tracking_uri=tracking_uri))
        self.model = mlflow.pyfunc.load_model(str(local))
        schema = self.model.metadata.get_input_schema()
        self.input_columns: list[str] = list(schema.input_names()) if schema else []

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        predictions = self.model.predict(frame.astype(np.float32))
        if isinstance(predictions, pd.DataFrame | pd.Series):
            predictions = predictions.to_numpy()
        return np.asarray(predictions, dtype=np.float64).reshape(-1)


def champion_version(registered_model: str, tracking_uri: str | None) -> str | None:
    """The version under CHAMPION_ALIAS, or None when the model or the alias does not exist
    yet (no version has been served as stable: a first version)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        return str(client.get_model_version_by_alias(registered_model, CHAMPION_ALIAS).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def load_champion(registered_model: str, tracking_uri: str | None) -> Champion | None:
    """The champion (``registered_model``'s CHAMPION_ALIAS version), or None without one.

    Each trial loads and scores it anew: a cache of its scores beside the round's training sets
    measured no gain (round 2's evaluate: 24.9 s on a miss, 26.0 s on a hit, docs/benchmarks.md)
    and wrote outside the storage root's pipeline data; it was removed."""
    if not registered_model or not tracking_uri:  # no registry: nothing is in production
        return None
    version = champion_version(registered_model, tracking_uri)
    if version is None:
        return None
    scorer = ModelScorer(f"models:/{registered_model}/{version}", tracking_uri)
    return Champion(version=version, score=scorer, input_columns=scorer.input_columns)


def log_to_mlflow(report: EvaluationReport, tracking_uri: str, run_id: str) -> None:
    """Metrics and the full report on the training run, so the registry shows them too."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric as MlflowMetric

    client = MlflowClient(tracking_uri=tracking_uri)
    now = int(time.time() * 1000)
    metrics = [
        MlflowMetric(f"{EVAL_METRIC_PREFIX}{key}", value, now, 0)
        for key, value in report.flat_metrics().items()
    ]
    client.log_batch(run_id, metrics=metrics)
    client.log_text(run_id, report.model_dump_json(indent=2), METRICS_ARTIFACT)
    log_validation_scores(client, run_id, report)


def log_validation_scores(client: MlflowClient, run_id: str, report: EvaluationReport) -> None:
    """The validation window's scores as ``reference/validation_scores.parquet`` on the run:
    the version's prediction-drift baseline (none when the window is empty)."""
    scores = np.asarray(report.scores.get("validation") or [], dtype=np.float64)
    if scores.size == 0:
        return
    if scores.size > MAX_SAVED_SCORES:  # a deterministic sample: the KS test needs no more
        keep = np.random.default_rng(0).choice(scores.size, MAX_SAVED_SCORES, replace=False)
        scores = scores[np.sort(keep)]
    with tempfile.TemporaryDirectory(prefix="kubeloop-scores-") as tmp:
        path = Path(tmp) / SCORE_REFERENCE_FILE
        pd.DataFrame({SCORE_REFERENCE_COLUMN: scores}).to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), REFERENCE_DIR)


def evaluate(
    training_set_dir: str | Path,
    model_uri: str,
    label_column: str,
    objective: dict[str, Any] | Objective | None = None,
    feature_columns: Sequence[str] = (),
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
    champion_model: str = "",
) -> EvaluationReport:
    """Load splits and model (and the champion of the registered model ``champion_model``,
    when it has one), evaluate, and log to the MLflow run when one is given."""
    parsed_objective = parse_objective(objective)
    splits = {split: read_split(training_set_dir, split) for split in SPLITS}
    scorer = ModelScorer(model_uri, tracking_uri or None)
    features = list(feature_columns) or scorer.input_columns
    champion = load_champion(champion_model, tracking_uri or None)
    report = evaluate_frames(splits, label_column, features, scorer, parsed_objective, champion)
    report.model_uri = model_uri
    if tracking_uri and mlflow_run_id:
        log_to_mlflow(report, tracking_uri, mlflow_run_id)
    return report


def report_json(report: EvaluationReport) -> str:
    return json.dumps(report.model_dump(mode="json"), sort_keys=True)
