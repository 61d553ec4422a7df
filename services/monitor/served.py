"""Served rows with an entity, for the training-serving skew check. Pure; no pandas.

When a model's config has ``skew``, the request input named ``entityKey`` (and
``timestampKey``) is split off the payload before the features are parsed: it identifies
the row for the offline store and is never a drift feature. The model columns named in
``skew.columns`` are kept per row, nulls included (a null on one side only is skew).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.monitor.config import SkewConfig

Value = float | str | None


@dataclass(frozen=True, slots=True)
class ServedRow:
    """One served row: its entity, the time it is compared at, its model-column values."""

    entity: str
    ts: float  # the timestampKey input, else the receive time
    received: float  # when the monitor got it (window age limits apply to this)
    values: dict[str, Value]


def served_ring(config: SkewConfig, old: deque[ServedRow] | None = None) -> deque[ServedRow]:
    return deque(old or (), maxlen=config.max_rows)


def split_entities(body: Any, skew: SkewConfig, now: float) -> tuple[Any, list[ServedRow]]:
    """(the payload without the entity/timestamp inputs, the served rows that have an
    entity). Payload shapes it does not know are returned unchanged, with no rows."""
    if not isinstance(body, dict):
        return body, []
    if isinstance(body.get("instances"), list):
        instances, rows = _split_instances(body["instances"], skew, now)
        return {**body, "instances": instances}, rows
    inputs = body.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs):
        if all("datatype" in t for t in inputs):
            tensors, rows = _split_tensors(inputs, skew, now)
            return {**body, "inputs": tensors}, rows
        instances, rows = _split_instances(inputs, skew, now)
        return {**body, "inputs": instances}, rows
    return body, []


def _split_instances(
    instances: list[Any], skew: SkewConfig, now: float
) -> tuple[list[Any], list[ServedRow]]:
    keys = {skew.entity_key, skew.timestamp_key} - {None}
    stripped: list[Any] = []
    rows: list[ServedRow] = []
    for instance in instances:
        if not isinstance(instance, dict):
            return instances, []  # plain lists: no named entity input
        stripped.append({k: v for k, v in instance.items() if k not in keys})
        row = _served_row(
            instance.get(skew.entity_key),
            instance.get(skew.timestamp_key) if skew.timestamp_key else None,
            {c: _value(instance.get(c)) for c in skew.columns},
            now,
        )
        if row is not None:
            rows.append(row)
    return stripped, rows


def _split_tensors(
    tensors: list[dict[str, Any]], skew: SkewConfig, now: float
) -> tuple[list[dict[str, Any]], list[ServedRow]]:
    by_name = {str(t.get("name")): t for t in tensors}
    keys = {skew.entity_key, skew.timestamp_key} - {None}
    stripped = [t for t in tensors if str(t.get("name")) not in keys]
    entities = _column(by_name.get(skew.entity_key))
    if entities is None:
        return stripped, []
    times = _column(by_name.get(skew.timestamp_key)) if skew.timestamp_key else None
    columns = {c: _column(by_name.get(c)) for c in skew.columns}
    rows: list[ServedRow] = []
    for i, entity in enumerate(entities):
        values = {
            c: _value(col[i]) if col is not None and i < len(col) else None
            for c, col in columns.items()
        }
        time = times[i] if times is not None and i < len(times) else None
        row = _served_row(entity, time, values, now)
        if row is not None:
            rows.append(row)
    return stripped, rows


def _column(tensor: dict[str, Any] | None) -> list[Any] | None:
    """One value per row of a 1-D or [n, 1] tensor; None when it is not one column."""
    if tensor is None:
        return None
    data, shape = tensor.get("data"), tensor.get("shape")
    if not isinstance(data, list) or not isinstance(shape, list) or not shape:
        return None
    flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    if len(flat) != shape[0] or any(isinstance(v, list) for v in flat):
        return None
    return flat


def _served_row(entity: Any, time: Any, values: dict[str, Value], now: float) -> ServedRow | None:
    key = entity_key(entity)
    if key is None:
        return None
    ts = now if time is None else parse_time(time)
    if ts is None:
        return None  # an unreadable time would pair with the wrong offline row
    return ServedRow(entity=key, ts=ts, received=now, values=values)


def entity_key(value: Any) -> str | None:
    """Entities are joined as strings; 17, 17.0 and "17" are the same entity."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def parse_time(value: Any) -> float | None:
    """Epoch seconds, or ISO 8601 (naive times are UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def _value(value: Any) -> Value:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return float(value)
    return str(value)
