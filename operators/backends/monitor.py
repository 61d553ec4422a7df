"""HTTP client of the kubeloop monitor: per-version figures for the gates, per-model config.

Figures come from `GET /v1/models/{ns}/{name}/figures?since=&until=` (see
`services/monitor/api.py`); the config names the versions in play so events land under the
right role (`PUT /v1/models/{ns}/{name}/config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

if TYPE_CHECKING:
    from operators.mlmodel.analysis import VersionFigures


def _figures_type() -> type[VersionFigures]:
    # Imported late: `operators.mlmodel`'s __init__ registers the Kopf handlers, which import
    # this module, so a top-level import would be circular when this module comes first.
    from operators.mlmodel.analysis import VersionFigures

    return VersionFigures


# The monitor's own bound on a window (services/monitor/config.py ModelConfig.window_size).
MAX_WINDOW_SIZE = 200_000


class MonitorUnavailable(RuntimeError):
    """The monitor did not answer; the interval is inconclusive, never a pass."""


@dataclass(frozen=True)
class ModelFigures:
    """What the monitor counted for one MLModel over one interval, per model version."""

    versions: dict[str, VersionFigures] = field(default_factory=dict)
    paired: dict[str, int] = field(default_factory=dict)
    disagreements: dict[str, int] = field(default_factory=dict)

    def of(self, version: str | None) -> VersionFigures:
        return self.versions.get(version or "") or _figures_type()()


@dataclass(frozen=True)
class MonitorModelConfig:
    """What the operator tells the monitor about one MLModel: the versions in each role and
    the pairing tolerance (from `spec.rollout.shadow`), the drift window (from
    `spec.monitoring.drift`)."""

    stable: str | None
    candidate: str | None
    shadow: str | None
    score_tolerance: float
    window_size: int | None = None
    feature_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "stableVersion": self.stable,
            "candidateVersion": self.candidate,
            "shadowVersion": self.shadow,
            "scoreTolerance": self.score_tolerance,
            "featureNames": self.feature_names,
        }
        if self.window_size is not None:
            body["windowSize"] = min(self.window_size, MAX_WINDOW_SIZE)
        return body


class MonitorClient(Protocol):
    def figures(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ModelFigures: ...

    def push_config(self, namespace: str, name: str, config: MonitorModelConfig) -> None: ...


def _version_figures(entry: dict[str, Any]) -> VersionFigures:
    latency = entry.get("latencyMs") or {}
    # A call whose response never arrived has no status; it says nothing for or against.
    answered = int(entry.get("requests", 0)) - int(entry.get("unanswered", 0))
    return _figures_type()(
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


class HttpMonitor:
    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

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

    def push_config(self, namespace: str, name: str, config: MonitorModelConfig) -> None:
        try:
            answer = self.http.put(f"/v1/models/{namespace}/{name}/config", json=config.to_json())
        except httpx.HTTPError as error:
            raise MonitorUnavailable(f"monitor unreachable: {error}") from error
        if answer.status_code != 200:
            raise MonitorUnavailable(f"monitor refused config {answer.status_code}: {answer.text}")

    def close(self) -> None:
        self.http.close()
