"""An optional audit log: who asked for what, in Kubernetes RBAC terms.

Each request is recorded the way the RBAC authorizer sees it (verb get/list/watch/create/
update/patch/delete/deletecollection, API group, resource, subresource, namespace, name) with
the user its bearer token belongs to, before it is handled, so denied-by-validation and failed
calls count too (RBAC is checked before either). Requests outside the resource API (discovery,
OpenAPI, /version) are recorded with `non_resource_path` set and an empty resource. Off by
default; when on, a record is one small frozen dataclass appended to a bounded deque.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_RECORDS = 100_000


@dataclass(frozen=True)
class AuditRecord:
    user: str
    verb: str
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    non_resource_path: str = ""

    @property
    def rbac_resource(self) -> str:
        """`resource` or `resource/subresource`, as RBAC rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def rbac_verb(method: str, has_name: bool, watching: bool) -> str:
    """The RBAC verb kube-apiserver's request-info resolver gives an HTTP request."""
    if method in ("GET", "HEAD"):
        if watching:
            return "watch"
        return "get" if has_name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()


class AuditLog:
    def __init__(self, enabled: bool = False, max_records: int = MAX_RECORDS) -> None:
        self.enabled = enabled
        self._records: deque[AuditRecord] = deque(maxlen=max_records)

    def add(self, record: AuditRecord) -> None:
        if self.enabled:
            self._records.append(record)

    def records(self) -> list[AuditRecord]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()
