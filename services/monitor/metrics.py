"""Prometheus exposition computed from the monitor's state at scrape time.

A collector (instead of counters bumped per event) keeps the ingestion hot path free of
metric updates and lets each service instance own its registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.monitor import windows as w
from services.monitor.hooks import FEATURE, SKEW

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from services.monitor.service import MonitorService

_VERSION_LABELS = ["namespace", "model", "version", "role"]
_QUANTILE_LABEL = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}


class MonitorCollector(Collector):
    def __init__(self, service: MonitorService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        service = self._service
        core = service.core
        events = CounterMetricFamily(
            "kubeloop_monitor_events", "Inference CloudEvents accepted", labels=["kind"]
        )
        for kind, count in core.events_total.items():
            events.add_metric([kind], count)
        yield events
        bad = CounterMetricFamily(
            "kubeloop_monitor_bad_input",
            "Events or payloads refused or dropped, by reason",
            labels=["namespace", "model", "reason"],
        )
        for (namespace, model, reason), entry in core.bad.items():
            bad.add_metric([namespace, model, reason], entry.count)
        yield bad
        yield _gauge(
            "kubeloop_monitor_pending_calls",
            "Requests/responses awaiting a partner",
            len(core.pending),
        )
        yield _gauge(
            "kubeloop_monitor_pending_shadow",
            "Responses awaiting a shadow partner",
            len(core.shadow_pending),
        )
        yield _gauge(
            "kubeloop_monitor_journal_backlog",
            "Events not yet written to SQLite",
            service.journal_backlog,
        )
        yield from self._window_metrics()
        yield from service.outcomes.metrics()  # model quality per version, feedback counters
        yield from _auth_metrics(service)

    def _window_metrics(self) -> Iterator[Metric]:
        now = self._service.clock()
        families = {
            "requests": GaugeMetricFamily(
                "kubeloop_monitor_window_requests", "Requests in the window", labels=_VERSION_LABELS
            ),
            "serverErrors": GaugeMetricFamily(
                "kubeloop_monitor_window_server_errors", "5xx in the window", labels=_VERSION_LABELS
            ),
            "clientErrors": GaugeMetricFamily(
                "kubeloop_monitor_window_client_errors", "4xx in the window", labels=_VERSION_LABELS
            ),
            "unanswered": GaugeMetricFamily(
                "kubeloop_monitor_window_unanswered",
                "Requests without a logged response",
                labels=_VERSION_LABELS,
            ),
            "errorRate": GaugeMetricFamily(
                "kubeloop_monitor_window_error_rate",
                "5xx / judged requests",
                labels=_VERSION_LABELS,
            ),
            "disagreementRate": GaugeMetricFamily(
                "kubeloop_monitor_window_disagreement_rate",
                "Shadow disagreement",
                labels=_VERSION_LABELS,
            ),
            "pairedRequests": GaugeMetricFamily(
                "kubeloop_monitor_window_paired_requests", "Shadow pairs", labels=_VERSION_LABELS
            ),
        }
        latency = GaugeMetricFamily(
            "kubeloop_monitor_window_latency_ms",
            "Latency quantiles",
            labels=[*_VERSION_LABELS, "quantile"],
        )
        for (namespace, model), state in self._service.core.models.items():
            since = now - state.config.max_age_seconds
            for version, window in state.versions.items():
                labels = [namespace, model, version, window.role]
                figures = {
                    **w.request_figures(window.requests.select(since, now)),
                    **w.pair_figures(window.pairs.select(since, now)),
                }
                for name, family in families.items():
                    if figures[name] is not None:
                        family.add_metric(labels, float(figures[name]))
                for quantile in ("p50", "p95", "p99"):
                    value = figures["latencyMs"][quantile]
                    if value is not None:
                        latency.add_metric([*labels, _QUANTILE_LABEL[quantile]], value)
        yield from families.values()
        yield latency
        yield self._drift_metric()
        # Per-feature p-values of the feature drift check (the one that decides drift).
        yield self._per_feature_metric(
            "kubeloop_monitor_drift_p_value",
            "Last p-value of the feature drift test, per feature",
            FEATURE,
            "feature_p_values",
        )
        yield self._per_feature_metric(
            "kubeloop_monitor_skew_mismatch_fraction",
            "Share of served values that differ from the offline store's, per feature",
            SKEW,
            "mismatch_fraction",
        )

    def _drift_results(self) -> Iterator[tuple[list[str], str, dict[str, Any]]]:
        """Each version's last evaluations: ([namespace, model, version], evaluator, result)."""
        for (namespace, model), state in self._service.core.models.items():
            for slot, result in state.drift.items():
                version, _, evaluator = slot.rpartition("/")
                yield [namespace, model, version], evaluator, result

    def _drift_metric(self) -> Metric:
        drift = GaugeMetricFamily(
            "kubeloop_monitor_drift",
            "1 when the last drift evaluation of a version alarmed",
            labels=["namespace", "model", "version", "evaluator"],
        )
        for labels, evaluator, result in self._drift_results():
            drift.add_metric([*labels, evaluator], 1.0 if result.get("isDrift") else 0.0)
        return drift

    def _per_feature_metric(
        self, name: str, documentation: str, evaluator: str, field: str
    ) -> Metric:
        """One value per feature from the last result of ``evaluator`` (its ``field`` map)."""
        family = GaugeMetricFamily(
            name, documentation, labels=["namespace", "model", "version", "feature"]
        )
        for labels, evaluated_by, result in self._drift_results():
            if evaluated_by != evaluator:
                continue
            for feature, value in (result.get(field) or {}).items():
                family.add_metric([*labels, feature], float(value))
        return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _auth_metrics(service: MonitorService) -> Iterator[Metric]:
    """Refused requests by route class and status, and tokenless events of models the
    monitor was not configured for (services/monitor/auth)."""
    refused = CounterMetricFamily(
        "kubeloop_monitor_auth_refused",
        "Requests refused by authentication/authorization (401/403/429/503)",
        labels=["route", "status"],
    )
    for (route, status), count in sorted(service.auth.refused.items()):
        refused.add_metric([route, str(status)], count)
    yield refused
    yield CounterMetricFamily(
        "kubeloop_monitor_auth_dropped_unconfigured",
        "Tokenless inference events for models/versions the monitor was not configured for",
        value=service.auth.dropped_unconfigured,
    )
