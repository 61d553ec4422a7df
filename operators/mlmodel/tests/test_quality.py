"""Outcomes on the MLModel (pure): status.quality, stableQuality, the Degraded condition, its
events and the retrain alarm it feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.quality import Interval, QualityReport, VersionQuality
from operators.api.common import find_condition
from operators.api.mlmodel import MLModelStatus, PrimaryMetric
from operators.mlmodel import quality as outcomes
from operators.mlmodel.retrain_policy import DriftAlarm
from operators.status import with_condition

T0 = datetime(2026, 6, 1, tzinfo=UTC)
AUC = PrimaryMetric(name="auc", margin=0.02, min_labeled=200)
LOG_LOSS = PrimaryMetric(name="logLoss", margin=0.05, min_labeled=200)


def entry(
    version: str, labeled: int = 1000, *, at: int = 0, **metrics: tuple[float, float, float]
) -> VersionQuality:
    """``at``: the window's place in time (windows at different places are disjoint)."""
    intervals = {k: Interval(value=v, low=lo, high=hi) for k, (v, lo, hi) in metrics.items()}
    return VersionQuality(
        version=version,
        role="stable" if version == "1" else "candidate",
        labeled=labeled,
        positives=labeled // 3,
        window_start=T0.timestamp() + 3600 * at - 600,
        window_end=T0.timestamp() + 3600 * at,
        label_delay_p50_s=42.0,
        **intervals,
    )


def report(*versions: VersionQuality) -> QualityReport:
    return QualityReport(
        namespace="team", model="churn", now=T0.timestamp(), versions=list(versions)
    )


def status(**kw: Any) -> MLModelStatus:
    return MLModelStatus(stable_version="1", **kw)


def degraded(result: MLModelStatus) -> tuple[str, str, str] | None:
    found = find_condition(result.conditions, outcomes.CONDITION)
    return (str(found.status), found.reason, found.message) if found else None


def test_quality_lists_the_versions_in_play_stable_first() -> None:
    answer = report(
        entry("9"), entry("2", auc=(0.8, 0.78, 0.82)), entry("1", auc=(0.7, 0.68, 0.72))
    )
    listed = outcomes.quality_status(answer, ["1", "2"])
    assert [q.version for q in listed] == ["1", "2"]  # 9 is not in play
    one = listed[0]
    assert one.auc is not None and (one.auc.value, one.auc.low, one.auc.high) == (0.7, 0.68, 0.72)
    assert one.accuracy is None  # nothing computed, nothing shown
    assert one.window is not None and one.window.end == T0 and one.label_delay_p50_seconds == 42
    assert outcomes.quality_status(None, ["1"]) == []
    on_k8s = status(quality=listed).to_k8s()["quality"][0]
    assert set(on_k8s) >= {"version", "labeled", "auc", "window", "labelDelayP50Seconds"}


@pytest.mark.parametrize(
    "metric, figures, validation, expected",
    [
        (AUC, {"auc": (0.70, 0.68, 0.72)}, 0.80, ("True", "BelowValidation")),
        (AUC, {"auc": (0.77, 0.75, 0.79)}, 0.80, ("False", "WithinValidation")),  # 0.79 ≥ 0.78
        (AUC, {"auc": (0.80, 0.79, 0.81)}, None, ("Unknown", "NoValidationFigure")),
        (LOG_LOSS, {"log_loss": (0.60, 0.58, 0.62)}, 0.45, ("True", "BelowValidation")),
        (LOG_LOSS, {"log_loss": (0.48, 0.46, 0.51)}, 0.45, ("False", "WithinValidation")),
    ],
)
def test_degraded_compares_the_interval_with_validation_minus_margin(
    metric: PrimaryMetric,
    figures: dict[str, tuple[float, float, float]],
    validation: float | None,
    expected: tuple[str, str],
) -> None:
    answer = report(entry("1", 1000, **figures))  # type: ignore[arg-type]  # no "at" key
    result, _, alarm = outcomes.with_quality(status(), answer, metric, validation, 3)
    found = degraded(result)
    assert found is not None and found[:2] == expected
    assert (alarm is not None) == (expected[0] == "True")
    assert result.stable_quality is not None and result.stable_quality.validation == validation
    assert result.stable_quality.metric == metric.name


def test_degraded_message_carries_the_figures() -> None:
    answer = report(entry("1", labeled=1200, auc=(0.70, 0.68, 0.72)))
    result, events, alarm = outcomes.with_quality(status(), answer, AUC, 0.80, 3)
    message = degraded(result)[2]  # type: ignore[index]
    assert "auc 0.7000 [0.6800, 0.7200] on 1200 labeled requests of version 1" in message
    assert "validation 0.8000 - margin 0.02 = 0.7800" in message
    assert [e.reason for e in events] == ["Degraded"] and events[0].type == "Warning"
    assert alarm is not None and alarm.reason.startswith("degraded: auc 0.7000")


