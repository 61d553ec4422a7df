"""The monitor service: owns the core, the SQLite store, background loops and drift hooks.

The HTTP shell (``api.py``) calls into this; all core mutations happen on the event loop's
thread, the store works on its own single thread, detectors on another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.monitor.config import ModelConfig, MonitorSettings
from services.monitor.core import BadCount, ModelKey, MonitorCore
from services.monitor.fast_ingest import IngestListener, start_ingest_listener
from services.monitor.hooks import DriftEvaluator, DriftOutcome, WindowSnapshot
from services.monitor.metrics import MonitorCollector
from services.monitor.parsing import BadEvent, Envelope
from services.monitor.store import BadInputRow, EventRow, MonitorStore, event_row

log = logging.getLogger(__name__)


class MonitorService:
    """Start/stop API used by ``python -m services.monitor``, tests and ``kubeloop up``."""

    def __init__(
        self,
        settings: MonitorSettings,
        drift_evaluators: Sequence[DriftEvaluator] = (),
        clock: Callable[[], float] = time.time,
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        """``extra_routes`` lets the drift package serve its reports from the same app."""
        self.settings = settings
        self.extra_routes = list(extra_routes)
        self.clock = clock
        self.core = MonitorCore(settings.limits)
        self.drift_evaluators = list(drift_evaluators)
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
        self._drift_thread = ThreadPoolExecutor(1, thread_name_prefix="monitor-drift")
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

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

        self._store = await self._in_store(MonitorStore, self.settings.db_path)
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
        self._spawn(self._every(self.settings.flush_interval_s, self.flush))
        self._spawn(self._every(self.settings.expiry_interval_s, self._expire))
        self._spawn(self._every(self.settings.prune_interval_s, self._prune))
        if self.drift_evaluators:
            self._spawn(self._every(self.settings.drift_interval_s, self.evaluate_drift))
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
        if self._store is not None:
            await self.flush()
            await self._in_store(self._store.close)
            self._store = None
        self._store_thread.shutdown(wait=True)
        self._drift_thread.shutdown(wait=False, cancel_futures=True)

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
        """Accepted events not yet committed to SQLite (queued or being written)."""
        return len(self._journal) + self._writing

    async def flush(self) -> None:
        """Write journaled events and bad-input deltas in one transaction."""
        if self._store is None or not (self._journal or self.core.bad_dirty):
            return
        events, self._journal = self._journal, []
        dirty, self.core.bad_dirty = self.core.bad_dirty, {}
        bad = [
            BadInputRow(*key, delta, self.core.bad[key].last_message, self.core.bad[key].last_ts)
            for key, delta in dirty.items()
        ]
        self._writing = len(events)
        try:
            await self._in_store(self._store.write_batch, events, bad)
        except Exception:
            self.journal_dropped += len(events)  # reported on /healthz; the loop logs it
            raise
        finally:
            self._writing = 0

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
        assert self._store is not None
        await self._in_store(self._store.put_config, *key, config.model_dump_json(by_alias=True))

    # ------------------------------------------------------------------ restart

    async def _restore(self) -> None:
        store = self._store
        assert store is not None
        for namespace, model, raw in await self._in_store(store.configs):
            self.core.set_config((namespace, model), ModelConfig.model_validate_json(raw))
        for row in await self._in_store(store.bad_inputs):
            key = (row.namespace, row.model, row.reason)
            self.core.bad[key] = BadCount(row.count, row.last_message, row.last_ts)
        for namespace, model, slot, result, alarm in await self._in_store(store.drift_rows):
            state = self.core.model((namespace, model))
            assert state is not None
            state.drift[slot] = json.loads(result)
            state.alarm_state[slot] = json.loads(alarm)
        since = self.clock() - self.retention_seconds()
        rows = await self._in_store(lambda: list(store.journal(since)))
        replayed = self._replay(rows)
        self.core.expire(self.clock())
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

    async def evaluate_drift(self) -> int:
        """Run every evaluator on every version window; returns evaluations done."""
        now = self.clock()
        loop = asyncio.get_running_loop()
        done = 0
        for key, state in list(self.core.models.items()):
            for version in list(state.versions):
                snapshot = self.core.snapshot(key, version, now)
                if snapshot is None or snapshot.features.size + snapshot.scores.size == 0:
                    continue
                for evaluator in self.drift_evaluators:
                    slot = f"{version}/{evaluator.name}"
                    alarm = dict(state.alarm_state.get(slot, {}))
                    outcome = await loop.run_in_executor(
                        self._drift_thread, _safe_evaluate, evaluator, snapshot, alarm
                    )
                    if outcome is None:
                        self.drift_failures += 1
                        continue
                    await self._record_drift(key, slot, outcome, now)
                    done += 1
        return done

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


async def run_forever(settings: MonitorSettings) -> None:
    """Serve until SIGTERM/SIGINT, then flush the journal and exit cleanly."""
    import signal

    service = MonitorService(settings)
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"kubeloop monitor: API {service.url}, events {service.ingest_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()
