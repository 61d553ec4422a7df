"""Label and field selectors, parsed once per request and matched per object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .validation import check_label_key, check_label_value

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" also match objects that lack the label, as in Kubernetes.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def _check_label_requirement(key: str, values: tuple[str, ...], text: str) -> None:
    problems = check_label_key(key) + [p for v in values for p in check_label_value(v)]
    if problems:
        raise bad_request(f'unable to parse requirement: "{text}": {"; ".join(problems)}')


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    result = []
    for part in _split_top_level(text):
        eq = _EQ_RE.match(part)
        if eq and not re.search(r"\s(in|notin)\s*\(", part):
            key, op, value = eq.groups()
            op = "!=" if op == "!=" else "="
            _check_label_requirement(key, (value,), part)
            result.append(Requirement(key, op, (value,)))
            continue
        st = _SET_RE.match(part)
        if not st:
            raise bad_request(f'unable to parse requirement: found "{part}", expected a selector')
        negate, key, set_op, raw_values = st.groups()
        if set_op:
            if negate:
                raise bad_request(f'unable to parse requirement: "{part}"')
            values = tuple(v.strip() for v in raw_values.split(",") if v.strip())
            _check_label_requirement(key, values, part)
            result.append(Requirement(key, set_op, values))
        else:
            _check_label_requirement(key, (), part)
            result.append(Requirement(key, "!" if negate else "exists", ()))
    return result


def labels_match(requirements: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


BASE_FIELDS = {"metadata.name", "metadata.namespace"}
EVENT_FIELDS = {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}
EXTRA_FIELDS: dict[str, set[str]] = {
    "/events": EVENT_FIELDS,
    "/namespaces": {"status.phase"},
    "/secrets": {"type"},
    "/pods": {"spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName"},
}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        return (actual != self.value) if self.negate else (actual == self.value)


def field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":
        return str((obj.get("source") or {}).get("component", ""))
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(text: str | None, storage_key: str) -> list[FieldRequirement]:
    if not text:
        return []
    allowed = BASE_FIELDS | EXTRA_FIELDS.get(storage_key, set())
    result = []
    for part in _split_top_level(text):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise bad_request(f'invalid selector: "{part}"; can\'t understand it')
        path, op, value = match.groups()
        if path not in allowed:
            raise bad_request(f'field label not supported: "{path}"')
        result.append(FieldRequirement(path, op == "!=", value))
    return result


def fields_match(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in requirements)
