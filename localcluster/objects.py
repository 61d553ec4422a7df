"""Pure helpers about object bodies: timestamps, names, generation, version conversion."""

from __future__ import annotations

import copy
import datetime
import random
import secrets
import uuid
from typing import Any

from .registry import ResourceType

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_UID_RANDOM = random.Random(secrets.randbits(128))  # os.urandom per uid is slow on small VMs


def new_uid() -> str:
    return str(uuid.UUID(int=_UID_RANDOM.getrandbits(128), version=4))


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(NAME_ALPHABET) for _ in range(5))


def spec_part(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    """What counts for `generation`: everything but metadata (and status, with the subresource)."""
    skip = {"metadata", "status"} if rt.has_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from resourceVersion: such a write is a no-op."""
    return _without_rv(a) == _without_rv(b)


def _without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    result = dict(obj)
    meta = dict(result.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    result["metadata"] = meta
    result.pop("apiVersion", None)
    return result


def as_version(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    """Serve a stored object at the requested version (schemas are compatible; no webhooks)."""
    obj["apiVersion"] = rt.group_version
    obj["kind"] = rt.kind
    return obj


def for_storage(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    group = f"{rt.group}/" if rt.group else ""
    obj["apiVersion"] = f"{group}{rt.storage_version}"
    obj["kind"] = rt.kind
    return obj


def deep(obj: Any) -> Any:
    return copy.deepcopy(obj)


def finalizers_of(obj: dict[str, Any]) -> list[str]:
    meta_finalizers = list(obj["metadata"].get("finalizers") or [])
    if obj.get("kind") == "Namespace":
        meta_finalizers += list((obj.get("spec") or {}).get("finalizers") or [])
    return meta_finalizers


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if isinstance(r, dict)]


def object_key_of(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])
