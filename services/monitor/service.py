"""The monitor service: owns the core, the SQLite store, background loops and drift hooks.

The HTTP shell (``api.py``) calls into this; all core mutations happen on the event loop's
thread, the store works on its own single thread (except the group commit, which the event
loop makes in place on a connection of its own: see ``MonitorStore``), detectors on another.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry

from services.monitor.auth.service import MonitorAuth
from services.monitor.auth.tokens import ensure_token
from services.monitor.config import AuthSettings, DriftConfig, ModelConfig, MonitorSettings
from services.monitor.core import BadCount, ModelKey, ModelState, MonitorCore
from services.monitor.fast_ingest import IngestListener, start_ingest_listener
from services.monitor.hooks import FEATURE, DriftEvaluator, DriftOutcome, WindowSnapshot
from services.monitor.metrics import MonitorCollector
from services.monitor.outcomes.service import FeedbackService
from services.monitor.parsing import BadEvent, Envelope
from services.monitor.predlog import PredictionLog, warm_up
from services.monitor.store import BadInputRow, EventRow, MonitorStore, event_row

if TYPE_CHECKING:  # the drift package loads pandas and SciPy: imported on first use below
    import pandas as pd

    from services.monitor.drift.report import ReportInput
    from services.monitor.drift.suite import ModelDriftSuite

log = logging.getLogger(__name__)

_MAX_REPORTS = 1000  # alarm-onset snapshots kept in SQLite (newest first)
_QUALITY_HISTORY_INTERVAL_S = 30.0  # quality figures per version over time, for the report
_CHECKPOINT_INTERVAL_S = 1.0  # WAL checkpoints (on the store's thread) while commits come


class MonitorService:
    """Start/stop API used by ``python -m services.monitor``, tests and ``kubeloop up``."""

    def __init__(
        self,
        settings: MonitorSettings,
        drift_evaluators: Sequence[DriftEvaluator] = (),
        clock: Callable[[], float] = time.time,
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        """``drift_evaluators`` run on every version next to the built-in checks (feature
        drift, prediction drift, null rates), which run for models whose config has ``drift``.
        ``extra_routes`` lets other packages serve from the same app."""
        self.settings = settings
        self.extra_routes = list(extra_routes)
        self.clock = clock
        self.core = MonitorCore(settings.limits)
        self.drift_evaluators = list(drift_evaluators)
        self._drift_suite: ModelDriftSuite | None = None
        self._drift_suite_lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MonitorCollector(self))
        self.ready = False
        self.port: int | None = None
        self.ingest_port: int | None = None
        self._ingest_listener: IngestListener | None = None
        self.journal_dropped = 0
        self.drift_failures = 0
        self._journal: list[EventRow] = []
        self._writing = 0  # rows of the batch being committed right now
        self._store: MonitorStore | None = None
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="monitor-store")
        # Group commit: ingest replies wait on these callbacks; each flush calls the ones
        # registered before it started (True = committed), and the writer loop flushes again
        # at once. Callbacks, not a future per reply: at 15,000 events/s the futures and
        # their scheduled callbacks were a measurable share of the event loop's time.
        self._committed: list[Callable[[bool], None]] = []
        #: Counts flushes that took their waiters: a registration made under one number is
        #: answered by the flush that takes it (the fast listener registers once per number).
        self.commit_generation = 0
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpointed_at = 0.0  # time.monotonic() of the last checkpoint started
        self.prediction_log: PredictionLog | None = None
        if settings.prediction_log:
            self.prediction_log = PredictionLog(
                settings.prediction_log_location,
                settings.db_path,
                settings.prediction_log_retention_days,
            )
            self.core.prediction_sinks.append(self.prediction_log.sink)
        # Compaction runs in a worker process, started on the first pass: its Arrow/Parquet
        # work would otherwise hold the GIL the ingest loop needs.
        self._compactor: ProcessPoolExecutor | None = None
        self._drift_thread = ThreadPoolExecutor(1, thread_name_prefix="monitor-drift")
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        # Labels joined to served predictions (POST .../feedback, quality figures).
        self.outcomes = FeedbackService(self)
        self.core.prediction_sinks.append(self.outcomes.on_prediction)
        # Who may do what (services/monitor/auth); both listeners ask it first.
        self.auth = build_auth(settings.auth, settings.data_dir, clock)
        # Models whose config was PUT (bounded by Limits.max_models): tokenless ingest only
        # reaches these.
        self.configured: set[ModelKey] = set()

    @property
    def auth_headers(self) -> dict[str, str]:
        """What a local client (tests, ``kubeloop up``'s processes) sends: the embedded token."""
        token = self.auth.embedded_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ingest_url(self) -> str:
        """Where loggers should POST events: the fast listener when one runs."""
        return f"http://{self.settings.host}:{self.ingest_port or self.port}/"

    async def start(self) -> None:
        from services.monitor.api import build_app  # the shell imports this module

        if self.prediction_log is not None:
            self.prediction_log.check_uri()
        self._store = await self._in_store(MonitorStore, self.settings.db_path)
        if self.prediction_log is not None:
            await self._in_store(self.prediction_log.open, self._store.db)
        await self._restore()
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port (settings may say 0)
        if self.settings.ingest_port is not None:
            self._ingest_listener = await start_ingest_listener(
                self, self.settings.host, self.settings.ingest_port
            )
            self.ingest_port = self._ingest_listener.port
        self._spawn(self._group_commit())
        self._spawn(self._every(self.settings.flush_interval_s, self.flush))
        if self.prediction_log is not None:
            interval = self.settings.prediction_log_compaction_interval_s
            self._spawn(self._every(interval, self.compact_predictions))
        self._spawn(self._every(self.settings.expiry_interval_s, self._expire))
        self._spawn(self._every(self.settings.prune_interval_s, self._prune))
        self._spawn(self._every(self.settings.drift_interval_s, self.evaluate_drift))
        self._spawn(self._every(self.settings.flush_interval_s, self.outcomes.flush))
        self._spawn(self._every(self.settings.expiry_interval_s, self.outcomes.tick))
        self._spawn(self._every(self.settings.prune_interval_s, self.outcomes.prune))
        self._spawn(self._every(_QUALITY_HISTORY_INTERVAL_S, self.outcomes.snapshot_history))
        self.ready = True
        log.info("monitor listening on %s, data in %s", self.url, self.settings.data_dir)

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._ingest_listener is not None:
            await self._ingest_listener.close()
            self._ingest_listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.auth.close()
        if self._store is not None:
            await self.outcomes.flush()
            await self.flush()
            if self._compactor is not None:
                try:  # a clean stop leaves the log complete; a failure here loses nothing
                    await self.compact_predictions()
                except Exception:
                    log.exception("final prediction-log compaction failed")
            if self._checkpointing is not None:
                await self._checkpointing
            await self._in_store(self._store.close)
            self._store = None
        self._store_thread.shutdown(wait=True)
        if self._compactor is not None:
            self._compactor.shutdown(wait=True)
            self._compactor = None
        self._drift_thread.shutdown(wait=False, cancel_futures=True)
        self.outcomes.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coroutine))

    async def _every(
        self, interval_s: float, action: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await action()
            except Exception:  # a background loop must survive any single failure
                log.exception("monitor background task %s failed", action.__name__)

    async def _in_store(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store_thread, function, *args)

    # ------------------------------------------------------------------ ingestion

    def accept(self, env: Envelope) -> str | None:
        """Record one parsed event and journal it; returns a payload problem reason."""
        now = self.clock()
        problem = self.core.ingest(env, now)
        if len(self._journal) >= self.settings.max_journal_backlog:
            self.journal_dropped += 1  # the store is stalled; memory stays bounded
        else:
            self._journal.append(event_row(env, now))
        return problem

    def reject(self, namespace: str, model: str, error: BadEvent) -> None:
        self.core.count_bad(namespace, model, error.reason, error.message, self.clock())

    @property
    def journal_backlog(self) -> int:
        """Accepted events not yet committed to SQLite (queued or being written), plus
        bad-input counters not yet written (those replies do not wait for a commit)."""
        return len(self._journal) + self._writing + len(self.core.bad_dirty)

    @property
    def journal_full(self) -> bool:
        """The store has fallen this far behind: new events are refused (503), not dropped."""
        return len(self._journal) + self._writing >= self.settings.max_journal_backlog

    def durable(self) -> asyncio.Future[bool]:
        """Resolves True once every event accepted so far is committed to SQLite (False when
        the commit failed). An ingest reply waits on it, so a 200 survives a kill -9."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def settle(committed: bool) -> None:
            if not waiter.done():
                waiter.set_result(committed)

        self.on_durable(settle)
        return waiter

    def on_durable(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(committed)`` once every event accepted so far is committed (or
        the commit failed); the callback runs on the event loop and must not raise."""
        if self._store is None:
            callback(False)
            return
        self._committed.append(callback)
        self._wake.set()

    async def _group_commit(self) -> None:
        """Commit as soon as someone waits: what arrives during one commit goes in the next,
        so the batch grows with the load and each reply waits about one commit."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("journal commit failed")

    async def flush(self) -> None:
        """Write journaled events, their served predictions and bad-input deltas in one
        transaction, then resolve the replies waiting for it."""
        async with self._flush_lock:
            await self._flush_batch()

    async def _flush_batch(self) -> None:
        if self._store is None:
            return
        log_ = self.prediction_log
        predictions = log_.drain() if log_ is not None else []
        if not (self._journal or self.core.bad_dirty or predictions or self._committed):
            return
        events, self._journal = self._journal, []
        waiters, self._committed = self._committed, []
        self.commit_generation += 1
        dirty, self.core.bad_dirty = self.core.bad_dirty, {}
        bad = [
            BadInputRow(*key, delta, self.core.bad[key].last_message, self.core.bad[key].last_ts)
            for key, delta in dirty.items()
        ]
        also = [lambda db: log_.write(db, predictions)] if log_ is not None and predictions else []
        self._writing = len(events)
        committed = False
        try:
            # In place on the loop's own connection (see MonitorStore); on the store's
            # thread when another connection holds SQLite's write lock (a prune, a label
            # commit, the compactor, a checkpoint starting the WAL over).
            if not self._store.write_batch(events, bad, also, on_loop=True):
                await self._in_store(self._store.write_batch, events, bad, also)
            committed = True
            self._checkpoint_soon()
        except Exception:
            self.journal_dropped += len(events)  # reported on /healthz; the loop logs it
            raise
        finally:
            self._writing = 0
            for waiter in waiters:
                try:
                    waiter(committed)
                except Exception:  # one reply's failure must not strand the others
                    log.exception("commit callback failed")

    def _checkpoint_soon(self) -> None:
        """A WAL checkpoint on the store's thread at most every ``_CHECKPOINT_INTERVAL_S``
        while commits come (the loop's connection never checkpoints)."""
        now = time.monotonic()
        if self._checkpointing is not None or now - self._checkpointed_at < _CHECKPOINT_INTERVAL_S:
            return
        self._checkpointed_at = now
        self._checkpointing = asyncio.create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            if self._store is not None:
                await self._in_store(self._store.checkpoint)
        except Exception:  # the next commit schedules another; nothing is lost
            log.exception("WAL checkpoint failed")
        finally:
            self._checkpointing = None

    async def compact_predictions(self) -> None:
        """One prediction-log compaction on its own thread (journal rows → Parquet)."""
        if self.prediction_log is None or self._store is None:
            return
        configs = [state.config for state in self.core.models.values()] or [ModelConfig()]
        margin = max(c.pairing_timeout_seconds for c in configs)
        if self._compactor is None:
            # spawn: a forked child would inherit the event loop's threads and locks.
            context = multiprocessing.get_context("spawn")
            self._compactor = ProcessPoolExecutor(
                1, mp_context=context, initializer=warm_up, initargs=(os.getpid(),)
            )
        loop = asyncio.get_running_loop()
        run = self.prediction_log.compactor.run
        try:
            result = await loop.run_in_executor(self._compactor, run, self.clock(), margin)
        except BrokenProcessPool:
            self.prediction_log.failures += 1
            self._compactor = None  # the worker died: a fresh one next pass
            raise
        except Exception:
            self.prediction_log.failures += 1
            raise
        self.prediction_log.record(result)

    async def _expire(self) -> None:
        self.core.expire(self.clock())

    def retention_seconds(self) -> float:
        configs = [state.config for state in self.core.models.values()] or [ModelConfig()]
        return max(c.max_age_seconds + c.pairing_timeout_seconds for c in configs)

    async def _prune(self) -> None:
        if self._store is None:
            return
        min_ts = self.clock() - self.retention_seconds()
        await self._in_store(self._store.prune, min_ts, self.settings.retention_rows)

    # ------------------------------------------------------------------ configuration

    async def put_config(self, key: ModelKey, config: ModelConfig) -> None:
        self.core.set_config(key, config)
        self.configured.add(key)
        assert self._store is not None
        await self._in_store(self._store.put_config, *key, config.model_dump_json(by_alias=True))

    # ------------------------------------------------------------------ restart

    async def _restore(self) -> None:
        store = self._store
        assert store is not None
        for namespace, model, raw in await self._in_store(store.configs):
            self.core.set_config((namespace, model), ModelConfig.model_validate_json(raw))
            self.configured.add((namespace, model))
        for row in await self._in_store(store.bad_inputs):
            key = (row.namespace, row.model, row.reason)
            self.core.bad[key] = BadCount(row.count, row.last_message, row.last_ts)
        for namespace, model, slot, result, alarm in await self._in_store(store.drift_rows):
            state = self.core.model((namespace, model))
            assert state is not None
            state.drift[slot] = json.loads(result)
            state.alarm_state[slot] = json.loads(alarm)
        for namespace, model, slot, entry in await self._in_store(store.history_rows):
            state = self.core.model((namespace, model))
            assert state is not None
            self._history(state, slot).append(json.loads(entry))
        for namespace, model, version, captured_at, blob in await self._in_store(store.baselines):
            from services.monitor.drift.suite import ScoreBaseline

            scores = np.frombuffer(blob, dtype=np.float64).copy()
            self.drift_suite.baselines[(namespace, model, version)] = ScoreBaseline(
                captured_at, scores
            )
        # Labels first: open ones wait again, so the replayed predictions can join them.
        await self.outcomes.restore()
        since = self.clock() - self.retention_seconds()
        rows = await self._in_store(lambda: list(store.journal(since)))
        replayed = self._replay(rows)
        self.core.expire(self.clock())
        self.outcomes.join.expire(self.clock())
        log.info("monitor restored %d journaled events", replayed)

    def _replay(self, rows: list[tuple[Any, ...]]) -> int:
        self.core.replaying = True
        try:
            for row in rows:
                ts, kind, ns, model, version, role, event_id, isvc, status, latency, data, cid = row
                env = Envelope(
                    kind, event_id, ns, model, version, role, isvc, status, latency, data,
                    correlation_id=cid or event_id,
                )  # fmt: skip
                self.core.expire(ts)
                try:
                    self.core.ingest(env, ts)
                except BadEvent:
                    continue
        finally:
            self.core.replaying = False
        return len(rows)

    # ------------------------------------------------------------------ drift hook

    @property
    def drift_suite(self) -> ModelDriftSuite:
        """The built-in checks, built when a model first has a drift or skew config (or a
        baseline to restore): the drift package costs ~130 MiB of pandas and SciPy, which a
        monitor that only pairs and counts never needs."""
        with self._drift_suite_lock:  # the event loop and the drift thread both ask
            if self._drift_suite is None:
                from services.monitor.drift.references import ReferenceCache
                from services.monitor.drift.suite import ModelDriftSuite

                cache = ReferenceCache(self.settings.mlflow_tracking_uri)
                self._drift_suite = ModelDriftSuite(cache, self.settings.drift_interval_s)
            return self._drift_suite

    def evaluators_for(self, config: ModelConfig) -> list[DriftEvaluator]:
        """The built-in checks run for models with a ``drift`` config, the skew check for
        models with ``skew``; extras always."""
        builtin = self.drift_suite.evaluators if config.drift is not None else []
        skew = [self.drift_suite.skew] if config.skew is not None else []
        return [*builtin, *skew, *self.drift_evaluators]

    async def evaluate_drift(self, only: ModelKey | None = None) -> int:
        """Run every evaluator on every version window; returns evaluations done."""
        now = self.clock()
        done = 0
        for key, state in list(self.core.models.items()):
            if only is not None and key != only:
                continue
            evaluators = self.evaluators_for(state.config)
            if not evaluators:
                continue
            for version in list(state.versions):
                snapshot = self.core.snapshot(key, version, now)
                if snapshot is None or not _has_data(snapshot):
                    continue
                done += await self._evaluate_version(key, snapshot, evaluators, now)
        await self._persist_baselines()
        return done

    async def _evaluate_version(
        self,
        key: ModelKey,
        snapshot: WindowSnapshot,
        evaluators: list[DriftEvaluator],
        now: float,
    ) -> int:
        state = self.core.model(key)
        assert state is not None
        loop = asyncio.get_running_loop()
        recorded: list[str] = []
        for evaluator in evaluators:
            slot = f"{snapshot.version}/{evaluator.name}"
            alarm = dict(state.alarm_state.get(slot, {}))
            outcome = await loop.run_in_executor(
                self._drift_thread, _safe_evaluate, evaluator, snapshot, alarm
            )
            if outcome is None:
                self.drift_failures += 1
                continue
            await self._record_drift(key, slot, outcome, now)
            recorded.append(slot)
        # After all checks of the version, so the onset snapshot shows this round's results.
        feature_slot = f"{snapshot.version}/{FEATURE}"
        if feature_slot in recorded and state.alarm_state[feature_slot].get("changed"):
            await self._on_alarm_change(key, snapshot, feature_slot, now)
        return len(recorded)

    async def _on_alarm_change(
        self, key: ModelKey, snapshot: WindowSnapshot, slot: str, now: float
    ) -> None:
        """Onset: snapshot the report so the alarm's evidence outlives the window. Clear:
        the version no longer points at a report."""
        state = self.core.model(key)
        assert state is not None and self._store is not None
        alarm = dict(state.alarm_state[slot])
        alarm.pop("reportId", None)
        if alarm.get("isDrift"):
            report = await self._report_input(key, snapshot.version, now, snapshot=True)
            loop = asyncio.get_running_loop()
            html = await loop.run_in_executor(self._drift_thread, self._render, report, snapshot)
            report_id = uuid.uuid4().hex
            await self._in_store(self._store.put_report, report_id, *key, snapshot.version,
                                 now, html)  # fmt: skip
            await self._in_store(self._store.prune_reports, _MAX_REPORTS)
            alarm["reportId"] = report_id
        state.alarm_state[slot] = alarm
        await self._in_store(
            self._store.put_drift,
            *key,
            slot,
            json.dumps(state.drift[slot], default=float),
            json.dumps(alarm, default=float),
            now,
        )

    async def _record_drift(
        self, key: ModelKey, slot: str, outcome: DriftOutcome, now: float
    ) -> None:
        state = self.core.model(key)
        assert state is not None and self._store is not None
        result = {**outcome.result, "isDrift": outcome.is_drift, "checkedAt": now}
        state.drift[slot] = result
        state.alarm_state[slot] = outcome.alarm_state
        await self._in_store(
            self._store.put_drift,
            *key,
            slot,
            json.dumps(result, default=float),
            json.dumps(outcome.alarm_state, default=float),
            now,
        )
        if _is_assessment(outcome.result):
            from services.monitor.drift.report import history_entry

            entry = history_entry(outcome.result, outcome.is_drift, now)
            self._history(state, slot).append(entry)
            await self._in_store(self._store.add_history, *key, slot, now,
                                 json.dumps(entry, default=float), self.settings.drift_history)  # fmt: skip

    def _history(self, state: ModelState, slot: str) -> deque[dict[str, Any]]:
        history = state.history.get(slot)
        if history is None:
            history = state.history[slot] = deque(maxlen=self.settings.drift_history)
        return history

    async def _persist_baselines(self) -> None:
        assert self._store is not None
        if self._drift_suite is None:
            return  # no model has asked for drift: no baseline captured
        for (namespace, model, version), baseline in self._drift_suite.drain_captured():
            blob = baseline.scores.astype(np.float64).tobytes()
            await self._in_store(self._store.put_baseline, namespace, model, version,
                                 baseline.captured_at, blob)  # fmt: skip

    # ------------------------------------------------------------------ drift views

    def drift_versions(self, key: ModelKey) -> dict[str, Any]:
        """``versions`` of ``GET .../drift``: every version with a window or a result."""
        state = self.core.model(key, create=False)
        if state is None or (state.config.drift is None and state.config.skew is None):
            return {}
        from services.monitor.drift.report import version_view

        config = state.config.drift or DriftConfig()
        versions = dict.fromkeys(state.versions)
        versions.update(dict.fromkeys(slot.rpartition("/")[0] for slot in state.drift))
        return {
            version: version_view(
                *key,
                version,
                state.drift,
                state.alarm_state,
                config.detector,
                config.p_value,
                skew=state.config.skew is not None,
            )
            for version in versions
        }

    async def live_report(self, key: ModelKey, version: str) -> str:
        """The report of the version's current window; KeyError when nothing is known."""
        state = self.core.model(key, create=False)
        if state is None:
            raise KeyError(f"no events or config for model {key[0]}/{key[1]}")
        if version not in self.drift_versions(key):
            raise KeyError(f"no drift data for version {version!r} of {key[0]}/{key[1]}")
        now = self.clock()
        window = self.core.snapshot(key, version, now)
        report = await self._report_input(key, version, now, snapshot=False)
        loop = asyncio.get_running_loop()
        return str(await loop.run_in_executor(self._drift_thread, self._render, report, window))

    async def report_snapshot(self, report_id: str) -> str | None:
        assert self._store is not None
        html: str | None = await self._in_store(self._store.report, report_id)
        return html

    async def _report_input(
        self, key: ModelKey, version: str, now: float, snapshot: bool
    ) -> ReportInput:
        from services.monitor.drift.report import ReportInput

        state = self.core.model(key, create=False)
        assert state is not None
        return ReportInput(
            namespace=key[0],
            model=key[1],
            version=version,
            view=self.drift_versions(key)[version],
            generated_at=now,
            history=list(state.history.get(f"{version}/{FEATURE}", ())),
            snapshot=snapshot,
            quality_html=await self.outcomes.report_html(key),
        )

    def _render(self, report: ReportInput, window: WindowSnapshot | None) -> str:
        """Runs on the drift thread: loads the reference (cached) and draws the page."""
        from services.monitor.drift.report import render_report
        from services.monitor.drift.suite import checked_features

        if window is not None and window.config.drift is not None:
            reference, problem = self.drift_suite.reference(window)
            if reference is not None:
                report.reference = reference
                report.features = checked_features(window.config.drift, reference)
                report.window = window_frame(window, report.features)
            elif problem:
                report.view = {**report.view, "message": report.view["message"] or problem}
        return render_report(report)


def build_auth(settings: AuthSettings, data_dir: Path, clock: Callable[[], float]) -> MonitorAuth:
    """The authenticator: the embedded token (given, read from a file, or made and written to
    ``<data-dir>/token`` 0600 so an unconfigured monitor is closed) and, with ``kubernetes``,
    the TokenReview/SubjectAccessReview client."""
    token: str | None = None
    if settings.enabled:
        if settings.token is not None:
            token = settings.token.get_secret_value()
        elif settings.token_file is not None:
            token = settings.token_file.read_text().strip() or None
            if token is None:
                raise ValueError(f"token file {settings.token_file} is empty")
        elif not settings.kubernetes:
            token = ensure_token(data_dir / "token")
    reviewer = None
    if settings.enabled and settings.kubernetes:
        from services.monitor.auth import kube

        target = (
            kube.from_kubeconfig(settings.kubeconfig)
            if settings.kubeconfig is not None
            else kube.in_cluster()
        )
        reviewer = kube.KubeReviewer(target, settings.audience)
    return MonitorAuth(settings, clock, token, reviewer)


def _has_data(snapshot: WindowSnapshot) -> bool:
    return bool(snapshot.features.size + snapshot.scores.size or snapshot.served)


def _is_assessment(result: dict[str, Any]) -> bool:
    """A real check, not a skipped, failed or rejected window (those stay out of history)."""
    return not any(key in result for key in ("skipped", "error", "rejected"))


def window_frame(window: WindowSnapshot, features: list[str]) -> pd.DataFrame | None:
    """The snapshot's feature rows with their names (None when they cannot be named)."""
    import pandas as pd

    names = window.feature_names
    if window.features.size == 0:
        return None
    if names is None or len(names) != window.features.shape[1]:
        if len(features) != window.features.shape[1]:
            return None
        names = features
    return pd.DataFrame(window.features, columns=list(names))


def _safe_evaluate(
    evaluator: DriftEvaluator, snapshot: WindowSnapshot, alarm: dict[str, Any]
) -> DriftOutcome | None:
    try:
        return evaluator.evaluate(snapshot, alarm)
    except Exception:
        log.exception(
            "drift evaluator %s failed on %s/%s", evaluator.name, snapshot.model, snapshot.version
        )
        return None


def tune_gc() -> None:
    """The garbage collector's settings for a monitor process, once it has started.

    Ingest allocates a few dozen short-lived objects per event, so at the default threshold
    (700) a young collection ran every ~20 events and a full one, walking every object the
    imports and the service made, every few seconds at 15,000 events/s. Freezing what exists
    at start takes those objects out of every later collection (they live as long as the
    process anyway), and a larger young generation lets most per-event objects be freed by
    their reference counts before a collection looks at them. Cycles are still collected.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def run_forever(settings: MonitorSettings) -> None:
    """Serve until SIGTERM/SIGINT, then flush the journal and exit cleanly."""
    import signal

    service = MonitorService(settings)
    await service.start()
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"kubeloop monitor: API {service.url}, events {service.ingest_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()
