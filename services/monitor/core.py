"""The monitor's state machine: envelopes in, bounded windows and figures out. No I/O.

Time is always passed in (``now``), so a replay of the journal after a restart walks the
same code with the original receive times and rebuilds exactly the same windows.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from services.monitor import cloudevents_spec as ce
from services.monitor import windows as w
from services.monitor.config import Limits, ModelConfig, SkewConfig
from services.monitor.hooks import WindowSnapshot
from services.monitor.parsing import (
    KIND_REQUEST,
    BadEvent,
    Envelope,
    Features,
    PayloadProblem,
    Scores,
    decode_json,
    request_features,
    response_scores,
)
from services.monitor.served import ServedRow, served_ring, split_entities

ModelKey = tuple[str, str]  # (namespace, MLModel name)
PendingKey = tuple[str, str, str, str]  # (namespace, model, version, request id)
ShadowKey = tuple[str, str, str]  # (namespace, model, request id)


@dataclass(slots=True)
class PendingHalf:
    """The request or the response of one call, waiting for its other half."""

    kind: str
    ts: float
    deadline: float
    role: str
    status: int | None = None
    latency_ms: float | None = None
    features: Features | None = None
    scores: Scores | None = None
    rows: int = 0
    served: list[ServedRow] | None = None  # rows with an entity (models with ``skew``)
    request_id: str = ""  # correlation id (X-Request-Id) or ce-id


class ServedPrediction(NamedTuple):
    """One completed call as it was served: what the prediction log writes and what labels
    join to. Emitted by the core for every call it records (answered or not), replay included:
    consumers that persist it must be idempotent on ``(namespace, model, version, event_id)``.

    A named tuple rather than a frozen dataclass: as immutable, and made in one C call (a
    frozen dataclass sets its 14 fields one ``object.__setattr__`` at a time, per call).
    """

    namespace: str
    model: str
    version: str
    role: str
    event_id: str
    request_id: str  # the id the application knows: X-Request-Id (correlation id), else ce-id
    served_at: float  # when the request reached the monitor (the response's time without one)
    status: int
    latency_ms: float
    feature_names: list[str] | None
    features: np.ndarray | None  # (rows, d) finite rows of the request; None without a request
    entities: tuple[str, ...]  # entity keys of the rows (models with ``skew``), else empty
    scores: np.ndarray | None  # one score per prediction; None when the call failed
    classes: np.ndarray | None


PredictionSink = Callable[[ServedPrediction], None]


@dataclass(slots=True)
class ShadowHalf:
    """A stable or shadow response waiting for the other side of the mirror."""

    role: str
    version: str
    deadline: float
    scores: Scores


@dataclass(slots=True)
class BadCount:
    count: int = 0
    last_message: str = ""
    last_ts: float = 0.0


@dataclass
class ModelState:
    config: ModelConfig
    versions: OrderedDict[str, w.VersionWindow] = field(default_factory=OrderedDict)
    last_shadow_ts: float = -math.inf
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)  # "version/evaluator"
    alarm_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per slot, the last evaluations (bounded by the service's drift_history setting).
    history: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)


class MonitorCore:
    """All windows, pairing tables and bad-input counters of one monitor."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.models: dict[ModelKey, ModelState] = {}
        self.pending: OrderedDict[PendingKey, PendingHalf] = OrderedDict()
        self.shadow_pending: OrderedDict[ShadowKey, ShadowHalf] = OrderedDict()
        self.bad: dict[tuple[str, str, str], BadCount] = {}
        self.bad_dirty: dict[tuple[str, str, str], int] = {}
        self.events_total: dict[str, int] = {"request": 0, "response": 0}
        # While the journal is replayed after a restart, bad input is not counted again:
        # its counters were persisted when it first arrived.
        self.replaying = False
        # Receives every completed call (prediction log, label join); set by the service.
        self.prediction_sinks: list[PredictionSink] = []

    # ------------------------------------------------------------------ configuration

    def model(self, key: ModelKey, create: bool = True) -> ModelState | None:
        state = self.models.get(key)
        if state is None and create:
            if len(self.models) >= self.limits.max_models:
                raise BadEvent("too_many_models", f"more than {self.limits.max_models} models")
            state = self.models[key] = ModelState(config=ModelConfig())
        return state

    def set_config(self, key: ModelKey, config: ModelConfig) -> None:
        state = self.model(key)
        assert state is not None
        same_rows = _same_served_rows(state.config.skew, config.skew)
        state.config = config
        for window in state.versions.values():
            if window.capacity != config.window_size:
                window.resize(config.window_size)
            if config.skew is None or not same_rows:
                window.served = None  # rows kept under other keys/columns would not compare
            elif window.served is not None and window.served.maxlen != config.skew.max_rows:
                window.served = served_ring(config.skew, window.served)

    # ------------------------------------------------------------------ bad input

    def count_bad(self, namespace: str, model: str, reason: str, message: str, now: float) -> None:
        if self.replaying:
            return
        key = (namespace, model, reason)
        entry = self.bad.setdefault(key, BadCount())
        entry.count += 1
        entry.last_message = message[:300]
        entry.last_ts = now
        self.bad_dirty[key] = self.bad_dirty.get(key, 0) + 1

    # ------------------------------------------------------------------ ingestion

    def ingest(self, env: Envelope, now: float) -> str | None:
        """Record one event; returns the payload problem's reason, if any.

        Raises :class:`BadEvent` when the monitor's own bounds refuse the event.
        """
        # The known model and version without a call each (this runs per event).
        state = self.models.get((env.namespace, env.model)) or self.model(
            (env.namespace, env.model)
        )
        assert state is not None
        window = state.versions.get(env.version)
        if window is None:
            window = self._window(state, env.version)
        else:
            state.versions.move_to_end(env.version)
        role = env.role or _role_from_config(state.config, env.version)
        window.role = role
        window.last_event_ts = now
        self.events_total[env.kind] += 1
        if role == ce.ROLE_SHADOW:
            state.last_shadow_ts = now
        half, problem = self._half(env, role, state.config, now)
        if problem is not None:
            self.count_bad(env.namespace, env.model, problem.reason, problem.message, now)
        key = (env.namespace, env.model, env.version, env.event_id)
        self._match_call(key, half, state, now)
        status = half.status
        if env.kind != KIND_REQUEST and half.rows and (status is None or 200 <= status < 300):
            self._match_shadow(env, role, half, state, now)
        return problem.reason if problem is not None else None

    def _window(self, state: ModelState, version: str) -> w.VersionWindow:
        window = state.versions.get(version)
        if window is None:
            if len(state.versions) >= self.limits.max_versions_per_model:
                state.versions.popitem(last=False)  # the least recently active version
            window = state.versions[version] = w.VersionWindow(
                version=version, capacity=state.config.window_size
            )
        else:
            state.versions.move_to_end(version)
        return window

    def _half(
        self, env: Envelope, role: str, config: ModelConfig, now: float
    ) -> tuple[PendingHalf, PayloadProblem | None]:
        half = PendingHalf(  # positional, in field order: cheaper per event than keywords
            env.kind,
            now,
            now + config.pairing_timeout_seconds,
            role,
            env.status,
            env.latency_ms,
            request_id=env.correlation_id or env.event_id,
        )
        try:
            if env.kind == KIND_REQUEST:
                data = env.data
                if config.skew is not None:
                    body = decode_json(data, PayloadProblem)
                    data, half.served = split_entities(body, config.skew, now)
                half.features = request_features(data, self.limits)
                half.rows = half.features.rows.shape[0] + half.features.dropped_rows
                if half.features.dropped_rows:
                    return half, PayloadProblem(
                        "nan", f"{half.features.dropped_rows} row(s) with NaN/inf dropped"
                    )
            elif _is_success(env.status):
                half.scores = response_scores(env.data, self.limits)
                half.rows = half.scores.scores.shape[0]
        except PayloadProblem as problem:
            return half, problem
        return half, None

    def _match_call(
        self, key: PendingKey, half: PendingHalf, state: ModelState, now: float
    ) -> None:
        other = self.pending.get(key)
        if other is None:
            if len(self.pending) >= self.limits.max_pending:
                old_key, old = self.pending.popitem(last=False)
                self._complete_alone(old_key, old, now)
                self.count_bad(old_key[0], old_key[1], "pending_overflow", "evicted", now)
            self.pending[key] = half
            return
        if other.kind == half.kind:
            self.count_bad(key[0], key[1], "duplicate_event", f"{half.kind} id {key[3]}", now)
            return
        del self.pending[key]
        request, response = (half, other) if half.kind == KIND_REQUEST else (other, half)
        self._record_call(state, key, request, response, now)

    def _record_call(
        self,
        state: ModelState,
        key: PendingKey,
        request: PendingHalf | None,
        response: PendingHalf | None,
        now: float,
    ) -> None:
        window = state.versions.get(key[2])
        scores = response.scores if response is not None else None
        if window is None:  # evicted meanwhile
            return
        status = response.status if response is not None else w.STATUS_UNANSWERED
        status = status if status is not None else 200
        latency = math.nan
        if response is not None:
            latency = response.latency_ms if response.latency_ms is not None else math.nan
            if math.isnan(latency) and request is not None:
                latency = max(0.0, (response.ts - request.ts) * 1000.0)
        rows = request.rows if request is not None else (response.rows if response else 0)
        window.requests.append(now, status, latency, rows)  # ts, status, latency_ms, rows
        client_error = 400 <= status < 500
        skew = state.config.skew
        if request is not None and request.served and skew is not None and not client_error:
            if window.served is None:
                window.served = served_ring(skew)
            window.served.extend(request.served)
        if request is not None and request.features is not None and not client_error:
            self._record_features(key, window, state.config, request.features, now)
        if scores is not None:
            count = scores.scores.shape[0]
            if count == 1:  # the usual call: one prediction
                cls = scores.classes[0] if scores.classes is not None else -1
                window.scores.append(now, scores.scores[0], cls)  # ts, score, cls
            else:
                classes = scores.classes if scores.classes is not None else -1
                window.scores.extend(count, ts=now, score=scores.scores, cls=classes)
        if self.prediction_sinks:
            self._emit(key, window.role, request, response, status, latency)

    def _emit(
        self,
        key: PendingKey,
        role: str,
        request: PendingHalf | None,
        response: PendingHalf | None,
        status: int,
        latency: float,
    ) -> None:
        first = request if request is not None else response
        assert first is not None
        features = request.features if request is not None else None
        scores = response.scores if response is not None else None
        served = request.served if request is not None and request.served else ()
        namespace, model, version, event_id = key
        prediction = ServedPrediction(  # positional, in field order
            namespace,
            model,
            version,
            role,
            event_id,
            first.request_id or event_id,
            first.ts,
            status,
            latency,
            features.names if features is not None else None,
            features.rows if features is not None else None,
            tuple([row.entity for row in served]) if served else (),
            scores.scores if scores is not None else None,
            scores.classes if scores is not None else None,
        )
        for sink in self.prediction_sinks:
            sink(prediction)

    def _record_features(
        self,
        key: PendingKey,
        window: w.VersionWindow,
        config: ModelConfig,
        features: Features,
        now: float,
    ) -> None:
        rows = features.rows
        if window.features is None:
            window.features = w.feature_ring(window.capacity, rows.shape[1])
            window.feature_nulls = w.null_ring(window.capacity, rows.shape[1])
            window.feature_names = features.names or config.feature_names or None
        (width,) = window.features.row_shape("x")
        if rows.shape[1] != width:
            # A window never mixes feature layouts: the odd rows are counted, not kept.
            message = f"{rows.shape[1]} features, window has {width}"
            self.count_bad(key[0], key[1], "feature_count_mismatch", message, now)
            return
        count = rows.shape[0]
        if window.feature_nulls is not None:  # per request: ts, rows seen, nulls per feature
            nulls = features.null_counts if features.null_counts is not None else 0
            window.feature_nulls.append(now, count + features.dropped_rows, nulls)
        if count == 1:  # the usual call: one row
            window.features.append(now, rows[0])  # ts, x
        elif count:
            window.features.extend(count, ts=now, x=rows)

    def _complete_alone(self, key: PendingKey, half: PendingHalf, ts: float) -> None:
        """A half whose partner never came: a request is unanswered, a response stands alone."""
        state = self.models.get((key[0], key[1]))
        if state is None:
            return
        if half.kind == KIND_REQUEST:
            self._record_call(state, key, half, None, ts)
        else:
            self._record_call(state, key, None, half, ts)

    def _match_shadow(
        self,
        env: Envelope,
        role: str,
        half: PendingHalf,
        state: ModelState,
        now: float,
    ) -> None:
        if role not in (ce.ROLE_STABLE, ce.ROLE_SHADOW):
            return
        scores = half.scores
        if scores is None:
            return
        config = state.config
        shadow_live = config.shadow_version is not None or (
            now - state.last_shadow_ts <= config.pairing_timeout_seconds
        )
        if role == ce.ROLE_STABLE and not shadow_live:
            return
        key = (env.namespace, env.model, env.correlation_id or env.event_id)
        other = self.shadow_pending.get(key)
        if other is None or other.role == role:
            if len(self.shadow_pending) >= self.limits.max_pending:
                self.shadow_pending.popitem(last=False)
            self.shadow_pending[key] = ShadowHalf(role, env.version, half.deadline, scores)
            return
        del self.shadow_pending[key]
        stable, shadow = (other, None) if other.role == ce.ROLE_STABLE else (None, other)
        stable_scores = stable.scores if stable else scores
        shadow_scores = shadow.scores if shadow else scores
        shadow_version = shadow.version if shadow else env.version
        stable_version = stable.version if stable else env.version
        if stable_scores.scores.shape != shadow_scores.scores.shape:
            message = f"request {key[2]}: stable and shadow predictions differ in count"
            self.count_bad(env.namespace, env.model, "pair_shape_mismatch", message, now)
            return
        count, gap_sum = w.disagreement(
            (stable_scores.scores, stable_scores.classes),
            (shadow_scores.scores, shadow_scores.classes),
            config.label_threshold,
            config.score_tolerance,
        )
        window = state.versions.get(shadow_version)
        if window is not None:
            window.paired_with = stable_version
            # ts, predictions, disagreements, abs_diff_sum
            window.pairs.append(now, stable_scores.scores.shape[0], count, gap_sum)

    def expire(self, now: float) -> int:
        """Close halves past their deadline; returns how many were closed."""
        closed = 0
        while self.pending:
            key, half = next(iter(self.pending.items()))
            if half.deadline > now:
                break
            del self.pending[key]
            self._complete_alone(key, half, half.deadline)
            closed += 1
        while self.shadow_pending:
            skey, shalf = next(iter(self.shadow_pending.items()))
            if shalf.deadline > now:
                break
            del self.shadow_pending[skey]
        return closed

    # ------------------------------------------------------------------ queries

    def figures(
        self, key: ModelKey, since: float | None, until: float | None, now: float
    ) -> dict[str, Any]:
        def entry(window: w.VersionWindow, since: float, until: float) -> dict[str, Any]:
            return {
                "role": window.role,
                "windowStart": window.requests.oldest_ts(),
                "truncated": _truncated(window.requests, since),
                **w.request_figures(window.requests.select(since, until)),
                **w.pair_figures(window.pairs.select(since, until)),
                "pairedWith": window.paired_with or None,
            }

        return self._per_version(key, since, until, now, entry)

    def counts(
        self,
        key: ModelKey,
        since: float | None,
        until: float | None,
        now: float,
        latency_sample: int,
    ) -> dict[str, Any]:
        def entry(window: w.VersionWindow, since: float, until: float) -> dict[str, Any]:
            requests = window.requests.select(since, until)
            latencies = w.judged_latencies(requests)
            counted: dict[str, Any] = {
                "role": window.role,
                "truncated": _truncated(window.requests, since),
                **w.request_counts(requests),
                "latencyHistogram": w.latency_histogram(latencies),
            }
            if latency_sample > 0:
                counted["latencySampleMs"] = latencies[-latency_sample:].tolist()
            return counted

        return self._per_version(key, since, until, now, entry)

    def _per_version(
        self,
        key: ModelKey,
        since: float | None,
        until: float | None,
        now: float,
        entry: Callable[[w.VersionWindow, float, float], dict[str, Any]],
    ) -> dict[str, Any]:
        """One model's answer over [since, until]: ``entry`` for each of its versions."""
        state = self._known(key)
        since, until = self._interval(state, since, until, now)
        versions = {
            version: entry(window, since, until) for version, window in state.versions.items()
        }
        return self._envelope(key, state, since, until, now, versions)

    def snapshot(self, key: ModelKey, version: str, now: float) -> WindowSnapshot | None:
        state = self.models.get(key)
        window = state.versions.get(version) if state else None
        if state is None or window is None:
            return None
        since = now - state.config.max_age_seconds
        scores = window.scores.select(since, now)
        if window.features is not None:
            rows = window.features.select(since, now)
            feature_ts, features = rows["ts"], rows["x"]
        else:
            feature_ts, features = np.zeros(0), np.zeros((0, 0))
        null_rows, null_counts = 0, None
        if window.feature_nulls is not None:
            nulls = window.feature_nulls.select(since, now)
            null_rows, null_counts = int(nulls["rows"].sum()), nulls["nulls"].sum(axis=0)
        served = tuple(r for r in window.served or () if r.received >= since)
        return WindowSnapshot(
            namespace=key[0],
            model=key[1],
            version=version,
            role=window.role,
            taken_at=now,
            config=state.config,
            feature_names=window.feature_names,
            feature_ts=feature_ts,
            features=features,
            score_ts=scores["ts"],
            scores=scores["score"],
            null_rows=null_rows,
            null_counts=null_counts,
            served=served,
        )

    def bad_input_report(self) -> list[dict[str, Any]]:
        return [
            {
                "namespace": ns,
                "model": model,
                "reason": reason,
                "count": entry.count,
                "lastMessage": entry.last_message,
                "lastAt": entry.last_ts,
            }
            for (ns, model, reason), entry in sorted(self.bad.items())
        ]

    def _known(self, key: ModelKey) -> ModelState:
        state = self.models.get(key)
        if state is None:
            raise KeyError(f"no events or config for model {key[0]}/{key[1]}")
        return state

    @staticmethod
    def _interval(
        state: ModelState, since: float | None, until: float | None, now: float
    ) -> tuple[float, float]:
        oldest = now - state.config.max_age_seconds
        return max(since if since is not None else oldest, oldest), until if until else now

    @staticmethod
    def _envelope(
        key: ModelKey,
        state: ModelState,
        since: float,
        until: float,
        now: float,
        versions: dict[str, Any],
    ) -> dict[str, Any]:
        config = state.config
        return {
            "namespace": key[0],
            "model": key[1],
            "since": since,
            "until": until,
            "now": now,
            "roles": {
                "stable": config.stable_version,
                "candidate": config.candidate_version,
                "shadow": config.shadow_version,
            },
            "versions": versions,
        }


def _same_served_rows(old: SkewConfig | None, new: SkewConfig | None) -> bool:
    if old is None or new is None:
        return False
    return (old.entity_key, old.timestamp_key, list(old.columns)) == (
        new.entity_key,
        new.timestamp_key,
        list(new.columns),
    )


def _is_success(status: int | None) -> bool:
    return status is None or 200 <= status < 300


def _truncated(ring: w.Ring, since: float) -> bool:
    oldest = ring.oldest_ts()
    return ring.size == ring.capacity and oldest is not None and oldest > since


def _role_from_config(config: ModelConfig, version: str) -> str:
    if version == config.stable_version:
        return ce.ROLE_STABLE
    if version == config.shadow_version:
        return ce.ROLE_SHADOW
    if version == config.candidate_version:
        return ce.ROLE_CANDIDATE
    return ce.ROLE_STABLE
