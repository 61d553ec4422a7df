"""HTTP client of the kubeloop monitor: per-version figures for the gates, per-model config.

Figures come from `GET /v1/models/{ns}/{name}/figures?since=&until=` (see
`services/monitor/api.py`); the config (`contracts.monitor_config.ModelConfig`, the model the
monitor validates it with) names the versions in play so events land under the right role,
and the drift settings and each version's training reference
(`PUT /v1/models/{ns}/{name}/config`); drift checks per version come from
`GET /v1/models/{ns}/{name}/drift`. Outcomes (labels joined to served predictions): each
version's quality from `GET /v1/models/{ns}/{name}/quality` (`contracts.quality.QualityReport`)
and a candidate against stable on the primary metric from `GET .../compare`
(`contracts.quality.Comparison`), the same pydantic models the monitor answers with.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from contracts.monitor_config import ModelConfig
from contracts.quality import Comparison, Design, Metric, QualityReport
from operators.mlmodel.analysis import VersionFigures


class MonitorUnavailable(RuntimeError):
    """The monitor did not answer; the interval is inconclusive, never a pass."""


@dataclass(frozen=True)
class ModelFigures:
    """What the monitor counted for one MLModel over one interval, per model version."""

    versions: dict[str, VersionFigures] = field(default_factory=dict)
    paired: dict[str, int] = field(default_factory=dict)
    disagreements: dict[str, int] = field(default_factory=dict)

    def of(self, version: str | None) -> VersionFigures:
        return self.versions.get(version or "") or VersionFigures()


@dataclass(frozen=True)
class VersionSkew:
    """The monitor's last skew check of one version; `is_skew` None while there is none."""

    is_skew: bool | None = None
    pairs: int | None = None
    unmatched_served: int | None = None
    mismatch_fraction: dict[str, float] = field(default_factory=dict)
    skewed_features: list[str] = field(default_factory=list)
    checked_at: datetime | None = None
    message: str | None = None


@dataclass(frozen=True)
class VersionDrift:
    """The monitor's last drift check of one model version.

    `is_drift` is None while there is no verdict (window not full, no reference yet): then
    `message` says why. URLs are absolute (the monitor answers paths relative to itself).
    """

    version: str
    detector: str | None = None
    is_drift: bool | None = None
    p_values: dict[str, float] = field(default_factory=dict)
    p_value: float | None = None
    threshold: float | None = None
    window: int | None = None
    checked_at: datetime | None = None
    report_url: str | None = None
    message: str | None = None
    skew: VersionSkew | None = None
    # The alarm rule's figures (the view's `alarm` block, camelCase keys as the monitor sends
    # them) and what the prediction check compared the scores with (checks.prediction).
    alarm: dict[str, Any] | None = None
    prediction_baseline: str | None = None
    prediction_baseline_note: str | None = None


# The alarm view's members kept in VersionDrift.alarm, with their types.
_ALARM_FLOATS = ("statistic", "threshold", "expectedRunTimeSeconds")
_ALARM_INTS = ("consecutive", "requiredConsecutive", "evidenceWindows")


def _alarm(view: Any) -> dict[str, Any] | None:
    """The drift view's `alarm` block, values checked (wrong types become None)."""
    if not isinstance(view, dict):
        return None
    alarm: dict[str, Any] = {
        "rule": str(view["rule"]) if isinstance(view.get("rule"), str) else None,
        "windowDrift": view["windowDrift"] if isinstance(view.get("windowDrift"), bool) else None,
    }
    for name in _ALARM_FLOATS:
        alarm[name] = _float_or_none(view.get(name))
    for name in _ALARM_INTS:
        value = view.get(name)
        alarm[name] = int(value) if isinstance(value, int | float) and value == value else None
    return alarm


def _absolute(base_url: str, path: Any) -> str | None:
    if not path:
        return None
    text = str(path)
    if text.startswith(("http://", "https://")):
        return text
    return base_url.rstrip("/") + "/" + text.lstrip("/")


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _epoch(value: Any) -> datetime | None:
    seconds = _float_or_none(value)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _version_skew(entry: Any) -> VersionSkew | None:
    """`checks.skew` of one version (None when the monitor runs no skew check)."""
    if not isinstance(entry, dict):
        return None
    is_skew = entry.get("isSkew")
    fractions = {
        str(k): f
        for k, v in (entry.get("mismatchFraction") or {}).items()
        if (f := _float_or_none(v)) is not None
    }
    return VersionSkew(
        is_skew=bool(is_skew) if is_skew is not None else None,
        pairs=_int_or_none(entry.get("pairs")),
        unmatched_served=_int_or_none(entry.get("unmatchedServed")),
        mismatch_fraction=fractions,
        skewed_features=[str(f) for f in entry.get("skewedFeatures") or []],
        checked_at=_epoch(entry.get("checkedAt")),
        message=entry.get("message"),
    )