def test_too_few_labels_leave_degraded_unknown() -> None:
    answer = report(entry("1", labeled=50, auc=(0.5, 0.3, 0.7)))
    result, events, alarm = outcomes.with_quality(status(), answer, AUC, 0.80, 3)
    assert degraded(result)[:2] == ("Unknown", "NotEnoughLabels")  # type: ignore[index]
    assert events == [] and alarm is None
    # No entry for the stable version at all (no labels yet): the same.
    result, _, _ = outcomes.with_quality(status(), report(), AUC, 0.80, 3)
    assert degraded(result)[:2] == ("Unknown", "NotEnoughLabels")  # type: ignore[index]
    assert result.stable_quality is not None and result.stable_quality.labeled == 0


def test_events_mark_changes_only() -> None:
    # Disjoint windows: 2 low ones (Degraded), 6 fine ones (the pooled interval reaches back
    # to validation - margin: cleared), then low ones again (Degraded again).
    figures = [(0.70, 0.68, 0.72)] * 2 + [(0.80, 0.78, 0.82)] * 6 + [(0.70, 0.68, 0.72)] * 4
    current, trail = status(), []
    for at, auc in enumerate(figures):
        answer = report(entry("1", at=at, auc=auc))
        for _ in range(2):  # each window read twice: the re-read is not pooled again
            current, events, _ = outcomes.with_quality(current, answer, AUC, 0.80, 3)
            trail += [e.reason for e in events]
    assert trail == ["Degraded", "DegradationCleared", "Degraded"]
    assert current.stable_quality is not None and current.stable_quality.sequential is not None
    assert current.stable_quality.sequential.windows == len(figures)


def test_a_reread_window_is_not_pooled_again() -> None:
    answer = report(entry("1", at=0, auc=(0.77, 0.75, 0.79)))
    first, _, _ = outcomes.with_quality(status(), answer, AUC, 0.80, 3)
    again, _, _ = outcomes.with_quality(first, answer, AUC, 0.80, 3)
    assert again.stable_quality == first.stable_quality
    # An overlapping window (starts before the newest request pooled) is skipped too.
    overlapping = entry("1", at=0, auc=(0.60, 0.58, 0.62))
    overlapping = overlapping.model_copy(update={"window_end": T0.timestamp() + 60})
    third, _, _ = outcomes.with_quality(first, report(overlapping), AUC, 0.80, 3)
    assert third.stable_quality is not None and first.stable_quality is not None
    assert third.stable_quality.sequential == first.stable_quality.sequential


def test_a_new_stable_version_or_figure_starts_a_new_test() -> None:
    low = report(entry("1", at=0, auc=(0.70, 0.68, 0.72)))
    degraded_, _, _ = outcomes.with_quality(status(), low, AUC, 0.80, 3)
    assert degraded(degraded_)[:2] == ("True", "BelowValidation")  # type: ignore[index]
    # The registry now reports another validation figure: the pooled state starts again.
    fine = report(entry("1", at=1, auc=(0.80, 0.78, 0.82)))
    restarted, _, _ = outcomes.with_quality(degraded_, fine, AUC, 0.81, 3)
    assert restarted.stable_quality is not None and restarted.stable_quality.sequential
    assert restarted.stable_quality.sequential.windows == 1
    assert degraded(restarted)[:2] == ("False", "WithinValidation")  # type: ignore[index]


def test_without_a_primary_metric_no_degraded_condition() -> None:
    stale = with_condition(status(), "Degraded", "True", "BelowValidation", "old", 1)
    answer = report(entry("1", auc=(0.70, 0.68, 0.72)))
    result, events, alarm = outcomes.with_quality(stale, answer, None, 0.80, 3)
    assert degraded(result) is None and events == [] and alarm is None
    # The Quality column still shows a figure: auc when no metric is named.
    assert result.stable_quality is not None and result.stable_quality.metric == "auc"
    assert result.stable_quality.value == 0.70


def test_nothing_serving_nothing_judged() -> None:
    empty = MLModelStatus()
    assert outcomes.with_quality(empty, report(), AUC, 0.8, 1) == (empty, [], None)


def test_retrain_alarm_follows_the_triggers() -> None:
    drift = DriftAlarm(reason="drift on version 1", report_url="http://r")
    worse = DriftAlarm(reason="degraded: auc")
    assert outcomes.retrain_alarm(["drift"], drift, worse) == drift
    assert outcomes.retrain_alarm(["drift"], None, worse) is None
    assert outcomes.retrain_alarm(["degradation"], drift, worse) == worse
    both = outcomes.retrain_alarm(["drift", "degradation"], drift, worse)
    assert both == DriftAlarm(reason="drift on version 1; degraded: auc", report_url="http://r")
    assert outcomes.retrain_alarm(["drift", "degradation"], None, None) is None
