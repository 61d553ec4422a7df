"""OpenAPI v3 documents: enough for `kubectl` to find schemas and `fieldValidation` support.

Each group-version document lists the PATCH operation of every kind with its
`x-kubernetes-group-version-kind`, a `fieldValidation` query parameter (so kubectl sends
`fieldValidation=Strict` instead of validating client-side) and the patch content types the
server accepts. Custom resources do not list strategic merge patch, so kubectl's apply sends
JSON merge patches for them; built-ins list it, and kubectl computes strategic merge patches
from its compiled-in types.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH
from .registry import Registry, ResourceType

QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty", "force")
OBJECT_SCHEMA = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _prefix(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def index(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            prefix = _prefix(group, version)
            digest = hashlib.sha256(
                json.dumps(document(registry, group, version), sort_keys=True).encode()
            )
            paths[prefix] = {
                "serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest.hexdigest()[:32].upper()}"
            }
    return {"paths": paths}


def _schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _operation(rt: ResourceType, action: str, patch: bool = False) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"} if rt.is_custom else OBJECT_SCHEMA
    operation: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": p, "in": "query", "schema": {"type": "string"}} for p in QUERY_PARAMS
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
        },
    }
    if patch:
        types = [JSON_PATCH, MERGE_PATCH] + ([] if rt.is_custom else [STRATEGIC_PATCH])
        operation["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in types}}
    elif action in ("post", "put"):
        operation["requestBody"] = {"content": {"application/json": {"schema": ref}}}
    return operation


def _paths(rt: ResourceType) -> dict[str, Any]:
    base = "/" + _prefix(rt.group, rt.version)
    collection = (
        f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    )
    item = f"{collection}/{{name}}"
    paths = {
        collection: {"get": _operation(rt, "list"), "post": _operation(rt, "post")},
        item: {
            "get": _operation(rt, "get"),
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch", patch=True),
            "delete": _operation(rt, "delete"),
        },
    }
    if rt.has_status:
        paths[f"{item}/status"] = {
            "get": _operation(rt, "get"),
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch", patch=True),
        }
    return paths


def _component(rt: ResourceType) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(json.dumps(rt.schema or OBJECT_SCHEMA))
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema["x-kubernetes-group-version-kind"] = [
        {"group": rt.group, "version": rt.version, "kind": rt.kind}
    ]
    return schema


def document(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = registry.in_group_version(group, version)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        paths.update(_paths(rt))
        if rt.is_custom:
            # Built-ins get no component schema on purpose: kubectl then computes strategic
            # merge patches from its own compiled-in types instead of from a partial schema.
            schemas[_schema_name(rt)] = _component(rt)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
