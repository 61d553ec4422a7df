"""The pure label join: request-id and entity joins, maturity, idempotency, bounds, replay."""

from __future__ import annotations

import numpy as np

from contracts.monitor_config import ModelConfig, OutcomesConfig, SkewConfig
from services.monitor.core import ServedPrediction
from services.monitor.outcomes.join import (
    DONE,
    JOINED,
    ORPHAN,
    WAITING,
    Label,
    LabelJoin,
    LabelRecord,
    RowRecord,
    StateRecord,
)

KEY = ("team-a", "churn")
T0 = 1_700_000_000.0


def config(**outcomes: object) -> ModelConfig:
    return ModelConfig(outcomes=OutcomesConfig.model_validate(outcomes))


def prediction(
    request_id: str,
    version: str = "1",
    scores: list[float] | None = None,
    *,
    at: float = T0,
    role: str = "stable",
    status: int = 200,
    features: np.ndarray | None = None,
    names: list[str] | None = None,
    entities: tuple[str, ...] = (),
) -> ServedPrediction:
    values = np.asarray(scores if scores is not None else [0.8], dtype=np.float64)
    return ServedPrediction(
        namespace=KEY[0], model=KEY[1], version=version, role=role,
        event_id=f"{version}-{request_id}", request_id=request_id, served_at=at,
        status=status, latency_ms=5.0, feature_names=names, features=features,
        entities=entities, scores=values if status == 200 else None, classes=None,
    )  # fmt: skip


def label(
    event_id: str,
    request_id: str | None = None,
    value: int = 1,
    *,
    at: float = T0 + 10,
    entity: str | None = None,
    served_at: float | None = None,
    row: int = 0,
) -> Label:
    return Label(event_id, request_id, entity, served_at, row, value, at, at)


def labeled(join: LabelJoin, version: str = "1") -> int:
    rows = join.rows(KEY, version, T0 + 100)
    return 0 if rows is None else rows.size


def test_a_label_joins_every_version_that_served_the_request() -> None:
    join, cfg = LabelJoin(), config()
    join.on_prediction(prediction("r1", "1", [0.8]), cfg)
    join.on_label(KEY, cfg, label("e1", "r1", 1))
    # The shadow's prediction is logged after the label came: it still joins.
    join.on_prediction(prediction("r1", "2", [0.3], at=T0 + 20, role="shadow"), cfg)
    assert (labeled(join, "1"), labeled(join, "2")) == (1, 1)
    shadow = join.rows(KEY, "2", T0 + 100)
    assert shadow is not None and shadow.request_ids == [("r1", 0)]
    assert shadow.scores.tolist() == [0.3] and shadow.labels.tolist() == [1]
    records = join.drain()
    # Joined on arrival: journaled as joined; the shadow's row needs no new state.
    assert [type(r) for r in records] == [RowRecord, LabelRecord, RowRecord]
    assert records[1].state == JOINED  # type: ignore[union-attr]


def test_maturity_decides_between_a_late_join_and_an_orphan() -> None:
    join, cfg = LabelJoin(), config(labelMaturitySeconds=60)
    join.on_label(KEY, cfg, label("e1", "r1", at=T0))
    join.on_label(KEY, cfg, label("e2", "r2", at=T0))
    assert join.models[KEY].pending() == 2
    assert isinstance(join.drain()[0], LabelRecord)
    join.on_prediction(prediction("r1", at=T0 + 60), cfg)  # on the deadline: joined
    join.on_prediction(prediction("r2", at=T0 + 61), cfg)  # past it: not
    assert join.expire(T0 + 60.5) == 1
    assert (labeled(join), join.orphans(KEY, T0 + 61), join.models[KEY].pending()) == (1, 1, 0)
    states = [r.state for r in join.drain() if isinstance(r, StateRecord)]
    assert states == [JOINED, DONE, ORPHAN]


def test_event_ids_are_idempotent_and_the_first_label_of_a_request_wins() -> None:
    join, cfg = LabelJoin(), config()
    join.on_prediction(prediction("r1"), cfg)
    assert join.on_label(KEY, cfg, label("e1", "r1", 1))
    assert not join.on_label(KEY, cfg, label("e1", "r1", 0))
    assert join.on_label(KEY, cfg, label("e2", "r1", 0))  # a new id: accepted, not counted
    rows = join.rows(KEY, "1", T0 + 100)
    assert rows is not None and rows.labels.tolist() == [1]
    counts = join.models[KEY].counts
    assert (counts["accepted"], counts["duplicate"], counts["relabeled"]) == (2, 1, 1)


def test_a_replayed_prediction_is_not_joined_twice() -> None:
    join, cfg = LabelJoin(), config()
    join.on_label(KEY, cfg, label("e1", "r1", at=T0))
    join.on_prediction(prediction("r1", at=T0 + 1), cfg)
    join.on_prediction(prediction("r1", at=T0 + 1), cfg)
    assert labeled(join) == 1 and join.models[KEY].counts["joined"] == 1


