"""The monitor's feedback service: labels in, joined rows journaled, quality figures out.

Owned by :class:`services.monitor.service.MonitorService` (``service.outcomes``), on the
event loop's thread like the core; SQLite work goes through the monitor's store thread.

Durability: a feedback POST is answered only once its labels (and the rows they joined) are
committed — one group commit for whatever arrived meanwhile, so many concurrent senders
share one transaction. An acknowledged label therefore survives a kill -9, and a retried
event id is recognised as a duplicate after a restart too. Joins triggered later by
predictions, and labels closing (orphan/done), are journaled by the next periodic flush; a
crash before it is repaired on restart: open labels wait again and the replayed predictions
join them again (rows are keyed, so never twice).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from contracts.quality import Comparison, Design, Metric, QualityReport, VersionQuality
from services.monitor.config import ModelConfig
from services.monitor.core import ServedPrediction
from services.monitor.outcomes import figures
from services.monitor.outcomes.feedback import REASON_PREFIX, FeedbackError, parse_feedback
from services.monitor.outcomes.join import Label, LabelJoin, ModelKey, Record

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric as PromMetric

    from services.monitor.service import MonitorService

log = logging.getLogger(__name__)
T = TypeVar("T")
# What one version's figures were computed from: the window's revision, the version's role,
# and the earliest labeled time among the rows selected (rows only leave the selection by
# ageing out, so the figures hold while that row is still inside the max age).
Stamp = tuple[int, str, float]
FIGURES_THREAD = "monitor-figures"

Reply = tuple[int, bytes]
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
#: Records waiting for SQLite beyond which new labels are refused (503): back-pressure keeps
#: memory bounded when the store stalls.
MAX_WRITE_BACKLOG = 200_000
HISTORY_POINTS = 500  # quality figures kept per version for the report
_VERSION_LABELS = ["namespace", "model", "version", "role"]
_GAUGES = (  # VersionQuality field → (metric name, help)
    ("labeled", "kubeloop_monitor_quality_labeled", "Labeled requests in the version's window"),
    ("auc", "kubeloop_monitor_quality_auc", "AUC over the labeled window"),
    ("log_loss", "kubeloop_monitor_quality_log_loss", "Log loss over the labeled window"),
    ("accuracy", "kubeloop_monitor_quality_accuracy", "Accuracy over the labeled window"),
    ("brier", "kubeloop_monitor_quality_brier", "Brier score over the labeled window"),
    ("ece", "kubeloop_monitor_quality_ece", "10-bin expected calibration error"),
)


def figures_executor() -> Executor:
    """Where quality figures are computed: off the event loop, so a 100,000-row window's
    figures (AUC intervals, the ECE bootstrap) never stall ingestion. A thread: a spawned
    process kept a little more of the ingest rate in ``bench/quality_offloop.py`` (its
    statistics' Python parts do not take the loop's GIL), but it costs an interpreter's start
    and SciPy's imports before the first figure (seconds on a loaded machine: a quality
    request waiting that long timed out) and its memory; see docs/benchmarks.md."""
    return ThreadPoolExecutor(1, thread_name_prefix=FIGURES_THREAD)


class FeedbackService:
    def __init__(
        self, monitor: MonitorService, executor: Callable[[], Executor] = figures_executor
    ) -> None:
        self.monitor = monitor
        self._make_executor = executor
        #: What computes one version's figures in the executor (a test holds it).
        self.figure: Callable[..., VersionQuality] = figures.version_quality
        self._executor: Executor | None = None  # made on the first figure: most never need it
        # Figures being computed, per version: later askers with the same stamp await these.
        self._computing: dict[tuple[str, str, str], tuple[Stamp, asyncio.Future[Any]]] = {}
        self.join = LabelJoin(monitor.settings.limits.max_versions_per_model)
        self.dropped = 0  # records SQLite refused (reported on /healthz)
        self._backlog = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._cache: dict[tuple[str, str, str], tuple[Stamp, VersionQuality]] = {}
        self.history: dict[tuple[str, str, str], deque[dict[str, Any]]] = {}
        self._history_revision: dict[tuple[str, str, str], int] = {}

    # ------------------------------------------------------------------ predictions

    def on_prediction(self, prediction: ServedPrediction) -> None:
        """The core's prediction sink (its thread: the event loop's)."""
        self.join.on_prediction(prediction, self._config((prediction.namespace, prediction.model)))

    def _config(self, key: ModelKey) -> ModelConfig:
        state = self.monitor.core.models.get(key)
        return state.config if state is not None else _DEFAULT_CONFIG

    # ------------------------------------------------------------------ labels

    async def handle(
        self,
        namespace: str,
        model: str,
        headers: Mapping[str, str],
        content_type: str,
        body: bytes | None,
    ) -> Reply:
        """One feedback POST (either port); never raises for what a client sent."""
        try:
            return await self._handle(namespace, model, headers, content_type, body)
        except FeedbackError as error:
            if error.status < 500:  # a store failure is not the client's input
                self._count(namespace, model, error)
            return error.status, json.dumps(error.body()).encode()
        except Exception as exc:  # never a 500 for what a client sent; the trace is logged
            log.exception("could not process feedback for %s/%s", namespace, model)
            message = f"feedback could not be processed: {exc}"[:300]
            return 422, json.dumps({"error": "unprocessable", "message": message}).encode()

    async def _handle(
        self,
        namespace: str,
        model: str,
        headers: Mapping[str, str],
        content_type: str,
        body: bytes | None,
    ) -> Reply:
        for what, value in (("namespace", namespace), ("name", model)):
            if not _NAME.match(value):
                message = f"{what} {value[:60]!r} is not a Kubernetes name"
                raise FeedbackError(400, "invalid_name", what, message)
        key = (namespace, model)
        if key not in self.monitor.core.models:
            message = f"no events or config for model {namespace}/{model}"
            raise FeedbackError(404, "unknown_model", "model", message)
        if body is None:
            limit = self.monitor.settings.limits.max_body_bytes
            raise FeedbackError(413, "oversized", "body", f"body exceeds {limit} bytes")
        if self._backlog + len(self.join.outbox) > MAX_WRITE_BACKLOG:
            raise FeedbackError(503, "store_busy", "body", "labels are not being stored; retry")
        now = self.monitor.clock()
        parsed = parse_feedback(headers, content_type, body, now)
        config = self._config(key)
        accepted = duplicates = 0
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(parsed.items):
            if isinstance(item, FeedbackError):
                self._count(namespace, model, item)
                rejected.append({"index": index, **item.body()})
            elif self.join.on_label(key, config, item):
                accepted += 1
            else:
                duplicates += 1
        if accepted + duplicates == 0:
            first = rejected[0]
            return 400, json.dumps({"accepted": 0, "rejected": rejected, **first}).encode()
        # Duplicates wait too: the first copy may still be in the commit under way.
        await self.commit()
        reply = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        return 200, json.dumps(reply).encode()

    def _count(self, namespace: str, model: str, error: FeedbackError) -> None:
        # Refusals of unknown models are counted without the name: memory stays bounded.
        known = (namespace, model) in self.monitor.core.models
        self.monitor.core.count_bad(
            namespace if known else "",
            model if known else "",
            error.reason,
            f"{error.field}: {error.message}",
            self.monitor.clock(),
        )

    # ------------------------------------------------------------------ journal

    async def commit(self) -> None:
        """Return once everything the join recorded so far is in SQLite."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._kick()
        await future

    def _kick(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop())

    async def flush(self) -> None:
        """Periodic and at stop: journal what predictions and expiry changed."""
        if self.join.outbox or self._waiters:
            await self.commit()

    async def _write_loop(self) -> None:
        store = self.monitor._store
        while self.join.outbox or self._waiters:
            records: list[Record] = self.join.drain()
            waiters, self._waiters = self._waiters, []
            self._backlog = len(records)
            try:
                if records:
                    if store is None:
                        raise RuntimeError("the monitor's store is closed")
                    await self.monitor._in_store(store.write_feedback, records)
            except Exception as exc:
                self.dropped += len(records)
                log.exception("could not journal %d feedback records", len(records))
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(FeedbackError(503, "store_failed", "body", str(exc)))
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            finally:
                self._backlog = 0

    async def tick(self) -> None:
        """Expire matured labels and journal what changed."""
        self.join.expire(self.monitor.clock())
        await self.flush()

    async def restore(self) -> None:
        """Before the event journal is replayed: windows, seen ids, open labels, history."""
        store = self.monitor._store
        assert store is not None
        now = self.monitor.clock()
        rows = await self.monitor._in_store(lambda: list(store.feedback_rows()))
        for namespace, model, version, row in rows:
            self.join.restore_row(
                (namespace, model), self._config((namespace, model)), version, row
            )
        labels = await self.monitor._in_store(lambda: list(store.feedback_labels()))
        for namespace, model, label, state in labels:
            key = (namespace, model)
            self.join.restore_label(key, self._config(key), label, state, now)
        self.join.restored()
        for namespace, model, version, entry in await self.monitor._in_store(store.quality_rows):
            self._history((namespace, model, version)).append(json.loads(entry))
        self.join.drain()  # what was restored is stored already
        log.info("monitor restored %d labeled rows, %d labels", len(rows), len(labels))

    async def prune(self) -> None:
        store = self.monitor._store
        if store is None or not self.join.models:
            return
        outcomes = [state.outcomes for state in self.join.models.values()]
        now = self.monitor.clock()
        max_age = max(o.max_age_seconds for o in outcomes)
        horizon = max(max(o.max_age_seconds, o.label_maturity_seconds) for o in outcomes)
        keep = sum(
            max(o.window_size * self.join.max_versions, o.max_pending_labels) for o in outcomes
        )
        await self.monitor._in_store(store.prune_feedback, now - max_age, now - horizon, keep)

    # ------------------------------------------------------------------ figures

    async def _off_loop(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the figures executor (never on the event loop)."""
        if self._executor is None:
            self._executor = self._make_executor()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def quality(self, key: ModelKey, since: float | None = None) -> QualityReport:
        """KeyError for a model the monitor does not know. `since` (epoch s): only the rows
        served since then (a period's figures, e.g. after a shift), else the whole window."""
        if key not in self.monitor.core.models:
            raise KeyError(f"no events or config for model {key[0]}/{key[1]}")
        now = self.monitor.clock()
        state = self.join.models.get(key)
        versions = [] if state is None else list(state.windows)
        figures_ = [await self._version(key, version, now, since) for version in versions]
        return QualityReport(
            namespace=key[0],
            model=key[1],
            now=now,
            versions=[f for f in figures_ if f is not None],
            orphans=self.join.orphans(key, now),
            pending_labels=state.pending() if state is not None else 0,
        )

    async def refresh(self) -> None:
        """Bring every version's figures up to date (before a metrics scrape reads them)."""
        now = self.monitor.clock()
        for key, state in list(self.join.models.items()):
            for version in list(state.windows):
                await self._version(key, version, now)

    async def _version(
        self, key: ModelKey, version: str, now: float, since: float | None = None
    ) -> VersionQuality | None:
        """Figures of one version, recomputed (off the loop) only when its window changed:
        the ECE bootstrap is not free and Prometheus scrapes often. None when the version's
        window went away meanwhile. A period's figures (`since`) are asked rarely: not cached."""
        state = self.join.models.get(key)
        window = state.windows.get(version) if state is not None else None
        if state is None or window is None:
            return None
        slot = (*key, version)
        current = (window.revision, self._role_of(key, version))
        oldest = now - state.outcomes.max_age_seconds
        # Checked before the rows are selected: a scrape or a repeated ask of an unchanged
        # window costs no pass over its (up to 100k) rows on the event loop.
        if since is None:
            cached = self._cache.get(slot)
            if cached is not None and _holds(cached[0], current, oldest):
                return cached[1]
            computing = self._computing.get(slot)
            if computing is not None and _holds(computing[0], current, oldest):
                result: VersionQuality = await asyncio.shield(computing[1])
                return result
        rows = window.select(now, state.outcomes.max_age_seconds, since)
        stamp = (*current, float(rows.labeled_at.min()) if rows.size else math.inf)
        # The version's role now (it changes at a promotion), else the one it served with.
        role = self._role_of(key, version) or window.role
        # The request ids stay here: the figures need only the columns.
        columns = replace(rows, request_ids=[])
        threshold = state.config.label_threshold
        if since is not None:
            return await self._off_loop(self.figure, version, role, columns, threshold)
        future = asyncio.ensure_future(
            self._off_loop(self.figure, version, role, columns, threshold)
        )
        self._computing[slot] = (stamp, future)
        try:
            figures_ = await asyncio.shield(future)
        finally:
            if self._computing.get(slot, (None, None))[1] is future:
                del self._computing[slot]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[slot] = (stamp, figures_)
        return figures_

    def _cached(self, key: ModelKey, version: str) -> VersionQuality | None:
        """The figures computed last (for a synchronous reader: the metrics collector)."""
        cached = self._cache.get((*key, version))
        return cached[1] if cached is not None else None

    def _role_of(self, key: ModelKey, version: str) -> str:
        served = self.monitor.core.models.get(key)
        current = served.versions.get(version) if served is not None else None
        return current.role if current is not None else ""

    async def compare(
        self,
        key: ModelKey,
        candidate: str,
        stable: str,
        metric: Metric,
        design: Design,
        since: float,
    ) -> Comparison:
        if key not in self.monitor.core.models:
            raise KeyError(f"no events or config for model {key[0]}/{key[1]}")
        now = self.monitor.clock()
        compare = functools.partial(
            figures.compare,
            self.join.rows(key, candidate, now, since),
            self.join.rows(key, stable, now, since),
            metric=metric,
            design=design,
            candidate_version=candidate,
            stable_version=stable,
            since=since,
            threshold=self._config(key).label_threshold,
        )
        return await self._off_loop(compare)

    # ------------------------------------------------------------------ history and report

    def _history(self, slot: tuple[str, str, str]) -> deque[dict[str, Any]]:
        history = self.history.get(slot)
        if history is None:
            # Versions come and go: a model keeps the history of its newest 2 × 16 versions
            # (dicts keep insertion order, so the first of the model's slots is the oldest).
            mine = [other for other in self.history if other[:2] == slot[:2]]
            for old in mine[: max(0, len(mine) + 1 - 2 * self.join.max_versions)]:
                del self.history[old]
                self._history_revision.pop(old, None)
            history = self.history[slot] = deque(maxlen=HISTORY_POINTS)
        return history

    async def snapshot_history(self) -> int:
        """Record each version's figures when its window changed; returns points added."""
        entries: list[tuple[str, str, str, float, str]] = []
        for key, state in list(self.join.models.items()):
            if key not in self.monitor.core.models:
                continue
            now = self.monitor.clock()
            for version, window in list(state.windows.items()):
                slot = (*key, version)
                if self._history_revision.get(slot) == window.revision:
                    continue
                self._history_revision[slot] = window.revision
                figures_ = await self._version(key, version, now)
                if figures_ is None:
                    continue
                entry = {"takenAt": now, **figures_.model_dump(
                    by_alias=True, mode="json", exclude={"version"}
                )}  # fmt: skip
                self._history(slot).append(entry)
                entries.append((*slot, now, json.dumps(entry)))
        store = self.monitor._store
        if entries and store is not None:
            await self.monitor._in_store(store.add_quality, entries, HISTORY_POINTS)
        return len(entries)

    async def report_html(self, key: ModelKey, page: bool = False) -> str:
        """The quality part of the monitor's report, or (``page``) a page of its own;
        KeyError for an unknown model."""
        from services.monitor.outcomes.report import quality_page, quality_section

        report = await self.quality(key)
        history = {
            version: list(self.history.get((*key, version), ()))
            for version in {v.version for v in report.versions}
            | {slot[2] for slot in self.history if slot[:2] == key}
        }
        return (quality_page if page else quality_section)(report, history)

    def sizes(self) -> dict[str, int]:
        """What the join holds in memory (all bounded by the models' outcomes config)."""
        models = list(self.join.models.values())
        return {
            "indexedRequests": sum(len(m.by_request) for m in models),
            "waitingLabels": sum(len(m.waiting) for m in models),
            "seenLabelIds": sum(len(m.seen) for m in models),
            "labeledRows": sum(len(w.rows) for m in models for w in m.windows.values()),
            "writeBacklog": self._backlog + len(self.join.outbox),
            "dropped": self.dropped,
            **{
                outcome: sum(m.counts[outcome] for m in models)
                for outcome in ("accepted", "duplicate", "joined", "orphan", "relabeled")
            },
        }

    # ------------------------------------------------------------------ metrics

    def metrics(self) -> Iterator[PromMetric]:
        """The collector is synchronous: it reads the figures computed last (the metrics
        route calls :meth:`refresh` first, off the loop)."""
        families = {
            field: GaugeMetricFamily(name, doc, labels=_VERSION_LABELS)
            for field, name, doc in _GAUGES
        }
        delay = GaugeMetricFamily(
            "kubeloop_monitor_label_delay_seconds",
            "observedAt - served time of the labeled window, by quantile",
            labels=[*_VERSION_LABELS, "quantile"],
        )
        labels_total = CounterMetricFamily(
            "kubeloop_monitor_feedback_labels",
            "Feedback labels by outcome (accepted, duplicate, joined, orphan, relabeled,"
            " pendingOverflow)",
            labels=["namespace", "model", "outcome"],
        )
        pending = GaugeMetricFamily(
            "kubeloop_monitor_feedback_pending_labels",
            "Labels waiting for their prediction",
            labels=["namespace", "model"],
        )
        for key, state in list(self.join.models.items()):
            for outcome, count in state.counts.items():
                labels_total.add_metric([*key, outcome], count)
            pending.add_metric(list(key), state.pending())
            for version in list(state.windows):
                quality = self._cached(key, version)
                if quality is None:
                    continue
                labels = [*key, version, quality.role]
                for field, family in families.items():
                    value = getattr(quality, field)
                    value = value.value if hasattr(value, "value") else value
                    if value is not None:
                        family.add_metric(labels, float(value))
                for q, value in (("0.5", quality.label_delay_p50_s),
                                 ("0.9", quality.label_delay_p90_s)):  # fmt: skip
                    if value is not None:
                        delay.add_metric([*labels, q], value)
        yield from families.values()
        yield delay
        yield labels_total
        yield pending


_DEFAULT_CONFIG = ModelConfig()

__all__ = ["REASON_PREFIX", "FeedbackService", "Label"]


def _holds(stamp: Stamp, current: tuple[int, str], oldest: float) -> bool:
    """Figures computed under `stamp` still describe the window: same revision and role, and
    none of the rows they were computed from has aged out since."""
    return stamp[:2] == current and stamp[2] >= oldest
