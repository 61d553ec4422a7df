"""Garbage collection and cascading deletion, run as one background task.

It reacts to deletions: dependents whose owners are all gone are deleted (background policy),
`orphan` and `foregroundDeletion` finalizers are worked off, terminating namespaces are emptied,
and deleted CRDs take their custom resources with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from . import objects as o
from .api import CRD_FINALIZER, ClusterApi
from .errors import ApiError
from .registry import CRD_STORAGE_KEY, NAMESPACE_STORAGE_KEY

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, api: ClusterApi) -> None:
        self.api = api
        self.store = api.store
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        api.on_change = self._wakeup.set

    def start(self) -> None:
        self._wakeup.set()  # finish cascades interrupted by a restart
        self._task = asyncio.create_task(self._run(), name="localcluster-gc")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad object must not stop collection for everything else
                log.exception("garbage collection sweep failed")
                await asyncio.sleep(0.5)
                self._wakeup.set()

    async def sweep(self) -> None:
        await self._collect_orphaned_dependents()
        for bucket, key in sorted(self.store.deleting):
            obj = self.store.get(bucket, key)
            if obj is not None:
                await self._progress(bucket, obj)

    async def _collect_orphaned_dependents(self) -> None:
        while self.api.gone_uids:
            uid = self.api.gone_uids.pop()
            victims = []
            for bucket, key in self.store.dependents_of(uid):
                dependent = self.store.get(bucket, key)
                if dependent is None or dependent["metadata"].get("deletionTimestamp"):
                    continue
                if all(self.store.locate_uid(owner) is None for owner in o.owner_uids(dependent)):
                    victims.append(self._delete(bucket, dependent, "Background"))
            await asyncio.gather(*victims)

    async def _progress(self, bucket: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if "orphan" in finalizers:
            await self._orphan_dependents(meta["uid"])
            await self.api.remove_finalizer(bucket, obj, "orphan")
        elif "foregroundDeletion" in finalizers:
            if await self._foreground_done(meta["uid"]):
                await self.api.remove_finalizer(bucket, obj, "foregroundDeletion")
        elif bucket == NAMESPACE_STORAGE_KEY and "kubernetes" in o.finalizers_of(obj):
            if await self._empty_namespace(meta["name"]):
                await self.api.remove_finalizer(bucket, obj, "kubernetes")
        elif (
            bucket == CRD_STORAGE_KEY and CRD_FINALIZER in finalizers and await self._empty_crd(obj)
        ):
            await self.api.remove_finalizer(bucket, obj, CRD_FINALIZER)

    async def _orphan_dependents(self, uid: str) -> None:
        for bucket, key in self.store.dependents_of(uid):
            dependent = self.store.get(bucket, key)
            if dependent is not None:
                await self.api.drop_owner(bucket, dependent, uid)

    async def _foreground_done(self, uid: str) -> bool:
        blocking = False
        pending = []
        for bucket, key in self.store.dependents_of(uid):
            dependent = self.store.get(bucket, key)
            if dependent is None:
                continue
            refs = [
                r for r in dependent["metadata"].get("ownerReferences") or [] if r.get("uid") == uid
            ]
            if any(r.get("blockOwnerDeletion") for r in refs):
                blocking = True
            if not dependent["metadata"].get("deletionTimestamp"):
                pending.append(self._delete(bucket, dependent, "Foreground"))
        await asyncio.gather(*pending)
        still_blocking = any(
            self.store.get(b, k) is not None
            and any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in (self.store.get(b, k) or {}).get("metadata", {}).get("ownerReferences")
                or []
            )
            for b, k in self.store.dependents_of(uid)
        )
        return not (blocking and still_blocking)

    async def _empty_namespace(self, namespace: str) -> bool:
        remaining = 0
        deletes = []
        for rt in self.api.registry.all():
            if not rt.namespaced or rt.version != rt.storage_version:
                continue
            for key in self.store.keys(rt.storage_key, namespace):
                obj = self.store.get(rt.storage_key, key)
                if obj is None:
                    continue
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    deletes.append(self._delete(rt.storage_key, obj, "Background"))
        await asyncio.gather(*deletes)
        return remaining == 0

    async def _empty_crd(self, crd: dict[str, Any]) -> bool:
        bucket = f"{crd['spec']['group']}/{crd['spec']['names']['plural']}"
        remaining = self.store.keys(bucket)
        deletes = []
        for key in remaining:
            obj = self.store.get(bucket, key)
            if obj is not None and not obj["metadata"].get("deletionTimestamp"):
                deletes.append(self._delete(bucket, obj, "Background"))
        await asyncio.gather(*deletes)
        return not remaining

    async def _delete(self, bucket: str, obj: dict[str, Any], policy: str) -> None:
        rt = self.api.registry.by_storage_key(bucket)
        if rt is None:
            return
        meta = obj["metadata"]
        try:
            await self.api.delete(
                rt, meta.get("namespace"), meta["name"], {"propagationPolicy": policy}
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise
