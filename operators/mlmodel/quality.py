"""Pure core of outcomes on the MLModel: status.quality, the Degraded condition, its alarm.

`monitoring.py` reads the monitor's quality report (labels joined to served predictions, per
version) and the stable version's offline validation figure (the metric
`components/evaluate` logged on its MLflow run); these functions turn them into status,
events and, when the stable version has degraded, an alarm for the retrain policy. No I/O.

Degraded is judged on the stable version only, against its own validation figure, by an
always-valid sequential test (docs/outcomes.md, "Degraded"):

- Each pass reads the monitor's sliding-window figure of the primary metric (value and 95%
  interval, from which its variance is taken). A window is *pooled* only when it is disjoint
  from every window pooled before (all its requests served after the newest one pooled), so
  the pooled windows are independent samples; overlapping re-reads add nothing.
- The pooled estimate (inverse-variance weighted) and its variance V give the normal-mixture
  confidence sequence of the label gate (:func:`operators.mlmodel.outcome_gate.radius`,
  tau = margin, level ``primaryMetric.alpha``): its coverage holds at every look at once, so
  checking every pass does not inflate the false-alarm rate. P(a version whose metric stays
  at or above validation - margin is ever called Degraded) <= alpha, over its whole time as
  stable (a new stable version, metric or validation figure starts a new test).
- True (`BelowValidation`) once at least `minLabeled` labeled requests are pooled and the
  always-valid interval lies entirely on the bad side of validation - margin (auc, accuracy:
  `high < validation - margin`; logLoss: `low > validation + margin`);
- False (`WithinValidation`) when enough are pooled and the interval reaches back;
- Unknown while too few are pooled (`NotEnoughLabels`) or there is no offline figure
  (`NoValidationFigure`: a run without the metric, e.g. one logged before evaluate logged
  accuracy).

``bench/degraded_alarm.py`` and ``tests/test_quality_simulation.py`` measure the false-alarm
rate (at the boundary, metric = validation - margin, judged every pass) and the power.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from operators.api.common import find_condition
from operators.api.mlmodel import (
    MetricInterval,
    MLModelStatus,
    PrimaryMetric,
    QualityWindow,
    RetrainTrigger,
    SequentialQuality,
    StableQuality,
    VersionQualityStatus,
)
from operators.kind import Event, EventType
from operators.mlmodel.outcome_gate import radius
from operators.mlmodel.retrain_policy import DriftAlarm
from operators.status import with_condition

if TYPE_CHECKING:  # the monitor's parsed answer; read here, never fetched
    from contracts.quality import Interval, QualityReport, VersionQuality

CONDITION = "Degraded"
REASON_BELOW = "BelowValidation"
REASON_WITHIN = "WithinValidation"
REASON_NOT_ENOUGH = "NotEnoughLabels"
REASON_NO_FIGURE = "NoValidationFigure"
REASON_CLEARED = "DegradationCleared"
# The metric shown when the spec names none (the Quality printer column still says something).
DEFAULT_METRIC = "auc"
LOWER_IS_BETTER = frozenset({"logLoss"})
#: The monitor's intervals are 95% (normal quantile): their half-width / Z95 is the figure's
#: standard error.
Z95 = 1.959963984540054


# Figures are written rounded: status is patched only when what a person would read changes.
DIGITS = 4


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)


def _interval(found: Interval | None) -> MetricInterval | None:
    if found is None or found.value is None:
        return None
    return MetricInterval(
        value=_rounded(found.value), low=_rounded(found.low), high=_rounded(found.high)
    )


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def metric_of(entry: VersionQuality, metric: str) -> Interval:
    """The entry's interval for a primary metric name (wire spelling: logLoss)."""
    return {"auc": entry.auc, "accuracy": entry.accuracy, "logLoss": entry.log_loss}[metric]


