"""`spec.monitoring.drift.alarm` and the versions' validation scores, as the monitor is told them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.monitor_config import MAX_EXPECTED_RUN_TIME_S, AlarmConfig
from operators.api.mlmodel import MLMODEL, Drift, DriftAlarm
from operators.mlmodel import monitoring, service
from operators.mlmodel.backends import ServingBackends
from tests.support.fakes import FakeMonitor, FakeObject, FakeObjects, FakeRegistry, FakeTraffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_budget_is_declared_as_a_run_time_or_a_rate_not_both() -> None:
    assert DriftAlarm(expected_run_time="7d").expected_run_time_seconds() == 7 * 86400
    assert DriftAlarm(false_alarms_per_day=2).expected_run_time_seconds() == 43200
    assert DriftAlarm(consecutive=3).expected_run_time_seconds() is None
    with pytest.raises(ValidationError, match="not both"):
        DriftAlarm(expected_run_time="1d", false_alarms_per_day=1)
    with pytest.raises(ValidationError, match="longer than 0s"):
        DriftAlarm(expected_run_time="0s")
    with pytest.raises(ValidationError, match="consecutive"):
        DriftAlarm(consecutive=0)


def test_a_budget_needs_a_detector_with_p_values() -> None:
    with pytest.raises(ValidationError, match="psi"):
        Drift.model_validate({"detector": "psi", "alarm": {"falseAlarmsPerDay": 1}})
    assert Drift.model_validate({"detector": "psi", "alarm": {"consecutive": 2}}).alarm


def test_the_alarm_maps_onto_the_monitor_config() -> None:
    spec = Drift.model_validate({"alarm": {"consecutive": 2, "expectedRunTime": "7d"}})
    settings = monitoring._drift_settings(spec)
    assert settings is not None
    assert settings.alarm == AlarmConfig(consecutive=2, expected_run_time_seconds=604800.0)
    forever = Drift.model_validate({"alarm": {"expectedRunTime": "100000d"}})
    capped = monitoring._drift_settings(forever)
    assert capped is not None and capped.alarm is not None
    assert capped.alarm.expected_run_time_seconds == MAX_EXPECTED_RUN_TIME_S
    plain = monitoring._drift_settings(Drift())
    assert plain is not None and plain.alarm is None


class ScoredRegistry(FakeRegistry):
    """Version 1 was trained with its validation scores saved; others were not."""

    def score_reference_uri(self, run_id: str | None) -> str | None:
        return "file:///runs/1/reference/validation_scores.parquet" if run_id == "run-1" else None


def _mlmodel(drift: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "namespace": "team-a", "generation": 1, "uid": "u3"},
        "spec": {"model": {"name": "churn", "version": "1"}, "monitoring": {"drift": drift}},
    }


def test_the_operator_sends_the_alarm_and_the_validation_scores() -> None:
    monitor = FakeMonitor()
    serving = ServingBackends(
        registry=ScoredRegistry("churn", ["1"]),  # type: ignore[arg-type]
        objects=FakeObjects(),  # type: ignore[arg-type]
        traffic=FakeTraffic(),
        monitor=monitor,
        monitor_url="http://monitor.fake",
    )
    obj = FakeObject(MLMODEL, _mlmodel({"alarm": {"falseAlarmsPerDay": 1}}))
    obj.run(service.reconcile, serving, T0)
    for _ in range(3):
        obj.run(service.observe_and_step, serving, T0)
    body = monitor.configs[-1].to_json()
    assert body["drift"]["alarm"] == {"consecutive": 1, "expectedRunTimeSeconds": 86400.0}
    assert body["scoreReferences"] == {"1": "file:///runs/1/reference/validation_scores.parquet"}
