"""The synthetic world has real signal and a real shift, as the training pipeline sees it.

The rows are built the way build_training_set builds them (components/build_training_set/
impl.py): each label gets the features of its user's newest *earlier* event that was already
created at label time, within the FeatureView's TTL — the label's own event is not visible
yet. A plain logistic regression on the demo Experiment's four features must then:

- reach AUC >= 0.80 on a later pre-shift test window (the world has learnable signal);
- lose >= 0.08 AUC on post-shift labels (the shift changes the world, not only the inputs);
- recover >= 80% of that drop when trained on post-shift data (a retrain can fix it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kubeloop.sampledata.generate import GeneratorConfig, generate_events, labels_from_events

# The demo Experiment's features (examples/resources/experiment.yaml), raw event columns.
FEATURES = ["dwell_seconds", "clicks", "price", "discount"]
TTL = pd.Timedelta(days=7)
START = datetime(2026, 1, 5, tzinfo=UTC)


def training_rows(events: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Each label with its user's newest event created by the label time (within the TTL)."""
    visible = events[["user_id", "event_timestamp", "created_timestamp", *FEATURES]].copy()
    # A row can be joined from the moment both its event and created times have passed.
    visible["visible_at"] = visible[["event_timestamp", "created_timestamp"]].max(axis=1)
    visible = visible.sort_values("visible_at")
    rows = pd.merge_asof(
        labels.sort_values("event_timestamp"),
        visible.drop(columns=["created_timestamp"]).rename(
            columns={"event_timestamp": "feature_ts"}
        ),
        left_on="event_timestamp",
        right_on="visible_at",
        by="user_id",
    )
    stale = rows["feature_ts"] <= rows["event_timestamp"] - TTL
    rows.loc[stale, FEATURES] = np.nan
    return rows


def world(days: int, shift_at: datetime | None, seed: int = 3) -> pd.DataFrame:
    config = GeneratorConfig(
        rows=30_000,
        seed=seed,
        start=START,
        days=days,
        label_fraction=0.5,
        shift_at=shift_at,
        shift_sigma=1.0,
    )
    events = generate_events(config)
    return training_rows(events, labels_from_events(events, config))


def fit(rows: pd.DataFrame):  # noqa: ANN201 - an sklearn pipeline
    rows = rows.dropna(subset=FEATURES)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        rows[FEATURES], rows["label"]
    )


def auc(model, rows: pd.DataFrame) -> float:  # noqa: ANN001
    # The trainer imputes a missing feature with the training mean; the median is as good here.
    features = rows[FEATURES].fillna(rows[FEATURES].median())
    return float(roc_auc_score(rows["label"], model.predict_proba(features)[:, 1]))


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    shift_at = START + timedelta(days=21)
    rows = world(days=28, shift_at=shift_at)
    train = rows[rows["event_timestamp"] < START + timedelta(days=15)]
    pre_test = rows[
        (rows["event_timestamp"] >= START + timedelta(days=15))
        & (rows["event_timestamp"] < shift_at)
    ]
    # Labels whose features come from a shifted event: in the demo every user comes back
    # within seconds, here a light user's previous event may still be from before the shift.
    after = rows[rows["feature_ts"] >= shift_at]
    # Post-shift: train on the first half of the shifted week, test on its second half.
    middle = shift_at + timedelta(days=3.5)
    post_train, post_test = (
        after[after["event_timestamp"] < middle],
        after[after["event_timestamp"] >= middle],
    )
    v1, v2 = fit(train), fit(post_train)
    return {
        "v1_pre": auc(v1, pre_test),
        "v1_post": auc(v1, post_test),
        "v2_post": auc(v2, post_test),
        "null_share": float(rows["dwell_seconds"].isna().mean()),
    }


def test_a_good_model_reaches_auc_080_before_the_shift(figures: dict[str, float]) -> None:
    assert figures["v1_pre"] >= 0.80, figures
    # The previous event is almost always there (within the TTL): the features are not nulls.
    assert figures["null_share"] < 0.1, figures


def test_the_shift_costs_the_old_model_at_least_008_auc(figures: dict[str, float]) -> None:
    assert figures["v1_pre"] - figures["v1_post"] >= 0.08, figures


def test_a_model_trained_after_the_shift_recovers_80_percent(figures: dict[str, float]) -> None:
    drop = figures["v1_pre"] - figures["v1_post"]
    assert figures["v2_post"] - figures["v1_post"] >= 0.8 * drop, figures


def _drop_at_shift(shift_relation: bool) -> float:
    """What a model trained before the shift loses after it, in one small world."""
    shift_at = START + timedelta(days=10)
    config = GeneratorConfig(
        rows=20_000,
        seed=4,
        start=START,
        days=14,
        label_fraction=0.5,
        shift_at=shift_at,
        shift_sigma=1.0,
        shift_relation=shift_relation,
    )
    events = generate_events(config)
    rows = training_rows(events, labels_from_events(events, config))
    before = rows[rows["event_timestamp"] < shift_at]
    model = fit(before[before["event_timestamp"] < START + timedelta(days=7)])
    pre = auc(model, before[before["event_timestamp"] >= START + timedelta(days=7)])
    return pre - auc(model, rows[rows["event_timestamp"] >= shift_at])


def test_without_the_relation_shift_the_old_model_keeps_most_of_its_auc() -> None:
    """The drop comes from the changed relation, not from the moved covariates alone: the
    moved covariates cost less than a quarter of what the changed relation costs (measured:
    0.061 against 0.28; the features a model reads then overstate the traits by 1 sigma)."""
    covariates_only, relation = _drop_at_shift(False), _drop_at_shift(True)
    assert covariates_only < 0.25 * relation, (covariates_only, relation)