def version_status(entry: VersionQuality) -> VersionQualityStatus:
    window = None
    if entry.window_start is not None or entry.window_end is not None:
        window = QualityWindow(start=_moment(entry.window_start), end=_moment(entry.window_end))
    return VersionQualityStatus(
        version=entry.version,
        role=entry.role,
        labeled=entry.labeled,
        positives=entry.positives,
        auc=_interval(entry.auc),
        accuracy=_interval(entry.accuracy),
        log_loss=_interval(entry.log_loss),
        brier=_interval(entry.brier),
        ece=_interval(entry.ece),
        window=window,
        label_delay_p50_seconds=entry.label_delay_p50_s,
    )


def quality_status(report: QualityReport | None, in_play: list[str]) -> list[VersionQualityStatus]:
    """`status.quality`: one entry per version in play (stable first) the monitor reports."""
    if report is None:
        return []
    by_version = {entry.version: entry for entry in report.versions}
    return [version_status(by_version[v]) for v in in_play if v in by_version]


def stable_quality(
    report: QualityReport | None,
    stable: str,
    metric: str,
    validation: float | None,
) -> StableQuality:
    entry = _stable_entry(report, stable)
    found = metric_of(entry, metric) if entry is not None else None
    return StableQuality(
        version=stable,
        metric=metric,
        value=_rounded(found.value) if found else None,
        low=_rounded(found.low) if found else None,
        high=_rounded(found.high) if found else None,
        labeled=entry.labeled if entry is not None else 0,
        validation=validation,
    )


def _stable_entry(report: QualityReport | None, stable: str) -> VersionQuality | None:
    return next((e for e in (report.versions if report else []) if e.version == stable), None)


def window_variance(found: Interval | None) -> float | None:
    """The variance of a window's figure, read off its 95% interval (the wider side)."""
    if found is None or found.value is None or found.low is None or found.high is None:
        return None
    half = max(found.value - found.low, found.high - found.value)
    return (half / Z95) ** 2 if half > 0 else None


def pooled(
    previous: SequentialQuality | None,
    entry: VersionQuality | None,
    metric: str,
    margin: float,
    alpha: float,
) -> SequentialQuality:
    """The test's state after this pass: ``entry``'s window pooled when it is disjoint from
    those pooled before (served entirely after ``through``) and has a figure; else as was."""
    state = previous or SequentialQuality()
    if entry is None or entry.window_start is None or entry.window_end is None:
        return state
    if state.through is not None and entry.window_start <= state.through:
        return state  # overlaps what is pooled: re-reading it would be peeking
    found = metric_of(entry, metric)
    variance = window_variance(found)
    if variance is None or found.value is None:
        return state
    weight = 1.0 / variance
    if state.estimate is None or state.variance is None:
        total, estimate = weight, found.value
    else:
        before = 1.0 / state.variance
        total = before + weight
        estimate = (state.estimate * before + found.value * weight) / total
    half = radius(1.0 / total, margin, alpha)
    return SequentialQuality(
        windows=state.windows + 1,
        labeled=state.labeled + entry.labeled,
        through=entry.window_end,
        estimate=estimate,
        variance=1.0 / total,
        low=_rounded(estimate - half),
        high=_rounded(estimate + half),
    )


def _figures(quality: StableQuality) -> str:
    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"{quality.metric} {num(quality.value)} [{num(quality.low)}, {num(quality.high)}] "
        f"on {quality.labeled} labeled requests of version {quality.version}"
    )


