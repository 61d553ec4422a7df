"""FeatureView definitions (as the JSON-able dicts the components take) over the generated events."""

from __future__ import annotations

from typing import Any


def user_activity_view(source_path: str, ttl_seconds: int = 7 * 24 * 3600) -> dict[str, Any]:
    """Per-user features from each event: engagement signals that reveal the user's affinity."""
    return {
        "name": "user_activity",
        "entities": [{"name": "user", "joinKey": "user_id", "valueType": "INT64"}],
        "source": {
            "path": source_path,
            "format": "parquet",
            "timestampField": "event_timestamp",
            "createdTimestampField": "created_timestamp",
        },
        "transformation": {
            "sql": (
                "SELECT user_id, event_timestamp, created_timestamp, "
                "dwell_seconds, CAST(clicks AS BIGINT) AS clicks, "
                "LN(1 + dwell_seconds) AS log_dwell, "
                "CAST(clicks > 0 AS BOOLEAN) AS clicked, device "
                "FROM source"
            )
        },
        "features": [
            {"name": "dwell_seconds", "dtype": "float64"},
            {"name": "clicks", "dtype": "int64"},
            {"name": "log_dwell", "dtype": "float64"},
            {"name": "clicked", "dtype": "bool"},
            {"name": "device", "dtype": "string"},
        ],
        "ttl": ttl_seconds,
    }


def item_pricing_view(source_path: str, ttl_seconds: int = 7 * 24 * 3600) -> dict[str, Any]:
    """Per-item pricing features from each event."""
    return {
        "name": "item_pricing",
        "entities": [{"name": "item", "joinKey": "item_id", "valueType": "INT64"}],
        "source": {
            "path": source_path,
            "format": "parquet",
            "timestampField": "event_timestamp",
            "createdTimestampField": "created_timestamp",
        },
        "transformation": {
            "sql": (
                "SELECT item_id, event_timestamp, created_timestamp, price, discount, "
                "price * (1 - discount) AS net_price, CAST(quantity AS BIGINT) AS quantity "
                "FROM source"
            )
        },
        "features": [
            {"name": "price", "dtype": "float64"},
            {"name": "discount", "dtype": "float64"},
            {"name": "net_price", "dtype": "float64"},
            {"name": "quantity", "dtype": "int64"},
        ],
        "ttl": ttl_seconds,
    }
