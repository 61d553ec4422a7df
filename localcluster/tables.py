"""`meta.k8s.io/v1 Table` responses, as `kubectl get` asks for them."""

from __future__ import annotations

import datetime
import re
from typing import Any

from .registry import ResourceType

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
AGE_COLUMN = {
    "name": "Age",
    "type": "string",
    "format": "",
    "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
    "priority": 0,
}


def wants_table(accept: str) -> bool:
    first = accept.split(",")[0] if accept else ""
    return "as=Table" in first and "g=meta.k8s.io" in first


def human_age(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """Kubernetes' HumanDuration of the time since `timestamp`; "<unknown>" if unparsable."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.UTC)
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    return human_duration(max(seconds, 0))


def human_duration(seconds: int) -> str:
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        rest = days % 365
        return f"{days // 365}y{rest}d" if rest else f"{days // 365}y"
    return f"{days // 365}y"


_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\['([^']+)'\]"
)


def json_path(obj: Any, path: str) -> list[Any]:
    """The small JSONPath subset printer columns use: fields, [n], [*] and [?(@.k=="v")]."""
    text = path.strip().strip("{}").strip()
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    values = [obj]
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            return []
        position = match.end()
        field, index, filter_key, filter_value, quoted = match.groups()
        values = _step(values, field or quoted, index, filter_key, filter_value)
    return values


def _step(
    values: list[Any],
    field: str | None,
    index: str | None,
    filter_key: str | None,
    filter_value: str | None,
) -> list[Any]:
    result: list[Any] = []
    for value in values:
        if field is not None:
            if isinstance(value, dict) and field in value:
                result.append(value[field])
        elif index == "*":
            if isinstance(value, list):
                result.extend(value)
            elif isinstance(value, dict):
                result.extend(value.values())
        elif index is not None:
            if isinstance(value, list) and int(index) < len(value):
                result.append(value[int(index)])
        elif filter_key is not None and isinstance(value, list):
            for item in value:
                found = json_path(item, "." + filter_key)
                if found and str(found[0]) == filter_value:
                    result.append(item)
    return result


def _cell(values: list[Any], column_type: str) -> Any:
    if not values or values[0] is None:
        return None
    if column_type == "date":
        return human_age(str(values[0]))
    if len(values) > 1:
        return ",".join(str(v) for v in values)
    value = values[0]
    if column_type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if column_type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value) if not isinstance(value, bool) else str(value).lower()


def columns(rt: ResourceType) -> list[dict[str, Any]]:
    if not rt.printer_columns:
        return [NAME_COLUMN, AGE_COLUMN]
    result = [NAME_COLUMN]
    for column in rt.printer_columns:
        result.append(
            {
                "name": column["name"],
                "type": column.get("type", "string"),
                "format": column.get("format", ""),
                "description": column.get("description", ""),
                "priority": int(column.get("priority", 0)),
            }
        )
    return result


def row(rt: ResourceType, obj: dict[str, Any], include_object: str) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    if rt.printer_columns:
        cells = [meta.get("name")] + [
            _cell(json_path(obj, c["jsonPath"]), c.get("type", "string"))
            for c in rt.printer_columns
        ]
    else:
        cells = [meta.get("name"), human_age(meta.get("creationTimestamp"))]
    entry: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        entry["object"] = obj
    elif include_object != "None":
        entry["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        }
    return entry


def table(
    rt: ResourceType,
    items: list[dict[str, Any]],
    list_meta: dict[str, Any],
    include_object: str = "Metadata",
    headers: bool = True,
) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(rt) if headers else [],
        "rows": [row(rt, item, include_object) for item in items],
    }