def _version_drift(base_url: str, version: str, entry: dict[str, Any]) -> VersionDrift:
    p_values = {
        str(k): p
        for k, v in (entry.get("pValues") or {}).items()
        if (p := _float_or_none(v)) is not None
    }
    is_drift = entry.get("isDrift")
    window = entry.get("window")
    report = _absolute(base_url, entry.get("reportUrl")) or _absolute(
        base_url, entry.get("liveReportUrl")
    )
    prediction = (entry.get("checks") or {}).get("prediction")
    prediction = prediction if isinstance(prediction, dict) else {}
    return VersionDrift(
        version=version,
        detector=entry.get("detector"),
        is_drift=bool(is_drift) if is_drift is not None else None,
        p_values=p_values,
        p_value=_float_or_none(entry.get("pValue")),
        threshold=_float_or_none(entry.get("threshold")),
        window=int(window) if isinstance(window, int | float) else None,
        checked_at=_epoch(entry.get("checkedAt")),
        report_url=report,
        message=entry.get("message"),
        skew=_version_skew((entry.get("checks") or {}).get("skew")),
        alarm=_alarm(entry.get("alarm")),
        prediction_baseline=_text_or_none(prediction.get("baseline")),
        prediction_baseline_note=_text_or_none(prediction.get("baselineNote")),
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_drift(base_url: str, body: dict[str, Any]) -> dict[str, VersionDrift]:
    """`GET .../drift` → the checks per version (entries that are not objects are skipped)."""
    versions = body.get("versions") or {}
    return {
        str(v): _version_drift(base_url, str(v), entry)
        for v, entry in versions.items()
        if isinstance(entry, dict)
    }


class MonitorClient(Protocol):
    def figures(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ModelFigures: ...

    def push_config(self, namespace: str, name: str, config: ModelConfig) -> None: ...

    def drift(self, namespace: str, name: str) -> dict[str, VersionDrift]: ...

    def quality(self, namespace: str, name: str) -> QualityReport | None: ...

    def compare(self, namespace: str, name: str, request: CompareRequest) -> Comparison: ...


@dataclass(frozen=True)
class CompareRequest:
    """One comparison the rollout asks for: the candidate against stable on `metric`, over the
    labeled requests served since `since` (paired: the same requests; concurrent: the same
    time span)."""

    candidate: str
    stable: str
    metric: Metric
    design: Design  # shadow: paired; canary: concurrent
    since: datetime

    def params(self) -> dict[str, str]:
        return {
            "candidate": self.candidate,
            "stable": self.stable,
            "metric": self.metric,
            "design": self.design,
            "since": f"{self.since.timestamp():.3f}",
        }

    def nothing_yet(self) -> Comparison:
        """What a monitor that has no events for the model yet (404) amounts to."""
        return Comparison(
            metric=self.metric,
            candidate=self.candidate,
            stable=self.stable,
            design=self.design,
            n=0,
            n_stable=0,
            estimate=None,
            variance=None,
            method="none",
            since=self.since.timestamp(),
        )


def _version_figures(entry: dict[str, Any]) -> VersionFigures:
    latency = entry.get("latencyMs") or {}
    # A call whose response never arrived has no status; it says nothing for or against.
    answered = int(entry.get("requests", 0)) - int(entry.get("unanswered", 0))
    return VersionFigures(
        requests=max(answered, 0),
        server_errors=int(entry.get("serverErrors", 0)),
        client_errors=int(entry.get("clientErrors", 0)),
        latency_p99_ms=latency.get("p99"),
    )


def parse_figures(body: dict[str, Any]) -> ModelFigures:
    versions, paired, disagreements = {}, {}, {}
    for version, entry in (body.get("versions") or {}).items():
        versions[version] = _version_figures(entry)
        requests = int(entry.get("pairedRequests") or 0)
        paired[version] = requests
        # The gate compares requests; the monitor counts disagreeing predictions per pair.
        rate = float(entry.get("disagreementRate") or 0.0)
        disagreements[version] = round(rate * requests)
    return ModelFigures(versions, paired, disagreements)


class _FileBearer(httpx.Auth):
    """``Authorization: Bearer <the file's content>``, read on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        try:
            token = self.path.read_text().strip()
        except OSError as error:
            raise MonitorUnavailable(f"monitor token file unreadable: {error}") from error
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class HttpMonitor:
    """The monitor's HTTP API. `push_config` sends a model's config only when it changed, or
    when the last accepted copy is older than `config_refresh_s`: the operator's timer builds
    the config every pass (each second in the demo) and the monitor writes each PUT to its
    store. A monitor whose drift endpoint answers 404 for a model has lost it (a wiped state
    dir) and gets the config again on the next pass."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 5.0,
        config_refresh_s: float = 60.0,
        token_file: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The monitor authenticates every call (services/monitor/auth): the token file is the
        # embedded token (`kubeloop up`) or a projected ServiceAccount token with the
        # monitor's audience (a cluster), re-read per request because projected tokens rotate.
        auth = _FileBearer(token_file) if token_file is not None else None
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, auth=auth)
        self.config_refresh_s = config_refresh_s
        self._pushed: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    def figures(self, namespace: str, name: str, since: datetime, until: datetime) -> ModelFigures:
        params = {"since": f"{since.timestamp():.3f}", "until": f"{until.timestamp():.3f}"}
        try:
            answer = self.http.get(f"/v1/models/{namespace}/{name}/figures", params=params)
        except httpx.HTTPError as error:
            raise MonitorUnavailable(f"monitor unreachable: {error}") from error
        if answer.status_code == 404:
            return ModelFigures()  # no event yet for this model
        if answer.status_code != 200:
            raise MonitorUnavailable(f"monitor answered {answer.status_code}: {answer.text[:200]}")
        return parse_figures(answer.json())

    def push_config(self, namespace: str, name: str, config: ModelConfig) -> None:
        key, body, now = (namespace, name), config.to_json(), time.monotonic()
        last = self._pushed.get(key)
        if last is not None and last[0] == body and now - last[1] < self.config_refresh_s:
            return
        self._pushed.pop(key, None)
        try:
            answer = self.http.put(f"/v1/models/{namespace}/{name}/config", json=body)
        except httpx.HTTPError as error:
            raise MonitorUnavailable(f"monitor unreachable: {error}") from error
        if answer.status_code != 200:
            raise MonitorUnavailable(f"monitor refused config {answer.status_code}: {answer.text}")
        self._pushed[key] = (body, now)

    def drift(self, namespace: str, name: str) -> dict[str, VersionDrift]:
        """The last drift check per version; empty when the monitor does not know the model."""
        try:
            answer = self.http.get(f"/v1/models/{namespace}/{name}/drift")
        except httpx.HTTPError as error:
            raise MonitorUnavailable(f"monitor unreachable: {error}") from error
        if answer.status_code == 404:
            self._pushed.pop((namespace, name), None)
            return {}
        if answer.status_code != 200:
            raise MonitorUnavailable(f"monitor answered {answer.status_code}: {answer.text[:200]}")
        try:
            body = answer.json()
        except ValueError as error:
            raise MonitorUnavailable(f"monitor answered invalid JSON: {error}") from error
        return parse_drift(self.base_url, body if isinstance(body, dict) else {})

    def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any | None:
        """The answer's JSON; None on 404; MonitorUnavailable on anything but 200."""
        try:
            answer = self.http.get(path, params=params)
        except httpx.HTTPError as error:
            raise MonitorUnavailable(f"monitor unreachable: {error}") from error
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise MonitorUnavailable(f"monitor answered {answer.status_code}: {answer.text[:200]}")
        try:
            return answer.json()
        except ValueError as error:
            raise MonitorUnavailable(f"monitor answered invalid JSON: {error}") from error

    def quality(self, namespace: str, name: str) -> QualityReport | None:
        """Each version's quality on its joined labels; None when the monitor does not know
        the model (no event yet)."""
        body = self._get_json(f"/v1/models/{namespace}/{name}/quality")
        if body is None:
            return None
        try:
            return QualityReport.model_validate(body)
        except ValidationError as error:
            raise MonitorUnavailable(
                f"monitor answered an invalid quality report: {error}"
            ) from None

    def compare(self, namespace: str, name: str, request: CompareRequest) -> Comparison:
        """The candidate against stable on labeled requests. A model the monitor does not know
        yet has no labels: an empty comparison (inconclusive), never a verdict."""
        body = self._get_json(f"/v1/models/{namespace}/{name}/compare", request.params())
        if body is None:
            return request.nothing_yet()
        try:
            return Comparison.model_validate(body)
        except ValidationError as error:
            raise MonitorUnavailable(f"monitor answered an invalid comparison: {error}") from None

    def close(self) -> None:
        self.http.close()
