"""Custom-resource specs the integration tests build over the synthetic events."""

from __future__ import annotations

from typing import Any


def feature_view_spec(
    source: str,
    sql: str,
    features: list[str] | list[dict[str, str]],
    backfill: dict[str, str],
    *,
    created_field: bool = True,
    ttl: str = "7d",
) -> dict[str, Any]:
    """A FeatureView on the `user` entity (join key `user_id`) of an events source.

    `features` are names (float64) or whole feature entries.
    """
    source_spec = {"path": source, "timestampField": "event_timestamp"}
    if created_field:
        source_spec["createdTimestampField"] = "created_timestamp"
    return {
        "entities": [{"name": "user", "joinKey": "user_id", "valueType": "INT64"}],
        "source": source_spec,
        "transformation": {"sql": sql},
        "features": [
            {"name": f, "dtype": "float64"} if isinstance(f, str) else f for f in features
        ],
        "ttl": ttl,
        "backfill": backfill,
    }