def test_restored_open_labels_wait_again_for_replayed_predictions() -> None:
    first, cfg = LabelJoin(), config(labelMaturitySeconds=60)
    first.on_prediction(prediction("r1", "1", at=T0), cfg)
    first.on_label(KEY, cfg, label("e1", "r1", at=T0 + 1))
    first.on_label(KEY, cfg, label("e2", "r2", at=T0 + 1))
    records = first.drain()
    second = LabelJoin()
    for record in records:
        if isinstance(record, RowRecord):
            second.restore_row(KEY, cfg, record.version, record.row)
    for record in records:
        if isinstance(record, LabelRecord):
            second.restore_label(KEY, cfg, record.label, record.state, T0 + 2)
    second.restored()
    assert second.models[KEY].pending() == 1  # e2; e1 joined version 1 already
    # The replay re-emits r1 (no second row) and r2 (joins e2); a shadow of r1 joins e1.
    second.on_prediction(prediction("r1", "1", at=T0), cfg)
    second.on_prediction(prediction("r2", "1", at=T0 + 30), cfg)
    second.on_prediction(prediction("r1", "2", at=T0 + 30, role="shadow"), cfg)
    assert (labeled(second, "1"), labeled(second, "2")) == (2, 1)
    assert not second.on_label(KEY, cfg, label("e1", "r1"))  # still a duplicate


def test_failed_calls_are_not_labeled_and_rows_pick_the_prediction() -> None:
    join, cfg = LabelJoin(), config()
    join.on_prediction(prediction("bad", status=500), cfg)
    join.on_prediction(prediction("multi", scores=[0.1, 0.9, 0.4]), cfg)
    join.on_label(KEY, cfg, label("e1", "bad", at=T0))
    join.on_label(KEY, cfg, label("e2", "multi", 1, row=1))
    join.on_label(KEY, cfg, label("e3", "multi", 1, row=7))  # no such prediction
    rows = join.rows(KEY, "1", T0 + 100)
    assert rows is not None and rows.scores.tolist() == [0.9]
    assert join.expire(T0 + 10_000) == 2


def test_entity_labels_join_the_closest_prediction_within_the_tolerance() -> None:
    join = LabelJoin()
    cfg = config(entityKey="user_id", servedAtToleranceSeconds=2)
    names = ["user_id", "amount"]
    for i, at in enumerate((T0, T0 + 100)):
        features = np.array([[17.0, 3.0], [18.0, 4.0]])
        join.on_prediction(
            prediction(f"r{i}", scores=[0.2 + i / 2, 0.6], at=at, features=features, names=names),
            cfg,
        )
    # The application's clock is 1.5 s ahead of the monitor's.
    join.on_label(KEY, cfg, label("e1", entity="17", served_at=T0 + 101.5))
    join.on_label(KEY, cfg, label("e2", entity="18", served_at=T0 + 50))  # no call then
    rows = join.rows(KEY, "1", T0 + 200)
    assert rows is not None and rows.request_ids == [("r1", 0)] and rows.scores.tolist() == [0.7]
    # A label before its prediction, by entity (the skew check's entity keys this time).
    skew = SkewConfig(entity_key="user_id", offline="file:///x", columns={"amount": "amount"})
    cfg2 = ModelConfig(skew=skew, outcomes=cfg.outcomes)
    join.on_label(KEY, cfg2, label("e3", entity="19", served_at=T0 + 300, at=T0 + 290))
    join.on_prediction(prediction("r9", scores=[0.5], at=T0 + 299, entities=("19",)), cfg2)
    assert labeled(join) == 2
    assert join.expire(T0 + 10_000) == 1  # e2


def test_memory_stays_bounded() -> None:
    join = LabelJoin(max_versions_per_model=2)
    cfg = config(maxPredictions=100, maxPendingLabels=100, windowSize=10, entityKey="u")
    for i in range(1000):
        features = np.array([[float(i % 7)]])
        join.on_prediction(prediction(f"r{i}", at=T0 + i, features=features, names=["u"]), cfg)
        join.on_label(KEY, cfg, label(f"e{i}", f"r{i}", at=T0 + i))
        join.on_label(KEY, cfg, label(f"x{i}", f"missing{i}", at=T0 + i))
    for version in ("2", "3"):
        join.on_prediction(prediction("r999", version, at=T0 + 999), cfg)
    state = join.models[KEY]
    assert len(state.by_request) <= 100 and len(state.seen) <= 100
    assert len(state.waiting) <= 100 and sum(map(len, state.by_entity.values())) <= 100
    assert set(state.windows) == {"2", "3"} and all(
        len(w.rows) <= 10 for w in state.windows.values()
    )
    assert state.counts["pendingOverflow"] > 0


def test_waiting_labels_are_journaled_as_waiting() -> None:
    join, cfg = LabelJoin(), config()
    join.on_label(KEY, cfg, label("e1", "r1"))
    (record,) = join.drain()
    assert isinstance(record, LabelRecord) and record.state == WAITING
