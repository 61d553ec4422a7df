"""Object metadata rules (names, labels, annotations) shared by every kind."""

from __future__ import annotations

import re
from typing import Any

from .errors import Cause

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ANNOTATIONS_MAX_BYTES = 256 * 1024

# Kinds whose names are path segments rather than DNS subdomains (e.g. "system:controller").
PATH_SEGMENT_NAMED = {
    "rbac.authorization.k8s.io/roles",
    "rbac.authorization.k8s.io/rolebindings",
    "rbac.authorization.k8s.io/clusterroles",
    "rbac.authorization.k8s.io/clusterrolebindings",
}


def check_label_key(key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        problems.append(f"prefix part of {key!r} must be a DNS-1123 subdomain")
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        problems.append(
            f"name part of {key!r} must be 63 characters or less, alphanumeric, '-', '_' or '.', "
            "starting and ending with an alphanumeric character"
        )
    return problems


def check_label_value(value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"label value {value!r} must be a string"]
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return [
            f"label value {value!r} must be 63 characters or less, empty or alphanumeric with "
            "'-', '_' or '.' inside"
        ]
    return []


def check_name(name: Any, storage_key: str, field: str = "metadata.name") -> list[Cause]:
    if not isinstance(name, str) or not name:
        return [
            Cause(field, "Required value: name or generateName is required", "FieldValueRequired")
        ]
    if storage_key in PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [Cause(field, f'Invalid value: "{name}": may not contain "/" or "%"')]
        return []
    pattern = DNS1123_LABEL if storage_key == "/namespaces" else DNS1123_SUBDOMAIN
    limit = 63 if storage_key == "/namespaces" else 253
    if len(name) > limit or not pattern.match(name):
        return [
            Cause(
                field,
                f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                f"character (at most {limit} characters)",
            )
        ]
    return []


def check_metadata(meta: dict[str, Any], storage_key: str) -> list[Cause]:
    causes = check_name(meta.get("name"), storage_key)
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(Cause("metadata.labels", "Invalid value: labels must be a map of strings"))
        labels = {}
    for key, value in labels.items():
        for problem in check_label_key(key) + check_label_value(value):
            causes.append(Cause(f"metadata.labels[{key}]", f"Invalid value: {problem}"))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        causes.append(Cause("metadata.annotations", "Invalid value: must be a map of strings"))
        annotations = {}
    total = 0
    for key, value in annotations.items():
        for problem in check_label_key(key):
            causes.append(Cause(f"metadata.annotations[{key}]", f"Invalid value: {problem}"))
        if not isinstance(value, str):
            causes.append(Cause(f"metadata.annotations[{key}]", "Invalid value: must be a string"))
            continue
        total += len(key.encode()) + len(value.encode())
    if total > ANNOTATIONS_MAX_BYTES:
        causes.append(
            Cause(
                "metadata.annotations",
                f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes",
                "FieldValueTooLong",
            )
        )
    for key in ("finalizers",):
        values = meta.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            causes.append(Cause(f"metadata.{key}", "Invalid value: must be a list of strings"))
    owners = meta.get("ownerReferences") or []
    if not isinstance(owners, list):
        causes.append(Cause("metadata.ownerReferences", "Invalid value: must be a list"))
        owners = []
    for index, ref in enumerate(owners):
        for required in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref, dict) or not ref.get(required):
                causes.append(
                    Cause(
                        f"metadata.ownerReferences[{index}].{required}",
                        "Required value",
                        "FieldValueRequired",
                    )
                )
    return causes
