"""The label join: delayed labels meet the predictions served for the same request. Pure.

Predictions come from the monitor core's ``prediction_sinks`` (one :class:`ServedPrediction`
per completed call, replay after a restart included); labels from ``POST .../feedback``
(:mod:`services.monitor.outcomes.feedback`). Both are indexed per model, in bounded memory:

* served predictions by request id (the ``X-Request-Id`` the application knows; the router
  forwards the same id to the shadow, so one label reaches the stable *and* the shadow
  prediction of a mirrored request) and, when the config names an ``entityKey``, by entity;
  each entry lives ``predictionTtlSeconds``, at most ``maxPredictions`` per model;
* labels wait ``labelMaturitySeconds`` from their arrival: a prediction that arrives (its
  served time ≤ the label's deadline) in that time is joined, so a label that comes before
  its prediction, or a shadow prediction logged after the stable one, still counts. A label
  that joined nothing by its deadline is an *orphan*.

A joined (request, version) becomes one :class:`LabeledRow` in the version's window of
labeled requests (``windowSize`` rows, ``maxAgeSeconds`` since labeled). The first label of a
request wins: a second label for the same (version, request, row) is counted as
``relabeled``, never twice. A label's CloudEvent id is its idempotency key: a repeated id is
``duplicate`` and changes nothing.

Time is passed in: labels carry their receive time, predictions their served time, so a
replay of the journals after a restart walks the same code to the same state. Every state
change is also appended to :attr:`LabelJoin.outbox` for the service to journal.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from contracts.monitor_config import OutcomesConfig
from services.monitor.config import ModelConfig
from services.monitor.core import ServedPrediction
from services.monitor.served import entity_key

ModelKey = tuple[str, str]
RowKey = tuple[str, int]  # (request id, row)

#: Label states as journaled: waiting (nothing joined yet), joined (joined, still open for
#: late versions until its deadline), orphan (closed without a join), done (closed, joined).
WAITING, JOINED, ORPHAN, DONE = "waiting", "joined", "orphan", "done"
OPEN_STATES = (WAITING, JOINED)
MAX_ENTITY_HISTORY = 64  # predictions kept per entity (a bound, not a tuning knob)
_DEFAULT = OutcomesConfig()


@dataclass(frozen=True, slots=True)
class Label:
    """One accepted label, as parsed from a feedback event."""

    event_id: str
    request_id: str | None
    entity: str | None
    served_at: float | None  # the application's servedAt (entity labels)
    row: int
    label: int
    observed_at: float
    received_at: float


@dataclass(frozen=True, slots=True)
class LabeledRow:
    """One labeled prediction of one version: what the quality figures are computed on."""

    request_id: str
    row: int
    served_at: float
    score: float
    label: int
    role: str
    observed_at: float
    labeled_at: float
    event_id: str


@dataclass(frozen=True, slots=True)
class RowRecord:
    namespace: str
    model: str
    version: str
    row: LabeledRow


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """A label as first journaled (state waiting or joined)."""

    namespace: str
    model: str
    label: Label
    state: str


@dataclass(frozen=True, slots=True)
class StateRecord:
    namespace: str
    model: str
    event_id: str
    state: str


Record = RowRecord | LabelRecord | StateRecord


@dataclass(slots=True)
class _Served:
    """One served call in the index."""

    version: str
    role: str
    event_id: str
    served_at: float
    scores: np.ndarray
    entities: list[str | None] | None


@dataclass(slots=True)
class _Waiting:
    label: Label
    deadline: float
    joined: tuple[str, ...] = ()  # versions joined so far (a tuple: no set per label)


@dataclass(frozen=True, slots=True)
class VersionRows:
    """A version's labeled rows as columns (oldest labeled first)."""

    request_ids: list[RowKey]
    served_at: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    delays: np.ndarray  # observedAt - served time, seconds (≥ 0)
    labeled_at: np.ndarray  # when each row was labeled (the max age counts from it)

    @property
    def size(self) -> int:
        return int(self.scores.shape[0])


