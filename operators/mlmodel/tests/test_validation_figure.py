"""A version's offline validation figure comes from the metric `components/evaluate` logged on
its MLflow run (names in contracts/mlflow_tags.py), asked once per run when found."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from contracts.mlflow_tags import EVAL_METRIC_PREFIX, VALIDATION_METRICS
from operators.backends import registry as registry_module
from operators.backends.registry import MlflowRegistry


class Client:
    def __init__(self, metrics: dict[str, float]) -> None:
        self.metrics = metrics
        self.runs = 0

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(run_id=f"run-{version}")

    def get_run(self, run_id: str) -> Any:
        self.runs += 1
        return SimpleNamespace(data=SimpleNamespace(metrics=dict(self.metrics)))


def test_the_figure_is_the_logged_validation_metric_and_cached() -> None:
    client = Client({"eval_validation_auc": 0.84, "eval_test_auc": 0.8})
    registry = MlflowRegistry(lambda: client)  # type: ignore[arg-type,return-value]
    assert registry.validation_metric("churn", "3", "auc") == 0.84
    assert registry.validation_metric("churn", "3", "auc") == 0.84
    assert client.runs == 1


def test_a_missing_figure_is_none_and_asked_again_later(monkeypatch: Any) -> None:
    clock = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: clock[0])
    client = Client({})
    registry = MlflowRegistry(lambda: client)  # type: ignore[arg-type,return-value]
    assert registry.validation_metric("churn", "3", "logLoss") is None
    client.metrics["eval_validation_logloss"] = 0.41
    assert registry.validation_metric("churn", "3", "logLoss") is None  # not asked again yet
    assert client.runs == 1
    clock[0] += registry_module.VALIDATION_RETRY_S
    assert registry.validation_metric("churn", "3", "logLoss") == 0.41
    assert registry.validation_metric("churn", "3", "logLoss") == 0.41
    assert client.runs == 2


def test_accuracy_has_an_offline_figure() -> None:
    client = Client({"eval_validation_auc": 0.84, "eval_validation_accuracy": 0.71})
    registry = MlflowRegistry(lambda: client)  # type: ignore[arg-type,return-value]
    assert registry.validation_metric("churn", "3", "accuracy") == 0.71


def test_the_names_match_what_evaluate_logs() -> None:
    from components.evaluate.impl import LOGGED_METRICS

    # evaluate logs eval_<window>_<metric> for each of LOGGED_METRICS on the validation window.
    logged = {f"{EVAL_METRIC_PREFIX}validation_{metric}" for metric in LOGGED_METRICS}
    assert set(VALIDATION_METRICS.values()) <= logged
