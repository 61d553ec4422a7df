"""FeatureView definitions (as the JSON-able dicts the components take) over the generated events."""

from __future__ import annotations

from typing import Any

WEEK_S = 7 * 24 * 3600


def _view(
    name: str,
    entity: str,
    source_path: str,
    sql: str,
    features: dict[str, str],
    ttl_seconds: int,
) -> dict[str, Any]:
    """One view over the generated events (parquet, event and created timestamps)."""
    return {
        "name": name,
        "entities": [{"name": entity, "joinKey": f"{entity}_id", "valueType": "INT64"}],
        "source": {
            "path": source_path,
            "format": "parquet",
            "timestampField": "event_timestamp",
            "createdTimestampField": "created_timestamp",
        },
        "transformation": {"sql": sql},
        "features": [{"name": n, "dtype": dtype} for n, dtype in features.items()],
        "ttl": ttl_seconds,
    }


def user_activity_view(source_path: str, ttl_seconds: int = WEEK_S) -> dict[str, Any]:
    """Per-user features from each event: engagement signals that reveal the user's affinity."""
    sql = (
        "SELECT user_id, event_timestamp, created_timestamp, "
        "dwell_seconds, CAST(clicks AS BIGINT) AS clicks, "
        "LN(1 + dwell_seconds) AS log_dwell, "
        "CAST(clicks > 0 AS BOOLEAN) AS clicked, device "
        "FROM source"
    )
    features = {
        "dwell_seconds": "float64",
        "clicks": "int64",
        "log_dwell": "float64",
        "clicked": "bool",
        "device": "string",
    }
    return _view("user_activity", "user", source_path, sql, features, ttl_seconds)


def item_pricing_view(source_path: str, ttl_seconds: int = WEEK_S) -> dict[str, Any]:
    """Per-item pricing features from each event."""
    sql = (
        "SELECT item_id, event_timestamp, created_timestamp, price, discount, "
        "price * (1 - discount) AS net_price, CAST(quantity AS BIGINT) AS quantity "
        "FROM source"
    )
    features = {
        "price": "float64",
        "discount": "float64",
        "net_price": "float64",
        "quantity": "int64",
    }
    return _view("item_pricing", "item", source_path, sql, features, ttl_seconds)