class VersionLabels:
    """The sliding window of one version's labeled requests, keyed by (request id, row)."""

    def __init__(self, version: str, capacity: int) -> None:
        self.version = version
        self.capacity = capacity
        self.role = ""
        self.rows: OrderedDict[RowKey, LabeledRow] = OrderedDict()
        self.revision = 0  # bumped on every change (caches of computed figures key on it)

    def add(self, row: LabeledRow) -> bool:
        key = (row.request_id, row.row)
        if key in self.rows:
            return False
        self.rows[key] = row
        self.role = row.role
        while len(self.rows) > self.capacity:
            self.rows.popitem(last=False)
        self.revision += 1
        return True

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        while len(self.rows) > capacity:
            self.rows.popitem(last=False)
        self.revision += 1

    def select(self, now: float, max_age: float, since: float | None = None) -> VersionRows:
        oldest = now - max_age
        kept = [
            r
            for r in self.rows.values()
            if r.labeled_at >= oldest and (since is None or r.served_at >= since)
        ]
        served = np.fromiter((r.served_at for r in kept), np.float64, len(kept))
        observed = np.fromiter((r.observed_at for r in kept), np.float64, len(kept))
        labeled = np.fromiter((r.labeled_at for r in kept), np.float64, len(kept))
        return VersionRows(
            request_ids=[(r.request_id, r.row) for r in kept],
            served_at=served,
            scores=np.fromiter((r.score for r in kept), np.float64, len(kept)),
            labels=np.fromiter((r.label for r in kept), np.int64, len(kept)),
            # Clocks of the application and the monitor differ: a negative delay is 0.
            delays=np.maximum(observed - served, 0.0),
            labeled_at=labeled,
        )


@dataclass
class ModelLabels:
    """Everything the join keeps for one model."""

    config: ModelConfig
    by_request: OrderedDict[str, list[_Served]] = field(default_factory=OrderedDict)
    by_entity: dict[str, deque[tuple[float, str, int]]] = field(default_factory=dict)
    waiting: OrderedDict[str, _Waiting] = field(default_factory=OrderedDict)
    waiting_by_request: dict[str, list[_Waiting]] = field(default_factory=dict)
    waiting_by_entity: dict[str, list[_Waiting]] = field(default_factory=dict)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    windows: OrderedDict[str, VersionLabels] = field(default_factory=OrderedDict)
    restored: dict[str, set[str]] = field(default_factory=dict)  # label id -> versions
    orphan_times: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("accepted", "duplicate", "joined", "orphan", "relabeled", "pendingOverflow"), 0
        )
    )

    @property
    def outcomes(self) -> OutcomesConfig:
        return self.config.outcomes or _DEFAULT

    def pending(self) -> int:
        """Labels that joined nothing yet and are still waiting."""
        return sum(1 for w in self.waiting.values() if not w.joined)


