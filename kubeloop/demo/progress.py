"""Progress samples taken from the resources' status, and their rendering for a terminal.

`sample_from_objects` and `render_line` are pure: status dicts in, a `Sample` / a line out.
`ProgressView` redraws one line in place on a TTY and prints plain lines otherwise (CI logs),
only when something changed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from pydantic import BaseModel, Field


class VersionQuality(BaseModel):
    """One version's quality on the labels the monitor joined (MLModel status.quality)."""

    labeled: int = 0
    auc: float | None = None
    auc_low: float | None = None
    auc_high: float | None = None
    accuracy: float | None = None


class Sample(BaseModel):
    """What the demo saw at one instant (seconds since the demo started)."""

    t: float
    stage: str
    featureview_version: str | None = None
    backfilled: str | None = None
    experiment_phase: str | None = None
    experiment_round: int | None = None
    trials_done: int = 0
    trials_total: int = 0
    registered_version: str | None = None
    phase: str | None = None
    stable_version: str | None = None
    candidate_version: str | None = None
    stable_percent: int | None = None
    candidate_percent: int | None = None
    mirror_percent: int | None = None
    p_values: dict[str, float] = Field(default_factory=dict)
    is_drift: bool | None = None
    requests_sent: int | None = None
    request_errors: int | None = None
    accuracy: float | None = None
    shifted: bool | None = None
    quality: dict[str, VersionQuality] = Field(
        default_factory=dict, description="Version → its quality (MLModel status.quality)."
    )
    labels_sent: int | None = None
    gate: str | None = Field(default=None, description="The label gate's last figures.")


def _condition(obj: Mapping[str, Any] | None, kind: str) -> str | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _status(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("status") or {})


def _figure(entry: Mapping[str, Any], name: str) -> tuple[float | None, ...]:
    interval = entry.get(name) or {}
    return interval.get("value"), interval.get("low"), interval.get("high")


def quality_of(mlmodel_status: Mapping[str, Any]) -> dict[str, VersionQuality]:
    """Version → quality from MLModel status.quality (the monitor's windows of labeled rows)."""
    quality: dict[str, VersionQuality] = {}
    for entry in mlmodel_status.get("quality") or []:
        auc, low, high = _figure(entry, "auc")
        quality[str(entry.get("version"))] = VersionQuality(
            labeled=int(entry.get("labeled") or 0),
            auc=auc,
            auc_low=low,
            auc_high=high,
            accuracy=_figure(entry, "accuracy")[0],
        )
    return quality


def gate_of(mlmodel_status: Mapping[str, Any]) -> str | None:
    """The label gate's last judgement, from status.analysis, when it judged a metric."""
    analysis = mlmodel_status.get("analysis") or {}
    if not analysis.get("metric"):
        return None
    figures = [f"{analysis['metric']} n={_fmt(analysis.get('labeled'))}"]
    if analysis.get("estimate") is not None:
        figures.append(
            f"Δ {analysis['estimate']:+.3f} [{_num(analysis.get('low'))}, "
            f"{_num(analysis.get('high'))}]"
        )
    return " ".join(figures + [str(analysis.get("outcome") or "")]).strip()


def _num(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:+.3f}"


def sample_from_objects(
    t: float,
    stage: str,
    featureview: Mapping[str, Any] | None,
    experiment: Mapping[str, Any] | None,
    mlmodel: Mapping[str, Any] | None,
    traffic: Mapping[str, Any] | None = None,
) -> Sample:
    fv = _status(featureview)
    exp = _status(experiment)
    mlm = _status(mlmodel)
    trials = exp.get("trials") or []
    finished = [t for t in trials if t.get("state") in ("Succeeded", "Failed")]
    split = mlm.get("traffic") or {}
    drift = mlm.get("drift") or {}
    traffic = traffic or {}
    return Sample(
        t=round(t, 2),
        stage=stage,
        featureview_version=fv.get("version"),
        backfilled=_condition(featureview, "Backfilled"),
        experiment_phase=exp.get("phase"),
        experiment_round=exp.get("round"),
        trials_done=len(finished),
        trials_total=len(trials),
        registered_version=exp.get("registeredVersion"),
        phase=mlm.get("phase"),
        stable_version=mlm.get("stableVersion"),
        candidate_version=mlm.get("candidateVersion"),
        stable_percent=split.get("stable"),
        candidate_percent=split.get("candidate"),
        mirror_percent=split.get("mirror"),
        p_values={str(k): float(v) for k, v in (drift.get("pValues") or {}).items()},
        is_drift=drift.get("isDrift"),
        requests_sent=traffic.get("sent"),
        request_errors=traffic.get("errors"),
        accuracy=traffic.get("accuracy"),
        shifted=traffic.get("shifted"),
        quality=quality_of(mlm),
        labels_sent=traffic.get("feedback_accepted"),
        gate=gate_of(mlm),
    )


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


