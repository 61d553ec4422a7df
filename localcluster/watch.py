"""Watch streams: newline-delimited JSON events over a chunked HTTP response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from . import objects as o
from .errors import ApiError, bad_request
from .registry import ResourceType
from .selection import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import Change, Store
from .tables import table

BOOKMARK_INTERVAL_S = 5.0
IDLE_CHECK_S = 1.0
DEFAULT_TIMEOUT_S = 1800


@dataclass
class WatchRequest:
    rt: ResourceType
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldRequirement]
    since: int | None
    timeout_s: float
    bookmarks: bool
    send_initial: bool
    as_table: bool
    include_object: str

    @classmethod
    def parse(
        cls, rt: ResourceType, namespace: str | None, params: dict[str, str], as_table: bool
    ) -> WatchRequest:
        raw_rv = params.get("resourceVersion") or ""
        since: int | None = None
        if raw_rv not in ("", "0"):
            try:
                since = int(raw_rv)
            except ValueError:
                raise bad_request(f"invalid resourceVersion {raw_rv!r}") from None
        raw_timeout = params.get("timeoutSeconds") or ""
        try:
            timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT_S
        except ValueError:
            raise bad_request(f"invalid timeoutSeconds {raw_timeout!r}") from None
        return cls(
            rt=rt,
            namespace=namespace if rt.namespaced else None,
            labels=parse_label_selector(params.get("labelSelector")),
            fields=parse_field_selector(params.get("fieldSelector"), rt.storage_key),
            since=since,
            timeout_s=max(0.0, min(timeout, 6 * 3600)),
            bookmarks=(params.get("allowWatchBookmarks") or "").lower() in ("true", "1"),
            send_initial=(params.get("sendInitialEvents") or "").lower() == "true",
            as_table=as_table,
            include_object=params.get("includeObject") or "Metadata",
        )

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, meta.get("labels")) and fields_match(self.fields, obj)


def event_type(request: WatchRequest, change: Change) -> str | None:
    """Objects moving into or out of a selector appear as ADDED or DELETED, as upstream."""
    now = request.matches(change.obj)
    if change.type != "MODIFIED":
        return change.type if now else None
    before = request.matches(change.old) if change.old is not None else now
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None


class WatchStream:
    """One client's watch: initial state or replay, then live changes until timeout."""

    def __init__(self, store: Store, request: WatchRequest) -> None:
        self.store = store
        self.request = request
        self.headers_sent = False

    def _encode(self, typ: str, obj: dict[str, Any]) -> bytes:
        rt = self.request.rt
        if typ != "BOOKMARK":
            obj = o.as_version(obj, rt)
        if self.request.as_table and typ not in ("BOOKMARK", "ERROR"):
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            obj = table(rt, [obj], meta, self.request.include_object, headers=not self.headers_sent)
            self.headers_sent = True
        return orjson.dumps({"type": typ, "object": obj}) + b"\n"

    def _bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        body = {
            "kind": self.request.rt.kind,
            "apiVersion": self.request.rt.group_version,
            "metadata": meta,
        }
        return self._encode("BOOKMARK", body)

    async def serve(
        self, http_request: web.Request, prepare: Callable[[web.StreamResponse], None]
    ) -> web.StreamResponse:
        req = self.request
        bucket = req.rt.storage_key
        initial: list[dict[str, Any]] = []
        if req.since is None:
            await self.store.settled()
            watcher, replay = self.store.subscribe(bucket, None)
            start_rv = self.store.current_rv
            initial = [obj for obj in self.store.items(bucket, req.namespace) if req.matches(obj)]
        else:
            try:
                watcher, replay = self.store.subscribe(bucket, req.since)
            except ApiError as error:
                return await self._expired(http_request, prepare, error)
            start_rv = req.since
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        prepare(response)
        try:
            await response.prepare(http_request)
            for obj in initial:
                await response.write(self._encode("ADDED", obj))
            if req.bookmarks and req.send_initial:
                await response.write(self._bookmark(start_rv, initial_end=True))
            last_rv = start_rv
            for change in replay:
                last_rv = await self._deliver(response, change, last_rv)
            await self._live(http_request, response, watcher, last_rv)
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        finally:
            self.store.unsubscribe(watcher)
        return response

    async def _live(
        self, http_request: web.Request, response: web.StreamResponse, watcher: Any, last_rv: int
    ) -> None:
        deadline = time.monotonic() + self.request.timeout_s
        next_bookmark = time.monotonic() + BOOKMARK_INTERVAL_S
        # One pending get() carried across idle checks, so that no change is ever dropped
        # by cancelling a get() that raced a timeout.
        getter: asyncio.Future[Change | None] = asyncio.ensure_future(watcher.queue.get())
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                done, _ = await asyncio.wait({getter}, timeout=min(remaining, IDLE_CHECK_S))
                if not done:
                    # aiohttp does not cancel handlers when clients go away; notice it ourselves.
                    transport = http_request.transport
                    if transport is None or transport.is_closing():
                        return
                    if self.request.bookmarks and time.monotonic() >= next_bookmark:
                        next_bookmark = time.monotonic() + BOOKMARK_INTERVAL_S
                        last_rv = max(last_rv, self.store.committed_rv)
                        await response.write(self._bookmark(last_rv))
                    continue
                change = getter.result()
                if change is None:
                    return
                getter = asyncio.ensure_future(watcher.queue.get())
                last_rv = await self._deliver(response, change, last_rv)
        finally:
            getter.cancel()

    async def _deliver(self, response: web.StreamResponse, change: Change, last_rv: int) -> int:
        if change.rv <= last_rv:
            return last_rv
        typ = event_type(self.request, change)
        if typ is not None:
            await response.write(self._encode(typ, change.obj))
        return change.rv

    async def _expired(
        self,
        http_request: web.Request,
        prepare: Callable[[web.StreamResponse], None],
        error: ApiError,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        prepare(response)
        await response.prepare(http_request)
        await response.write(orjson.dumps({"type": "ERROR", "object": error.status()}) + b"\n")
        await response.write_eof()
        return response