class LabelJoin:
    """The label join of every model of one monitor."""

    def __init__(self, max_versions_per_model: int = 16) -> None:
        self.max_versions = max_versions_per_model
        self.models: dict[ModelKey, ModelLabels] = {}
        self.outbox: list[Record] = []

    # ------------------------------------------------------------------ configuration

    def model(self, key: ModelKey, config: ModelConfig) -> ModelLabels:
        """The model's state, (re)configured when ``config`` is a new object."""
        state = self.models.get(key)
        if state is None:
            state = self.models[key] = ModelLabels(config=config)
        elif state.config is not config:
            state.config = config
            for window in state.windows.values():
                if window.capacity != state.outcomes.window_size:
                    window.resize(state.outcomes.window_size)
        return state

    def _window(self, state: ModelLabels, version: str) -> VersionLabels:
        window = state.windows.get(version)
        if window is None:
            if len(state.windows) >= self.max_versions:
                state.windows.popitem(last=False)  # the version labeled least recently
            window = state.windows[version] = VersionLabels(version, state.outcomes.window_size)
        else:
            state.windows.move_to_end(version)
        return window

    # ------------------------------------------------------------------ predictions

    def on_prediction(self, prediction: ServedPrediction, config: ModelConfig) -> int:
        """Index one served call and join the labels waiting for it; returns rows joined."""
        if prediction.scores is None or not 200 <= prediction.status < 300:
            return 0  # nothing was predicted: a label for it stays an orphan
        key = (prediction.namespace, prediction.model)
        state = self.model(key, config)
        outcomes = state.config.outcomes  # no entity key (the usual case): no call per call
        has_key = outcomes is not None and outcomes.entity_key is not None
        entities = _entities(prediction, state.config) if has_key else None
        served = _Served(
            prediction.version,
            prediction.role,
            prediction.event_id,
            prediction.served_at,
            prediction.scores,
            entities,
        )
        entries = state.by_request.get(prediction.request_id)
        if entries is None:
            entries = state.by_request[prediction.request_id] = []
        elif any(e.version == served.version and e.event_id == served.event_id for e in entries):
            return 0  # re-emitted (journal replay): indexed and joined already
        entries.append(served)
        if entities is not None:
            for row, entity in enumerate(entities):
                if entity is not None:
                    history = state.by_entity.get(entity)
                    if history is None:
                        history = state.by_entity[entity] = deque(maxlen=MAX_ENTITY_HISTORY)
                    history.append((served.served_at, prediction.request_id, row))
        self._evict_predictions(state, served.served_at)
        joined = 0
        waiting_for_it = state.waiting_by_request.get(prediction.request_id)
        for waiting in list(waiting_for_it) if waiting_for_it else ():  # usually none wait
            joined += self._join(key, state, waiting, prediction.request_id, served)
        if entities is not None and state.waiting_by_entity:
            tolerance = state.outcomes.served_at_tolerance_seconds
            for row, entity in enumerate(entities):
                for waiting in list(state.waiting_by_entity.get(entity or "", ())):
                    claimed = waiting.label.served_at
                    if claimed is not None and abs(served.served_at - claimed) <= tolerance:
                        joined += self._join(
                            key, state, waiting, prediction.request_id, served, row
                        )
        return joined

    def _evict_predictions(self, state: ModelLabels, now: float) -> None:
        oldest = now - state.outcomes.prediction_ttl_seconds
        limit = state.outcomes.max_predictions
        while state.by_request:
            request_id, entries = next(iter(state.by_request.items()))
            if len(state.by_request) <= limit and entries[0].served_at >= oldest:
                break
            del state.by_request[request_id]
            for served in entries:
                _forget_entities(state, request_id, served.entities or ())

    # ------------------------------------------------------------------ labels

    def on_label(self, key: ModelKey, config: ModelConfig, label: Label) -> bool:
        """Record one label; False when its event id was seen already (idempotent)."""
        state = self.model(key, config)
        if label.event_id in state.seen:
            state.counts["duplicate"] += 1
            return False
        self._remember(state, label.event_id)
        state.counts["accepted"] += 1
        waiting = _Waiting(label, label.received_at + state.outcomes.label_maturity_seconds)
        for request_id, row, served in self._predictions_for(state, label):
            self._join(key, state, waiting, request_id, served, row, journal=False)
        self.outbox.append(
            LabelRecord(key[0], key[1], label, JOINED if waiting.joined else WAITING)
        )
        self._wait(key, state, waiting)
        return True

    def _remember(self, state: ModelLabels, event_id: str) -> None:
        state.seen[event_id] = None
        # Duplicates are recognised among the last maxPendingLabels label ids per model.
        while len(state.seen) > state.outcomes.max_pending_labels:
            state.seen.popitem(last=False)

    def _predictions_for(
        self, state: ModelLabels, label: Label
    ) -> Iterable[tuple[str, int, _Served]]:
        if label.request_id is not None:
            for served in state.by_request.get(label.request_id, ()):
                yield label.request_id, label.row, served
            return
        assert label.entity is not None and label.served_at is not None
        tolerance = state.outcomes.served_at_tolerance_seconds
        best: dict[str, tuple[float, str, int, _Served]] = {}  # per version: the closest
        for served_at, request_id, row in state.by_entity.get(label.entity, ()):
            gap = abs(served_at - label.served_at)
            if gap > tolerance:
                continue
            for served in state.by_request.get(request_id, ()):
                if served.served_at == served_at and (
                    served.version not in best or gap < best[served.version][0]
                ):
                    best[served.version] = (gap, request_id, row, served)
        for _, request_id, row, served in best.values():
            yield request_id, row, served

    def _wait(self, key: ModelKey, state: ModelLabels, waiting: _Waiting) -> None:
        label = waiting.label
        state.waiting[label.event_id] = waiting
        if label.request_id is not None:
            state.waiting_by_request.setdefault(label.request_id, []).append(waiting)
        elif label.entity is not None:
            state.waiting_by_entity.setdefault(label.entity, []).append(waiting)
        while len(state.waiting) > state.outcomes.max_pending_labels:
            _, oldest = state.waiting.popitem(last=False)
            if not oldest.joined:  # a joined one only stops waiting for late versions
                state.counts["pendingOverflow"] += 1
            self._close(key, state, oldest, oldest.label.received_at)

    def _join(
        self,
        key: ModelKey,
        state: ModelLabels,
        waiting: _Waiting,
        request_id: str,
        served: _Served,
        row: int | None = None,
        journal: bool = True,
    ) -> int:
        """Join ``waiting`` to one served call; 1 when a labeled row was added."""
        label = waiting.label
        row = label.row if row is None else row
        if served.version in waiting.joined or served.served_at > waiting.deadline:
            return 0
        if row >= served.scores.shape[0]:
            return 0
        labeled = LabeledRow(
            request_id=request_id,
            row=row,
            served_at=served.served_at,
            score=float(served.scores[row]),
            label=label.label,
            role=served.role,
            observed_at=label.observed_at,
            labeled_at=max(label.received_at, served.served_at),
            event_id=label.event_id,
        )
        first = not waiting.joined
        waiting.joined += (served.version,)
        if not self._window(state, served.version).add(labeled):
            state.counts["relabeled"] += 1  # the first label of a request wins
            return 0
        state.counts["joined"] += 1
        self.outbox.append(RowRecord(key[0], key[1], served.version, labeled))
        if journal and first:
            self.outbox.append(StateRecord(key[0], key[1], label.event_id, JOINED))
        return 1

    # ------------------------------------------------------------------ expiry

    def expire(self, now: float) -> int:
        """Close labels past their deadline; returns how many became orphans."""
        orphans = 0
        for key, state in self.models.items():
            while state.waiting:
                event_id, waiting = next(iter(state.waiting.items()))
                if waiting.deadline > now:
                    break
                del state.waiting[event_id]
                orphans += self._close(key, state, waiting, waiting.deadline)
        return orphans

    def _close(self, key: ModelKey, state: ModelLabels, waiting: _Waiting, when: float) -> int:
        label = waiting.label
        index = (
            state.waiting_by_request if label.request_id is not None else state.waiting_by_entity
        )
        slot = label.request_id if label.request_id is not None else label.entity or ""
        waiters = index.get(slot)
        if waiters is not None:
            waiters[:] = [w for w in waiters if w is not waiting]
            if not waiters:
                del index[slot]
        if waiting.joined:
            self.outbox.append(StateRecord(key[0], key[1], label.event_id, DONE))
            return 0
        state.counts["orphan"] += 1
        state.orphan_times.append(when)
        self.outbox.append(StateRecord(key[0], key[1], label.event_id, ORPHAN))
        return 1

    # ------------------------------------------------------------------ restore

    def restore_row(
        self, key: ModelKey, config: ModelConfig, version: str, row: LabeledRow
    ) -> None:
        state = self.model(key, config)
        self._window(state, version).add(row)
        state.restored.setdefault(row.event_id, set()).add(version)

    def restore_label(
        self, key: ModelKey, config: ModelConfig, label: Label, state_name: str, now: float
    ) -> None:
        """A journaled label: its id is seen; an open one waits again (replayed predictions
        may still join it), an orphan counts within the window's age."""
        state = self.model(key, config)
        self._remember(state, label.event_id)
        deadline = label.received_at + state.outcomes.label_maturity_seconds
        if state_name in OPEN_STATES:
            waiting = _Waiting(label, deadline, tuple(state.restored.get(label.event_id, ())))
            state.waiting[label.event_id] = waiting
            if label.request_id is not None:
                state.waiting_by_request.setdefault(label.request_id, []).append(waiting)
            elif label.entity is not None:
                state.waiting_by_entity.setdefault(label.entity, []).append(waiting)
        elif state_name == ORPHAN and deadline >= now - state.outcomes.max_age_seconds:
            state.orphan_times.append(deadline)

    def restored(self) -> None:
        """Restore is over: forget the rows' label ids kept to reopen waiting labels."""
        for state in self.models.values():
            state.restored.clear()

    # ------------------------------------------------------------------ queries

    def rows(
        self, key: ModelKey, version: str, now: float, since: float | None = None
    ) -> VersionRows | None:
        state = self.models.get(key)
        window = state.windows.get(version) if state is not None else None
        if state is None or window is None:
            return None
        return window.select(now, state.outcomes.max_age_seconds, since)

    def orphans(self, key: ModelKey, now: float) -> int:
        """Orphans whose deadline fell within the window's max age."""
        state = self.models.get(key)
        if state is None:
            return 0
        oldest = now - state.outcomes.max_age_seconds
        times = state.orphan_times
        while times and times[0] < oldest:  # closed in deadline order: the oldest are left
            times.popleft()
        return len(times)

    def drain(self) -> list[Record]:
        records, self.outbox = self.outbox, []
        return records