def degradation(quality: StableQuality, metric: PrimaryMetric) -> tuple[str, str, str]:
    """(condition status, reason, message) of Degraded from the sequential test's state."""
    figures = _figures(quality)
    if quality.validation is None:
        return (
            "Unknown",
            REASON_NO_FIGURE,
            (
                f"no offline validation {quality.metric} on the MLflow run of version "
                f"{quality.version}; {figures}"
            ),
        )
    lower_better = quality.metric in LOWER_IS_BETTER
    bound = quality.validation + (metric.margin if lower_better else -metric.margin)
    side = ">" if lower_better else "<"
    limit = f"validation {quality.validation:.4f} {'+' if lower_better else '-'} margin " + (
        f"{metric.margin:g} = {bound:.4f}"
    )
    test = quality.sequential or SequentialQuality()
    pooled_ = (
        f"pooled over {test.windows} disjoint window(s), {test.labeled} labeled: "
        f"{test.estimate:.4f}, always-valid {1 - metric.alpha:.0%} interval "
        f"[{test.low:.4f}, {test.high:.4f}]"
        if test.estimate is not None and test.low is not None and test.high is not None
        else f"{test.labeled} labeled pooled"
    )
    if test.labeled < metric.min_labeled or test.low is None or test.high is None:
        return (
            "Unknown",
            REASON_NOT_ENOUGH,
            (
                f"{figures}; {pooled_}; minLabeled {metric.min_labeled} needed to compare "
                f"with {limit}"
            ),
        )
    below = test.low > bound if lower_better else test.high < bound
    if below:
        return "True", REASON_BELOW, f"{figures}; {pooled_}: the whole interval is {side} {limit}"
    return "False", REASON_WITHIN, f"{figures}; {pooled_}: the interval reaches {limit}"


def _without_condition(status: MLModelStatus, type_: str) -> MLModelStatus:
    kept = [c for c in status.conditions if c.type != type_]
    return status.model_copy(update={"conditions": kept})


def with_quality(
    status: MLModelStatus,
    report: QualityReport | None,
    metric: PrimaryMetric | None,
    validation: float | None,
    generation: int | None,
) -> tuple[MLModelStatus, list[Event], DriftAlarm | None]:
    """status.quality, status.stableQuality and Degraded (only with a primary metric); an
    Event when Degraded turns True or back; the alarm while it is True."""
    stable = status.stable_version
    if stable is None:
        return status, [], None
    in_play = [v for v in (stable, status.candidate_version) if v]
    name = metric.name if metric is not None else DEFAULT_METRIC
    quality = stable_quality(report, stable, name, validation)
    if metric is not None:
        last = status.stable_quality
        same = last is not None and (last.version, last.metric, last.validation) == (
            stable,
            name,
            validation,
        )  # else a new test: another version, metric or offline figure
        test = pooled(
            last.sequential if same and last is not None else None,
            _stable_entry(report, stable),
            name,
            metric.margin,
            metric.alpha,
        )
        quality = quality.model_copy(update={"sequential": test})
    status = status.model_copy(
        update={"quality": quality_status(report, in_play), "stable_quality": quality}
    )
    if metric is None:
        return _without_condition(status, CONDITION), [], None
    previous = find_condition(status.conditions, CONDITION)
    was = previous.status if previous is not None else None
    state, reason, message = degradation(quality, metric)
    status = with_condition(status, CONDITION, state, reason, message, generation)
    events: list[Event] = []
    if state == "True" and was != "True":
        events.append(Event(EventType.WARNING, CONDITION, message))
    elif state == "False" and was == "True":
        events.append(Event(EventType.NORMAL, REASON_CLEARED, message))
    alarm = DriftAlarm(reason=f"degraded: {message}") if state == "True" else None
    return status, events, alarm


def retrain_alarm(
    triggers: list[RetrainTrigger], drift: DriftAlarm | None, degraded: DriftAlarm | None
) -> DriftAlarm | None:
    """The one alarm a pass hands the retrain policy: those `retrain.triggers` listen to,
    joined (one request names both reasons; the drift report link is kept)."""
    alarms = [a for t, a in (("drift", drift), ("degradation", degraded)) if t in triggers and a]
    if not alarms:
        return None
    reason = "; ".join(a.reason for a in alarms)
    report = next((a.report_url for a in alarms if a.report_url), None)
    return DriftAlarm(reason=reason, report_url=report)
