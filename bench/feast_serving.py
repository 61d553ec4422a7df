"""What serving from Feast adds per request, and what the traffic's push costs, in one process.

The demo's shapes: a FeatureView of 4 float features keyed by ``user_id`` (1,000 users),
materialized to a Feast SQLite online store in a temporary folder. Timed, ``--requests`` times
each, interleaved in rounds so that load changes hit both alike:

* ``preprocess``: the transformer's whole preprocess of one v2 request of ``--rows`` rows
  naming only ``user_id`` (``FeatureFiller.fill``: entities, ``get_online_features`` with the
  operator's store config, the filled tensors) — what a request pays on top of the predictor;
* ``push``: ``OnlinePush`` of one 2 s batch of the demo's traffic (``--push-rows`` events: the
  view's SQL on DuckDB, each user's newest, ``write_to_online_store``).

    python bench/feast_serving.py [--requests 300] [--rows 40] [--push-rows 800]

Prints p50/p99/mean in ms and the load (``os.getloadavg``) before and after; the figures are
only comparable on the same machine under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401  (the repository root on sys.path)
import numpy as np
import pandas as pd

from tests.support.specs import feature_view_spec

SPEC = feature_view_spec(
    "/unused",
    "SELECT user_id, event_timestamp, created_timestamp, dwell_seconds, "
    "CAST(clicks AS DOUBLE) AS clicks, price, discount FROM source",
    ["dwell_seconds", "clicks", "price", "discount"],
    {"start": "2026-01-01T00:00:00Z"},
)
USERS = 1000


def _events(rng: np.random.Generator, n: int, at: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": (rng.uniform(0, 1, n) ** 2 * USERS).astype("int64"),
            "event_timestamp": at,
            "dwell_seconds": rng.lognormal(3, 0.3, n),
            "clicks": rng.poisson(1.3, n).astype("int32"),
            "price": rng.lognormal(3, 0.45, n),
            "discount": rng.uniform(0, 0.3, n),
        }
    )


def _setup(root: Path) -> tuple[object, object]:
    from components.feast_apply_materialize.feast_objects import FeastStoreConfig
    from components.feast_apply_materialize.impl import apply_and_materialize
    from kubeloop.sampledata.online import OnlinePush

    rng = np.random.default_rng(0)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    history = _events(rng, 20 * USERS, now - pd.Timedelta(hours=1))
    history["user_id"] = np.arange(len(history)) % USERS
    history["event_timestamp"] = history["event_timestamp"].astype("datetime64[us, UTC]")
    history["created_timestamp"] = history["event_timestamp"]
    history["clicks"] = history["clicks"].astype("float64")
    history["date"] = history["event_timestamp"].dt.strftime("%Y-%m-%d")
    history.to_parquet(root / "offline", partition_cols=["date"], index=False)
    store = FeastStoreConfig(repo_path=str(root / "feast"))
    start = (now - pd.Timedelta(days=1)).isoformat()
    apply_and_materialize(
        {**SPEC, "name": "user-activity"}, str(root / "offline"), store, start, now.isoformat()
    )
    return store, OnlinePush("user-activity", SPEC, store)


def _filler(store: object) -> object:
    from contracts import feature_serving as fs
    from localcluster.serving.feast_transformer import (
        FeatureFiller,
        FeatureServingMetrics,
        OnlineFeatures,
        parse_transformer_args,
    )

    features = {f["name"]: "float64" for f in SPEC["features"]}
    args = [
        f"{fs.ARG_FEATURE_VIEW}=user-activity",
        f"{fs.ARG_ENTITY_KEY}=user_id",
        f"{fs.ARG_FEATURES}={json.dumps(features)}",
        f"{fs.ARG_FEAST_STORE}={store.model_dump_json(by_alias=True)}",  # type: ignore[attr-defined]
    ]
    spec, config, _ = parse_transformer_args(args)
    return FeatureFiller(spec, OnlineFeatures(spec, config), FeatureServingMetrics())


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(1000 * ordered[len(ordered) // 2], 2),
        "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
        "mean": round(1000 * statistics.fmean(ordered), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--push-rows", type=int, default=800)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        store, push = _setup(Path(tmp))
        filler = _filler(store)
        fill, pushed = [], []
        for _ in range(args.requests):
            users = (rng.uniform(0, 1, args.rows) ** 2 * USERS).astype(int).tolist()
            body = {
                "inputs": [
                    {"name": "user_id", "shape": [args.rows], "datatype": "INT64", "data": users}
                ]
            }
            started = time.perf_counter()
            asyncio.run(filler.fill(body))  # type: ignore[attr-defined]
            fill.append(time.perf_counter() - started)
            if len(fill) % 10 == 0:  # one push per 10 requests: the demo's 2 s at 5 req/s
                batch = _events(rng, args.push_rows, pd.Timestamp.now(tz="UTC"))
                started = time.perf_counter()
                push(batch)  # type: ignore[operator]
                pushed.append(time.perf_counter() - started)
    report = {
        "preprocess_ms": _ms(fill),
        "push_ms": _ms(pushed),
        "requests": args.requests,
        "rows_per_request": args.rows,
        "push_rows": args.push_rows,
        "pushes": len(pushed),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