def _forget_entities(state: ModelLabels, request_id: str, entities: Iterable[str | None]) -> None:
    """Entity entries point at request ids; drop those of an evicted request. Each entity's
    entries are appended in served order, so an evicted request's sit at the left."""
    for entity in entities:
        history = state.by_entity.get(entity) if entity is not None else None
        if history is None:
            continue
        while history and history[0][1] == request_id:
            history.popleft()
        if not history:
            del state.by_entity[entity]  # type: ignore[arg-type]


def _entities(prediction: ServedPrediction, config: ModelConfig) -> list[str | None] | None:
    """Per predicted row, its entity key (None where it has none); None when the model
    has no entity key or the call does not carry one."""
    outcomes = config.outcomes
    if outcomes is None or outcomes.entity_key is None or prediction.scores is None:
        return None
    rows = prediction.scores.shape[0]
    skew = config.skew
    if skew is not None and skew.entity_key == outcomes.entity_key:
        # The core split the entity input off the features (skew check): use its keys.
        if len(prediction.entities) == rows:
            return list(prediction.entities)
        return None
    names = prediction.feature_names
    features = prediction.features
    if not names or features is None or outcomes.entity_key not in names:
        return None
    if features.shape[0] != rows:
        return None  # rows with NaN were dropped: positions no longer line up
    column = features[:, names.index(outcomes.entity_key)]
    return [entity_key(float(v)) if math.isfinite(v) else None for v in column]