def render_line(sample: Sample) -> str:
    """One line: stage, versions, traffic split, drift p-values, requests and accuracy."""
    parts = [f"[{sample.t:7.1f}s] {sample.stage:<12}"]
    if sample.featureview_version:
        parts.append(f"fv {sample.featureview_version[:8]} backfilled={_fmt(sample.backfilled)}")
    if sample.experiment_phase:
        parts.append(
            f"exp {sample.experiment_phase} r{_fmt(sample.experiment_round)} "
            f"trials {sample.trials_done}/{sample.trials_total} reg={_fmt(sample.registered_version)}"
        )
    if sample.phase:
        parts.append(
            f"mlm {sample.phase} v{_fmt(sample.stable_version)}:{_fmt(sample.stable_percent)}%"
            + (
                f" v{sample.candidate_version}:{_fmt(sample.candidate_percent)}%"
                f" mirror {_fmt(sample.mirror_percent)}%"
                if sample.candidate_version
                else ""
            )
        )
    if sample.p_values:
        lowest = sorted(sample.p_values.items(), key=lambda item: item[1])[:3]
        shown = " ".join(f"{name}={value:.3g}" for name, value in lowest)
        parts.append(f"drift={'YES' if sample.is_drift else 'no'} p[{shown}]")
    if sample.requests_sent is not None:
        accuracy = "-" if sample.accuracy is None else f"{sample.accuracy:.2f}"
        shift = " shifted" if sample.shifted else ""
        parts.append(
            f"req {sample.requests_sent} err {_fmt(sample.request_errors)} acc {accuracy}{shift}"
        )
    if sample.quality:
        shown = " ".join(
            f"v{version} {'-' if q.auc is None else f'{q.auc:.3f}'}/{q.labeled}"
            for version, q in sorted(sample.quality.items())
        )
        parts.append(f"auc/labeled {shown}")
    if sample.gate:
        parts.append(f"gate {sample.gate}")
    return " | ".join(parts)


def _signature(sample: Sample) -> tuple[object, ...]:
    """What counts as a change for the plain-text view (time and counters excluded)."""
    data = sample.model_dump(
        exclude={
            "t",
            "requests_sent",
            "request_errors",
            "accuracy",
            "quality",
            "labels_sent",
            "gate",
        }
    )
    data["p_values"] = tuple(sorted((k, round(v, 3)) for k, v in sample.p_values.items()))
    return tuple(sorted(data.items()))


class ProgressView:
    """Live line on a TTY; on a pipe, a plain line whenever the state changes (or every 30 s)."""

    def __init__(self, stream: TextIO | None = None, plain_every_s: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.plain_every_s = plain_every_s
        self._last_signature: tuple[object, ...] | None = None
        self._last_plain_t = -1e9
        self._live = False

    def show(self, sample: Sample) -> None:
        line = render_line(sample)
        if self.tty:
            width = 200
            self.stream.write("\r\x1b[2K" + line[:width])
            self._live = True
        else:
            signature = _signature(sample)
            if (
                signature == self._last_signature
                and sample.t - self._last_plain_t < self.plain_every_s
            ):
                return
            self._last_signature = signature
            self._last_plain_t = sample.t
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A permanent line (stage start/finish), below the live line."""
        if self._live:
            self.stream.write("\r\x1b[2K")
            self._live = False
        self.stream.write(text + "\n")
        self.stream.flush()
