"""MLModel status.drift carries the monitor's alarm rule figures and the prediction baseline."""

from __future__ import annotations

from typing import Any

from operators.backends.monitor import parse_drift
from operators.mlmodel.drift import drift_status

ALARM = {
    "rule": "cusum",
    "windowDrift": True,
    "statistic": 2.3,
    "threshold": 9.9,
    "expectedRunTimeSeconds": 604800.0,
    "consecutive": 1,
    "requiredConsecutive": 1,
    "evidenceWindows": 12,
    "counted": True,
    "notCounted": None,
}


def _entry(**extra: Any) -> dict[str, Any]:
    return {"detector": "ks", "isDrift": False, "pValues": {"price": 0.01}, "window": 200,
            "checkedAt": 1.7e9, **extra}  # fmt: skip


def test_alarm_figures_and_baseline_reach_the_status() -> None:
    prediction = {"isDrift": False, "baseline": "firstServedWindow", "baselineNote": "no scores"}
    body = {"versions": {"1": _entry(alarm=ALARM, checks={"prediction": prediction})}}
    status = drift_status(parse_drift("http://monitor:8080", body)["1"])
    dumped = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["alarm"] == {
        "rule": "cusum",
        "windowDrift": True,
        "statistic": 2.3,
        "threshold": 9.9,
        "expectedRunTimeSeconds": 604800.0,
        "consecutive": 1,
        "requiredConsecutive": 1,
        "evidenceWindows": 12,
    }
    assert dumped["predictionBaseline"] == "firstServedWindow"
    assert dumped["predictionBaselineNote"] == "no scores"


def test_a_monitor_without_the_alarm_view_leaves_them_unset() -> None:
    status = drift_status(parse_drift("http://m", {"versions": {"1": _entry()}})["1"])
    assert status.alarm is None and status.prediction_baseline is None


def test_wrong_types_in_the_alarm_view_become_none() -> None:
    alarm = {"rule": 3, "windowDrift": "yes", "statistic": "x", "consecutive": "2"}
    prediction = {"baseline": 5, "baselineNote": ""}
    body = {"versions": {"1": _entry(alarm=alarm, checks={"prediction": prediction})}}
    check = parse_drift("http://m", body)["1"]
    assert check.alarm is not None and set(check.alarm.values()) == {None}
    assert check.prediction_baseline is None and check.prediction_baseline_note is None
    assert drift_status(check).alarm is not None  # all figures unset, the block kept
