"""Brute-force point-in-time join, written straight from the semantics in ``impl.py``.

Deliberately naive (a Python loop over label rows and their entity's feature rows) so that it
is obviously right; only for small data.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from components.build_training_set.spec import FeatureRequest


def _order_key(row: dict[str, Any], features: list[str]) -> tuple:
    # Greatest event ts, then created ts, then feature values; null is lowest.
    return (
        row["event_timestamp"],
        row["created_timestamp"],
        *((0, None) if _is_null(row[f]) else (1, row[f]) for f in features),
    )


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def reference_join(
    labels: pd.DataFrame, ts: str, requests: list[FeatureRequest], offline: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """``offline``: view name → offline rows (keys, event_timestamp, created_timestamp, features)."""
    out = labels.copy()
    label_ts = pd.to_datetime(out[ts], utc=True)
    for request in requests:
        keys = request.feature_view.join_keys
        features = request.features
        rows = offline[request.view].copy()
        rows["event_timestamp"] = pd.to_datetime(rows["event_timestamp"], utc=True)
        rows["created_timestamp"] = pd.to_datetime(rows["created_timestamp"], utc=True)
        by_entity: dict[tuple, list[dict[str, Any]]] = {}
        for record in rows.to_dict("records"):
            by_entity.setdefault(tuple(record[k] for k in keys), []).append(record)
        ttl = request.feature_view.ttl
        values: dict[str, list[Any]] = {c: [] for c in request.output_columns}
        for position, label in enumerate(out.to_dict("records")):
            t = label_ts.iloc[position]
            visible = [
                r
                for r in by_entity.get(tuple(label[k] for k in keys), [])
                if r["event_timestamp"] <= t
                and r["created_timestamp"] <= t
                and (not ttl or r["event_timestamp"] > t - ttl)
            ]
            best = max(visible, key=lambda r: _order_key(r, features)) if visible else None
            for feature, column in zip(features, request.output_columns, strict=True):
                values[column].append(
                    None if best is None or _is_null(best[feature]) else best[feature]
                )
        for column, column_values in values.items():
            out[column] = pd.Series(column_values, index=out.index, dtype=object)
    return out
