"""The API semantics over the store: create, read, update, patch, delete, list.

This layer knows nothing about HTTP; `server.py` maps requests onto it. Every write goes
through `_commit`, so resourceVersions, generation, no-op detection, finalizers and the CRD
registry stay consistent however an object is changed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import cel
from . import objects as o
from .errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    gone,
    invalid,
    not_found,
    stale_conflict,
    success_status,
    unsupported_media,
)
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    json_patch,
    merge_patch,
    strategic_merge,
)
from .registry import CRD_STORAGE_KEY, NAMESPACE_STORAGE_KEY, Registry, ResourceType, types_from_crd
from .schema import apply_defaults, check_crd, duplicate_list_items, prune, validate_custom
from .selection import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Store
from .validation import check_metadata

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
POLICIES = ("Orphan", "Background", "Foreground")


@dataclass
class WriteOptions:
    """Per-request write settings and the warnings the response should carry."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    warnings: list[str] = field(default_factory=list)


class ClusterApi:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.on_change: Callable[[], None] = lambda: None  # the garbage collector's trigger
        self.gone_uids: set[str] = set()  # owners deleted whose dependents need collecting

    async def bootstrap(self) -> None:
        for crd in self.store.items(CRD_STORAGE_KEY):
            self.registry.set_crd(crd["metadata"]["name"], types_from_crd(crd))
        namespaces = self.registry.find("", "v1", "namespaces")
        assert namespaces is not None
        for name in DEFAULT_NAMESPACES:
            if self.store.get(NAMESPACE_STORAGE_KEY, ("", name)) is None:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                await self.create(namespaces, None, body, WriteOptions())

    # ---- reads -----------------------------------------------------------------------------

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if rt.namespaced else "", name)

    def _current(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.storage_key, self._key(rt, namespace, name))
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return obj

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        await self.store.settled()
        return o.as_version(self._current(rt, namespace, name), rt)

    async def list_objects(
        self, rt: ResourceType, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        await self.store.settled()
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"), rt.storage_key)
        limit = _int_param(params, "limit")
        list_rv, start_after = self.store.current_rv, None
        if params.get("continue"):
            list_rv, start_after = _decode_continue(params["continue"])
            if list_rv < self.store.compacted_rv:
                raise gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
        items: list[dict[str, Any]] = []
        token = None
        bucket = self.store.buckets[rt.storage_key]
        scope = namespace if rt.namespaced else None
        for key in self.store.keys(rt.storage_key, scope):
            if start_after is not None and key <= start_after:
                continue
            obj = o.as_version(orjson.loads(bucket[key]), rt)
            meta = obj["metadata"]
            if not labels_match(labels, meta.get("labels")) or not fields_match(fields, obj):
                continue
            if limit and len(items) == limit:
                token = _encode_continue(list_rv, items[-1]["metadata"])
                break
            items.append(obj)
        metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if token:
            metadata["continue"] = token
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.group_version,
            "metadata": metadata,
            "items": items,
        }

    # ---- create ----------------------------------------------------------------------------

    async def create(
        self, rt: ResourceType, namespace: str | None, body: Any, opts: WriteOptions
    ) -> dict[str, Any]:
        obj = self._check_body(rt, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            self._require_open_namespace(meta["namespace"])
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            meta["name"] = o.generated_name(meta["generateName"])
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ):
            meta.pop(key, None)
        meta.update(uid=o.new_uid(), creationTimestamp=o.now_rfc3339(), generation=1)
        if rt.is_custom and rt.has_status:
            obj.pop("status", None)
        self._defaults_on_create(rt, obj)
        self._validate(rt, obj, opts, None)
        if self.store.get(rt.storage_key, o.object_key_of(obj)) is not None:
            raise already_exists(rt.group, rt.plural, meta["name"])
        if opts.dry_run:
            return o.as_version(obj, rt)
        (created,) = await self._commit(rt, [("ADDED", obj)])
        return o.as_version(created, rt)

    def _check_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON or YAML object")
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        body.setdefault("metadata", {})
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind is not None and kind != rt.kind:
            raise bad_request(
                f"the kind {kind!r} does not match the resource {rt.qualified!r} ({rt.kind})"
            )
        if api_version is not None and api_version != rt.group_version:
            known = (
                self.registry.by_kind(str(api_version), rt.kind)
                if isinstance(api_version, str)
                else None
            )
            if known is None or known.storage_key != rt.storage_key:
                raise bad_request(
                    f"the apiVersion {api_version!r} does not match {rt.group_version!r}"
                )
        body["apiVersion"], body["kind"] = rt.group_version, rt.kind
        return body

    def _require_open_namespace(self, namespace: str) -> None:
        ns = self.store.get(NAMESPACE_STORAGE_KEY, ("", namespace))
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f'namespaces "{namespace}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                "Forbidden",
                {"name": namespace, "kind": "namespaces"},
            )

    def _defaults_on_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.storage_key == NAMESPACE_STORAGE_KEY:
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ].get("name", "")
        if rt.storage_key == "/secrets" and not obj.get("type"):
            obj["type"] = "Opaque"
        if rt.storage_key == CRD_STORAGE_KEY:
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if CRD_FINALIZER not in finalizers:
                finalizers.append(CRD_FINALIZER)

    # ---- validation ------------------------------------------------------------------------

    def _validate(
        self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions, old: dict[str, Any] | None
    ) -> None:
        meta = obj["metadata"]
        causes: list[Cause] = check_metadata(meta, rt.storage_key)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                causes.append(
                    Cause(
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                        "FieldValueForbidden",
                    )
                )
        if causes:
            raise invalid(rt.group, rt.kind, str(meta.get("name", "")), causes)
        if rt.storage_key == CRD_STORAGE_KEY:
            self._prepare_crd(rt, obj)
        if rt.schema is not None:
            self._check_custom(rt, obj, opts, old)

    def _check_custom(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        opts: WriteOptions,
        old: dict[str, Any] | None,
    ) -> None:
        assert rt.schema is not None
        dropped = prune(obj, rt.schema, root=True)
        if dropped and opts.field_validation == "Strict":
            unknown = ", ".join(f'unknown field "{path}"' for path in dropped)
            raise bad_request(f"strict decoding error: {unknown}")
        if dropped and opts.field_validation == "Warn":
            opts.warnings.extend(f'unknown field "{path}"' for path in dropped)
        apply_defaults(obj, rt.schema)
        causes = validate_custom(obj, rt.schema)
        typed = not causes  # rules assume the schema's types, as kube-apiserver's do
        causes += duplicate_list_items(obj, rt.schema)
        if typed:
            causes += cel.evaluate(obj, old, rt.schema)
        if causes:
            raise invalid(rt.group, rt.kind, str(obj["metadata"].get("name", "")), causes)

    def _prepare_crd(self, rt: ResourceType, crd: dict[str, Any]) -> None:
        causes = check_crd(crd)
        if not causes:
            causes = cel.compile_problems(crd)
        if causes:
            raise invalid(rt.group, rt.kind, str(crd["metadata"].get("name", "")), causes)
        spec = crd["spec"]
        names = spec["names"]
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", f"{names['kind']}List")
        spec.setdefault("conversion", {"strategy": "None"})
        for version in spec["versions"]:
            version.setdefault("served", True)
        storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
        raw_status = crd.get("status")
        status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
        previous = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        stamp = o.now_rfc3339()
        conditions = [
            previous.get("NamesAccepted")
            or {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": stamp,
            },
            previous.get("Established")
            or {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": stamp,
            },
        ]
        stored = list(status.get("storedVersions") or [])
        if storage not in stored:
            stored.append(storage)
        crd["status"] = {
            "conditions": conditions,
            "acceptedNames": dict(names),
            "storedVersions": stored,
        }

    # ---- update and patch ------------------------------------------------------------------

    async def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None,
        opts: WriteOptions,
    ) -> dict[str, Any]:
        new = self._check_body(rt, body)
        if new["metadata"].get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({new['metadata'].get('name')}) does not match the name on the URL ({name})"
            )
        old = self._current(rt, namespace, name)
        given_rv = new["metadata"].get("resourceVersion")
        if not given_rv and rt.is_custom:
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [
                    Cause(
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if given_rv and str(given_rv) != old["metadata"]["resourceVersion"]:
            raise stale_conflict(rt.group, rt.plural, name)
        return await self._update(rt, old, new, subresource, opts)

    async def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch_body: Any,
        subresource: str | None,
        opts: WriteOptions,
    ) -> dict[str, Any]:
        kind = content_type.split(";")[0].strip().lower()
        if kind == APPLY_PATCH:
            raise unsupported_media(
                "server-side apply (application/apply-patch+yaml) is not supported by this server; use client-side apply"
            )
        if kind == STRATEGIC_PATCH and rt.is_custom:
            raise unsupported_media(
                "strategic merge patch is not supported for custom resources; use a merge or JSON patch"
            )
        if kind not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
            raise unsupported_media(f"the patch content type {content_type!r} is not supported")
        old = self._current(rt, namespace, name)
        current = o.as_version(o.deep(old), rt)
        if kind == JSON_PATCH:
            new = json_patch(current, patch_body)
        elif not isinstance(patch_body, dict):
            raise bad_request("a merge patch must be a JSON object")
        elif kind == MERGE_PATCH:
            new = merge_patch(current, patch_body)
        else:
            new = strategic_merge(current, patch_body)
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise bad_request("the patched object must be an object with metadata")
        if str(new["metadata"].get("resourceVersion")) != old["metadata"]["resourceVersion"]:
            raise stale_conflict(rt.group, rt.plural, name)
        if new.get("kind") != rt.kind or new.get("apiVersion") != rt.group_version:
            raise bad_request("a patch may not change apiVersion or kind")
        return await self._update(rt, old, new, subresource, opts)

    async def _update(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        opts: WriteOptions,
    ) -> dict[str, Any]:
        new = self._carry_system_fields(rt, old, new, subresource)
        self._validate(rt, new, opts, old)
        if o.spec_part(new, rt) != o.spec_part(old, rt):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if o.same_content(o.as_version(o.deep(old), rt), new):
            return o.as_version(old, rt)
        if opts.dry_run:
            return new
        deleting = bool(new["metadata"].get("deletionTimestamp"))
        change = "DELETED" if deleting and not o.finalizers_of(new) else "MODIFIED"
        (written,) = await self._commit(rt, [(change, new)])
        return o.as_version(written, rt)

    def _carry_system_fields(
        self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        if subresource == "status":
            result = o.as_version(o.deep(old), rt)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        if subresource not in (None, ""):
            raise not_found(rt.group, f"{rt.plural}/{subresource}", old["metadata"]["name"])
        if rt.has_status:
            if "status" in old:
                new["status"] = o.deep(old["status"])
            else:
                new.pop("status", None)
        meta, old_meta = new["metadata"], old["metadata"]
        for key in (*o.SYSTEM_META, "generation", "namespace", "name", "resourceVersion"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("managedFields", None)
        if rt.storage_key == NAMESPACE_STORAGE_KEY:
            new["spec"] = o.deep(old.get("spec") or {})
            new["status"] = o.deep(old.get("status") or {})
        return new

    # ---- delete ----------------------------------------------------------------------------

    async def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any],
        dry_run: bool = False,
    ) -> dict[str, Any]:
        old = self._current(rt, namespace, name)
        meta = old["metadata"]
        pre = options.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise bad_request("preconditions must be an object")
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise stale_conflict(rt.group, rt.plural, name)
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta["resourceVersion"]:
            raise stale_conflict(rt.group, rt.plural, name)
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        if policy not in POLICIES:
            raise bad_request(f"propagationPolicy {policy!r} is not one of {', '.join(POLICIES)}")
        if rt.storage_key == NAMESPACE_STORAGE_KEY and name in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                "Forbidden",
                {"name": name, "kind": "namespaces"},
            )
        if dry_run or meta.get("deletionTimestamp"):
            return o.as_version(old, rt)
        new = o.deep(old)
        has_dependents = bool(self.store.dependents_of(meta["uid"]))
        extra = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if extra and has_dependents:
            finalizers = new["metadata"].setdefault("finalizers", [])
            if extra not in finalizers:
                finalizers.append(extra)
        if o.finalizers_of(new):
            new["metadata"]["deletionTimestamp"] = o.now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
            if rt.storage_key == NAMESPACE_STORAGE_KEY:
                new.setdefault("status", {})["phase"] = "Terminating"
            (written,) = await self._commit(rt, [("MODIFIED", new)])
        else:
            (written,) = await self._commit(rt, [("DELETED", new)])
        result = o.as_version(written, rt)
        if rt.is_custom or rt.storage_key in (CRD_STORAGE_KEY, NAMESPACE_STORAGE_KEY):
            return result
        if written["metadata"].get("deletionTimestamp"):
            return result
        return success_status(name, rt.group, rt.plural, meta.get("uid"))

    async def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        params: dict[str, str],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        listed = await self.list_objects(
            rt,
            namespace,
            {k: v for k, v in params.items() if k in ("labelSelector", "fieldSelector")},
        )
        deleted = []
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                deleted.append(await self.delete(rt, meta.get("namespace"), meta["name"], options))
            except ApiError as error:
                if error.code != 404:
                    raise
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.group_version,
            "metadata": {},
            "items": deleted,
        }

    # ---- the one write path ----------------------------------------------------------------

    async def _commit(
        self, rt: ResourceType, writes: list[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        batch = [(change, rt.storage_key, o.for_storage(obj, rt)) for change, obj in writes]
        written = await self.store.commit(batch)
        for change, _, obj in batch:
            self._after_write(change, rt, obj)
        return written

    def _after_write(self, change: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if rt.storage_key == CRD_STORAGE_KEY:
            if change == "DELETED":
                self.registry.remove_crd(meta["name"])
            else:
                self.registry.set_crd(meta["name"], types_from_crd(obj))
        if change == "DELETED":
            self.gone_uids.add(meta["uid"])
        if change == "DELETED" or meta.get("deletionTimestamp"):
            self.on_change()

    async def remove_finalizer(self, bucket: str, obj: dict[str, Any], finalizer: str) -> None:
        """Used by the collector: drop one of the system finalizers and delete if none is left."""
        rt = self.registry.by_storage_key(bucket)
        if rt is None:
            return
        new = o.deep(obj)
        meta = new["metadata"]
        meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != finalizer]
        if not meta["finalizers"]:
            del meta["finalizers"]
        if new.get("kind") == "Namespace":
            spec = new.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != finalizer]
        change = "DELETED" if not o.finalizers_of(new) else "MODIFIED"
        await self._commit(rt, [(change, new)])

    async def drop_owner(self, bucket: str, obj: dict[str, Any], owner_uid: str) -> None:
        rt = self.registry.by_storage_key(bucket)
        if rt is None:
            return
        new = o.deep(obj)
        refs = [
            r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid
        ]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        await self._commit(rt, [("MODIFIED", new)])


def _int_param(params: dict[str, str], name: str) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise bad_request(f"{name} must not be negative")
    return value


def _encode_continue(rv: int, last_meta: dict[str, Any]) -> str:
    token = {"rv": rv, "ns": last_meta.get("namespace") or "", "name": last_meta["name"]}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["ns"]), str(data["name"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise bad_request(f"invalid continue token {token!r}") from None
