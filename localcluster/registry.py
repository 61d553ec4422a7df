"""Which resource types the server knows: built-in kinds plus the kinds CRDs define."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]


@dataclass
class ResourceType:
    """One served group/version/resource and everything the handlers need to know about it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    has_status: bool = False
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a custom resource version
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    crd_name: str | None = None  # set for custom resources
    storage_version: str = ""
    scale: bool = False

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Objects of all versions of one group/resource share one storage bucket."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery_entries(self) -> list[dict[str, Any]]:
        digest = hashlib.sha256(f"{self.group}/{self.storage_version}/{self.kind}".encode())
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ALL_VERBS,
            "storageVersionHash": digest.hexdigest()[:11],
        }
        if self.short_names:
            main["shortNames"] = self.short_names
        if self.categories:
            main["categories"] = self.categories
        entries = [main]
        if self.has_status:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": STATUS_VERBS,
                }
            )
        return entries


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    categories: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=list(short),
        categories=list(categories),
        has_status=status,
        storage_version=version,
    )


BUILTINS: list[ResourceType] = [
    _builtin("", "v1", "namespaces", "Namespace", False, ("ns",), True),
    _builtin("", "v1", "events", "Event", short=("ev",)),
    _builtin("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _builtin("", "v1", "services", "Service", short=("svc",), status=True, categories=("all",)),
    _builtin("", "v1", "pods", "Pod", short=("po",), status=True, categories=("all",)),
    _builtin("", "v1", "endpoints", "Endpoints", short=("ep",)),
    _builtin(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True
    ),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        status=True,
        categories=("all",),
    ),
    _builtin(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short=("sts",),
        status=True,
        categories=("all",),
    ),
    _builtin(
        "apps", "v1", "daemonsets", "DaemonSet", short=("ds",), status=True, categories=("all",)
    ),
    _builtin(
        "apps", "v1", "replicasets", "ReplicaSet", short=("rs",), status=True, categories=("all",)
    ),
    _builtin("batch", "v1", "jobs", "Job", status=True, categories=("all",)),
    _builtin("batch", "v1", "cronjobs", "CronJob", short=("cj",), status=True, categories=("all",)),
    _builtin("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), status=True),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _builtin(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin("events.k8s.io", "v1", "events", "Event", short=("ev",)),
    _builtin("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        True,
    ),
]

CRD_STORAGE_KEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_STORAGE_KEY = "/namespaces"


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of an accepted CRD as resource types."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    versions = spec.get("versions", [])
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"])
    result = []
    for version in versions:
        if not version.get("served", True):
            continue
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=list(names.get("shortNames", [])),
                categories=list(names.get("categories", [])),
                has_status="status" in (version.get("subresources") or {}),
                scale="scale" in (version.get("subresources") or {}),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=list(version.get("additionalPrinterColumns", [])),
                crd_name=crd["metadata"]["name"],
                storage_version=storage,
            )
        )
    return result


class Registry:
    """Lookup of resource types by group/version/plural, by kind, and by storage bucket."""

    def __init__(self) -> None:
        self._builtin: dict[tuple[str, str, str], ResourceType] = {
            (t.group, t.version, t.plural): t for t in BUILTINS
        }
        self._custom: dict[str, list[ResourceType]] = {}  # crd name -> served versions
        self.generation = 0  # bumped on every change; keys discovery/openapi caches

    def set_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        if types:
            self._custom[crd_name] = types
        else:
            self._custom.pop(crd_name, None)
        self.generation += 1

    def remove_crd(self, crd_name: str) -> None:
        self._custom.pop(crd_name, None)
        self.generation += 1

    def all(self) -> list[ResourceType]:
        custom = [t for types in self._custom.values() for t in types]
        return list(self._builtin.values()) + custom

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        found = self._builtin.get((group, version, plural))
        if found:
            return found
        for types in self._custom.values():
            for t in types:
                if t.group == group and t.version == version and t.plural == plural:
                    return t
        return None

    def by_storage_key(self, key: str) -> ResourceType | None:
        """The storage-version type of a bucket (used by garbage collection and cascades)."""
        candidates = [t for t in self.all() if t.storage_key == key]
        for t in candidates:
            if t.version == t.storage_version:
                return t
        return candidates[0] if candidates else None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for t in self.all():
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, in first-seen order (preferred first)."""
        result: dict[str, list[str]] = {}
        for t in self.all():
            versions = result.setdefault(t.group, [])
            if t.version not in versions:
                if t.version == t.storage_version:
                    versions.insert(0, t.version)
                else:
                    versions.append(t.version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.all() if t.group == group and t.version == version]
