"""Tiny data for the Experiment operator's integration tests and the chaos benchmark's trial
cell: per-user features x1, x2 and label events whose label follows 3·x1 − 2·x2, so a logistic
regression beats the baselines. The labels span the two days up to the current hour, so a
retrain round (its window ends when it is requested) trains on them too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.support.specs import feature_view_spec

USERS, LABELS_PER_USER = 200, 8
# History ends at the current hour: a retrain window that "ends now" holds labels.
START = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=48)


def write_data(root: Path) -> dict[str, str]:
    rng = np.random.default_rng(11)
    users = np.arange(USERS)
    x = rng.normal(size=(USERS, 2))
    events = pd.DataFrame(
        {"user_id": users, "event_timestamp": START, "created_timestamp": START, "x1": x[:, 0]}
    )
    events["x2"] = x[:, 1]
    for column in ("event_timestamp", "created_timestamp"):
        events[column] = events[column].astype("datetime64[us, UTC]")
    (root / "events").mkdir()
    events.to_parquet(root / "events" / "part-0.parquet", index=False)

    user = np.repeat(users, LABELS_PER_USER)
    minutes = rng.integers(60, 48 * 60, size=user.size)
    score = 3 * x[user, 0] - 2 * x[user, 1] + rng.normal(scale=0.3, size=user.size)
    stamps = (START + pd.to_timedelta(minutes, "min")).astype("datetime64[us, UTC]")
    labels = pd.DataFrame(
        {"user_id": user, "event_timestamp": stamps, "label": (score > 0).astype("int64")}
    )
    labels.to_parquet(root / "labels.parquet", index=False)
    text_labels = labels.assign(label=np.where(labels["label"] == 1, "yes", "no"))
    text_labels.to_parquet(root / "text-labels.parquet", index=False)
    return {
        "events": str(root / "events"),
        "labels": str(root / "labels.parquet"),
        "text_labels": str(root / "text-labels.parquet"),
    }


def iso(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def view_spec(events: str) -> dict:
    # Scheduled but bounded a day after START: it lags any retrain window until the test
    # moves its end (a real Spark backfill then catches it up).
    window = {
        "start": iso(START - pd.Timedelta(days=1)),
        "end": iso(START + pd.Timedelta(days=1)),
        "schedule": "* * * * *",
    }
    sql = "SELECT user_id, event_timestamp, x1, x2 FROM source"
    return feature_view_spec(events, sql, ["x1", "x2"], window, created_field=False, ttl="30d")


def experiment_spec(labels: str, names: list[str] | None = None) -> dict:
    return {
        "features": [{"featureView": "stats", "names": names or ["x1", "x2"]}],
        "labels": {
            "source": labels,
            "timestampField": "event_timestamp",
            "labelField": "label",
            "entityKeys": ["user_id"],
        },
        "split": {"validation": "8h", "test": "8h"},
        "trainer": {"nprocPerNode": 1, "epochs": 3, "batchSize": 64},
        "search": {
            "algorithm": "grid",
            "parameters": [
                {"name": "lr", "values": [0.1, 0.3]},
                {"name": "hidden_units", "type": "categorical", "choices": ["none"]},
            ],
            "maxTrials": 2,
            "parallelTrials": 2,
        },
        "objective": {"metric": "auc", "goal": "maximize", "threshold": 0.6},
        "register": {"model": "stats-model"},
    }
