"""The patch formats: JSON merge patch, JSON patch, and strategic merge patch for built-ins."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from .errors import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 with all six operations; a failed `test` is 422, a bad path or op is 400."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or op.get("op") not in (
            "add",
            "remove",
            "replace",
            "move",
            "copy",
            "test",
        ):
            raise bad_request(f"json patch operation {index} has an unknown or missing 'op'")
        if not isinstance(op.get("path"), str):
            raise bad_request(f"json patch operation {index} is missing a string 'path'")
    try:
        result = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(target))
    except jsonpatch.JsonPatchTestFailed as error:
        raise ApiError(422, f"the json patch test operation failed: {error}", "Invalid") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        raise bad_request(f"the json patch could not be applied: {error}") from None
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise bad_request(f"the json patch could not be applied: {error}") from None
    if not isinstance(result, dict):
        raise bad_request("the json patch must leave an object")
    return result


# Merge keys of the list fields of built-in kinds (the patchMergeKey struct tags upstream).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "secrets": "name",
}
PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _list_merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic merge patch: merge patch plus list merging by key and `$patch` directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, order in patch.items():
        if key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(order, list):
                result[field] = _reorder(field, result[field], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    current = current if isinstance(current, list) else []
    if field in PRIMITIVE_MERGE_LISTS:
        return current + [v for v in patch if v not in current]
    key = _list_merge_key(field, patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return copy.deepcopy(patch)
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if i.get("$patch") != "replace"]
    result = [copy.deepcopy(i) for i in current]
    for item in patch:
        index = next(
            (
                n
                for n, c in enumerate(result)
                if isinstance(c, dict) and c.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _list_merge_key(field, items)
    if key is None:
        ranks = {repr(v): n for n, v in enumerate(order)}
        return sorted(items, key=lambda v: ranks.get(repr(v), len(ranks)))
    ranks = {repr(o.get(key)) if isinstance(o, dict) else repr(o): n for n, o in enumerate(order)}
    return sorted(
        items,
        key=lambda v: ranks.get(repr(v.get(key)) if isinstance(v, dict) else "", len(ranks)),
    )
