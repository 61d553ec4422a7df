"""The HTTP shell: aiohttp routes onto `ClusterApi`, plus the `LocalCluster` lifecycle."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from . import discovery, openapi, protobuf, rbac, reviews
from .api import ClusterApi, WriteOptions
from .audit import AuditLog, AuditRecord, rbac_verb
from .collector import Collector
from .errors import ApiError, bad_request, status_body
from .kubeconfig import kubeconfig_text
from .registry import Registry, ResourceType
from .store import Store
from .tables import table, wants_table
from .tls import ensure_certificate, server_context
from .watch import WatchRequest, WatchStream

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024
VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-localcluster",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
PUBLIC_PATHS = {"/version", "/healthz", "/livez", "/readyz"}
NOT_FOUND = "the server could not find the requested resource"
ADMIN_USER = "localcluster-admin"  # the user of the token in the main kubeconfig
USER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class Target:
    """A parsed resource URL."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(
            '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in warnings
        )
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    return json_response(error.status(), error.code)


def parse_body(raw: bytes, content_type: str) -> Any:
    if "protobuf" in content_type:
        return protobuf.decode(raw)
    if "cbor" in content_type:
        raise ApiError(
            415,
            f"the body content type {content_type!r} is not supported; send JSON or YAML",
            "UnsupportedMediaType",
        )
    if not raw.strip():
        raise bad_request("the request body is empty")
    if "yaml" in content_type:
        try:
            loaded = yaml.safe_load(raw)
            return orjson.loads(orjson.dumps(loaded, default=str))
        except (
            yaml.YAMLError,
            RecursionError,
            TypeError,
            ValueError,
            orjson.JSONEncodeError,
        ) as error:
            raise bad_request(f"the request body is not valid YAML: {error}") from None
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from None


class ApiServer:
    """Maps HTTP requests onto the API, discovery, OpenAPI and watch streams."""

    def __init__(
        self,
        api: ClusterApi,
        users: dict[str, str],
        address: str,
        audit: AuditLog,
        signer: reviews.TokenSigner | None = None,
    ) -> None:
        self.api = api
        self.signer = signer
        self.registry: Registry = api.registry
        self.users = users  # bearer token -> user name; shared with LocalCluster.add_user
        self.address = address
        self.audit = audit
        self._openapi_cache: dict[tuple[int, str], Any] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._guard])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path not in PUBLIC_PATHS and self._user(request) is None:
            return json_response(status_body(401, "Unauthorized", "Unauthorized"), 401)
        try:
            return await handler(request)
        except ApiError as error:
            return error_response(error)
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                ApiError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            )
        except Exception as error:  # reported as a Status so clients see a body, and logged
            log.exception("unhandled error for %s %s", request.method, request.path)
            return json_response(status_body(500, "InternalError", f"internal error: {error}"), 500)

    def _user(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self.users.get(token) if scheme == "Bearer" else None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if self.audit.enabled and not _is_resource_path(parts):
            self.audit.add(
                AuditRecord(
                    user=self._user(request) or "system:anonymous",
                    verb=request.method.lower() if request.method != "HEAD" else "get",
                    api_group="",
                    resource="",
                    subresource="",
                    namespace="",
                    name="",
                    non_resource_path=path,
                )
            )
        special = await self._non_resource(request, path)
        if special is not None:
            return special
        review = await self._review(request, parts)
        if review is not None:
            return review
        discovered = self._discovery(parts)
        if discovered is not None:
            if request.method != "GET":
                raise ApiError(405, f"{request.method} is not allowed on {path}")
            return json_response(discovered)
        target = self._resolve(parts)
        if self.audit.enabled:
            self._audit(request, target)
        return await self._resource(request, target)

    def _audit(self, request: web.Request, target: Target) -> None:
        watching = target.watch_path or (request.query.get("watch") or "").lower() in (
            "true",
            "1",
        )
        self.audit.add(
            AuditRecord(
                user=self._user(request) or "system:anonymous",
                verb=rbac_verb(request.method, target.name is not None, watching),
                api_group=target.rt.group,
                resource=target.rt.plural,
                subresource=target.subresource or "",
                namespace=target.namespace or "",
                name=target.name or "",
            )
        )

    async def _non_resource(self, request: web.Request, path: str) -> web.StreamResponse | None:
        if path == "/version":
            return json_response(VERSION_INFO)
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(
            ("/healthz/", "/livez/", "/readyz/")
        ):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/openapi/v3":
            return json_response(
                self._cached_openapi("index", lambda: openapi.index(self.registry))
            )
        if path.startswith("/openapi/v3/"):
            prefix = path[len("/openapi/v3/") :]
            parts = prefix.split("/")
            if parts[0] == "api" and len(parts) == 2:
                group, version = "", parts[1]
            elif parts[0] == "apis" and len(parts) == 3:
                group, version = parts[1], parts[2]
            else:
                raise ApiError(404, NOT_FOUND)
            if not self.registry.in_group_version(group, version):
                raise ApiError(404, NOT_FOUND)
            return json_response(
                self._cached_openapi(
                    prefix, lambda: openapi.document(self.registry, group, version)
                )
            )
        if path in ("/openapi/v2", "/swagger.json"):
            raise ApiError(404, NOT_FOUND)
        return None

    # ---- TokenReview, SubjectAccessReview, TokenRequest (localcluster/reviews.py) ---------

    async def _review(self, request: web.Request, parts: list[str]) -> web.StreamResponse | None:
        if parts == ["apis", "authentication.k8s.io", "v1", "tokenreviews"]:
            check = rbac.Attributes("create", "authentication.k8s.io", "tokenreviews")
            body = await self._review_body(request, check)
            token = (body.get("spec") or {}).get("token") if isinstance(body, dict) else None
            principal = await self._principal(token) if isinstance(token, str) else None
            answer = reviews.token_review(body, lambda _: principal, time.time())
            return json_response(answer, 201)
        if parts == ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"]:
            check = rbac.Attributes("create", "authorization.k8s.io", "subjectaccessreviews")
            body = await self._review_body(request, check)
            user, groups, attrs = reviews.access_attributes(body)
            if attrs is None:  # non-resource URLs: only the privileged group (not modelled)
                allowed = rbac.SYSTEM_MASTERS in groups
                decision = rbac.Decision(allowed, "")
            else:
                decision = await self._decide(
                    user,
                    groups,
                    rbac.Attributes(
                        attrs["verb"],
                        attrs["group"],
                        attrs["resource"],
                        attrs["subresource"],
                        attrs["namespace"],
                        attrs["name"],
                    ),
                )
            return json_response(
                reviews.access_answer(body, decision.allowed, decision.reason), 201
            )
        if (
            len(parts) == 7
            and parts[:3] == ["api", "v1", "namespaces"]
            and parts[4] == "serviceaccounts"
            and parts[6] == "token"
        ):
            namespace, name = parts[3], parts[5]
            check = rbac.Attributes("create", "", "serviceaccounts", "token", namespace, name)
            body = await self._review_body(request, check)
            rt = self.registry.find("", "v1", "serviceaccounts")
            assert rt is not None and self.signer is not None
            account = await self.api.get(rt, namespace, name)  # 404 when there is none
            uid = account["metadata"].get("uid", "")
            answer = reviews.token_request(body, namespace, name, uid, self.signer, time.time())
            return json_response(answer, 201)
        return None

    async def _review_body(self, request: web.Request, check: rbac.Attributes) -> Any:
        if request.method != "POST":
            raise ApiError(405, f"{request.method} is not allowed on {request.path}")
        caller = self._user(request) or "system:anonymous"
        decision = await self._decide(caller, self._groups(caller), check)
        if not decision.allowed:
            what = f"{check.resource}/{check.subresource}" if check.subresource else check.resource
            raise ApiError(
                403,
                f'{what} is forbidden: User "{caller}" cannot {check.verb} resource "{what}" '
                f'in API group "{check.group}"',
                reason="Forbidden",
            )
        return parse_body(await request.read(), request.content_type)

    def _groups(self, user: str) -> tuple[str, ...]:
        if user == ADMIN_USER:
            return (rbac.SYSTEM_MASTERS, reviews.AUTHENTICATED)
        return (reviews.AUTHENTICATED,)

    async def _principal(self, token: str) -> reviews.Principal | None:
        """A kubeconfig token's user, or a TokenRequest token's ServiceAccount (while it
        exists with the uid the token was issued for)."""
        user = self.users.get(token)
        if user is not None:
            return reviews.Principal(user, groups=self._groups(user))
        claims = self.signer.verify(token) if self.signer is not None else None
        if claims is None:
            return None
        rt = self.registry.find("", "v1", "serviceaccounts")
        assert rt is not None
        try:
            account = await self.api.get(rt, claims.namespace, claims.name)
        except ApiError:
            return None
        if account["metadata"].get("uid", "") != claims.uid:
            return None
        return reviews.service_account_principal(claims)

    async def _decide(
        self, user: str, groups: tuple[str, ...] | list[str], attrs: rbac.Attributes
    ) -> rbac.Decision:
        if rbac.SYSTEM_MASTERS in groups:
            return rbac.Decision(True, f'allowed: member of group "{rbac.SYSTEM_MASTERS}"')
        found: dict[str, list[dict[str, Any]]] = {}
        for plural, _, namespace in reviews.rbac_objects_wanted(attrs.namespace):
            rt = self.registry.find("rbac.authorization.k8s.io", "v1", plural)
            assert rt is not None
            found[plural] = (await self.api.list_objects(rt, namespace, {}))["items"]
        return rbac.decide(
            user,
            groups,
            attrs,
            reviews.by_name(found["clusterroles"]),
            found["clusterrolebindings"],
            reviews.by_name(found.get("roles", [])),
            found.get("rolebindings", []),
        )

    def _cached_openapi(self, key: str, build: Any) -> Any:
        cache_key = (self.registry.generation, key)
        if cache_key not in self._openapi_cache:
            if len(self._openapi_cache) > 256:
                self._openapi_cache.clear()
            self._openapi_cache[cache_key] = build()
        return self._openapi_cache[cache_key]

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        if parts == ["api"]:
            return discovery.core_versions(self.address)
        if parts == ["apis"]:
            return discovery.group_list(self.registry)
        if parts == ["api", "v1"]:
            return discovery.resource_list(self.registry, "", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            found = discovery.group(self.registry, parts[1])
            if found is None:
                raise ApiError(404, NOT_FOUND)
            return found
        if len(parts) == 3 and parts[0] == "apis":
            found = discovery.resource_list(self.registry, parts[1], parts[2])
            if found is None:
                raise ApiError(404, NOT_FOUND)
            return found
        return None

    def _resolve(self, parts: list[str]) -> Target:
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, NOT_FOUND)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, NOT_FOUND)
        rt = self.registry.find(group, version, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced):
            raise ApiError(404, NOT_FOUND)
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and not (subresource == "status" and rt.has_status):
            raise ApiError(404, NOT_FOUND)
        return Target(rt, namespace, name, subresource, watch_path)

    async def _resource(self, request: web.Request, target: Target) -> web.StreamResponse:
        params = dict(request.query)
        rt, namespace, name = target.rt, target.namespace, target.name
        method = request.method
        if rt.namespaced and name is not None and namespace is None:
            raise ApiError(404, NOT_FOUND)
        if method == "GET":
            return await self._read(request, target, params)
        opts = WriteOptions(
            dry_run=bool(params.get("dryRun")),
            field_validation=params.get("fieldValidation") or "Warn",
        )
        if opts.field_validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f"fieldValidation must be Strict, Warn or Ignore, got {opts.field_validation!r}"
            )
        if method == "POST" and name is None:
            body = parse_body(await request.read(), request.content_type)
            created = await self.api.create(rt, namespace, body, opts)
            return json_response(created, 201, opts.warnings)
        if method == "PUT" and name is not None:
            body = parse_body(await request.read(), request.content_type)
            updated = await self.api.replace(rt, namespace, name, body, target.subresource, opts)
            return json_response(updated, 200, opts.warnings)
        if method == "PATCH" and name is not None:
            body = parse_body(await request.read(), "json")
            patched = await self.api.patch(
                rt,
                namespace,
                name,
                request.headers.get("Content-Type", ""),
                body,
                target.subresource,
                opts,
            )
            return json_response(patched, 200, opts.warnings)
        if method == "DELETE" and target.subresource is None:
            options = await self._delete_options(request, params)
            if name is None:
                return json_response(
                    await self.api.delete_collection(rt, namespace, params, options)
                )
            return json_response(await self.api.delete(rt, namespace, name, options, opts.dry_run))
        raise ApiError(405, f"{method} is not supported on this path")

    async def _delete_options(self, request: web.Request, params: dict[str, str]) -> dict[str, Any]:
        raw = await request.read()
        options = parse_body(raw, request.content_type) if raw.strip() else {}
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be an object")
        if params.get("propagationPolicy"):
            options["propagationPolicy"] = params["propagationPolicy"]
        if params.get("orphanDependents") in ("true", "false"):
            options["orphanDependents"] = params["orphanDependents"] == "true"
        return options

    async def _read(
        self, request: web.Request, target: Target, params: dict[str, str]
    ) -> web.StreamResponse:
        rt, namespace, name = target.rt, target.namespace, target.name
        as_table = wants_table(request.headers.get("Accept", ""))
        include = params.get("includeObject") or "Metadata"
        if target.watch_path or (params.get("watch") or "").lower() in ("true", "1"):
            if name is not None:
                selector = params.get("fieldSelector")
                params["fieldSelector"] = f"metadata.name={name}" + (
                    f",{selector}" if selector else ""
                )
            watch = WatchRequest.parse(rt, namespace, params, as_table)
            return await WatchStream(self.api.store, watch).serve(request, lambda response: None)
        if name is not None:
            obj = await self.api.get(rt, namespace, name)
            if as_table:
                return json_response(
                    table(
                        rt, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}, include
                    )
                )
            return json_response(obj)
        listed = await self.api.list_objects(rt, namespace, params)
        if as_table:
            return json_response(table(rt, listed["items"], listed["metadata"], include))
        return json_response(listed)


def _is_resource_path(parts: list[str]) -> bool:
    """Whether a path addresses resources (/api/v1/<r>..., /apis/<g>/<v>/<r>...)."""
    if len(parts) >= 3 and parts[0] == "api":
        return True
    return len(parts) >= 4 and parts[0] == "apis"


class LocalCluster:
    """A control plane bound to a data directory; `start()`/`stop()` run it on the current loop."""

    def __init__(
        self,
        data_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        max_history: int = 20000,
        audit: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.max_history = max_history
        self.token = token or self._stored_token()
        self.users: dict[str, str] = {self.token: ADMIN_USER}
        # Signs TokenRequest tokens (ServiceAccount tokens for other audiences).
        self.signer = reviews.TokenSigner(self.data_dir)
        self.audit = AuditLog(enabled=audit)
        self.store: Store | None = None
        self.api: ClusterApi | None = None
        self._collector: Collector | None = None
        self._runner: web.AppRunner | None = None

    def _stored_token(self) -> str:
        path = self.data_dir / "token"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        path.write_text(token)
        path.chmod(0o600)
        return token

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    async def start(self) -> None:
        self.store = Store(self.data_dir, self.max_history)
        self.store.open()
        try:
            await self._serve()
        except BaseException:
            await self.stop()  # leave no writer thread or data-dir lock behind
            raise
        log.info("localcluster serving %s (data in %s)", self.url, self.data_dir)

    async def _serve(self) -> None:
        assert self.store is not None
        self.api = ClusterApi(self.store, Registry())
        self._collector = Collector(self.api)
        await self.api.bootstrap()
        self._collector.start()
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        server = ApiServer(
            self.api, self.users, f"{self.host}:{self.port}", self.audit, self.signer
        )
        self._runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        cert, key = ensure_certificate(self.data_dir, self.host)
        site = web.SockSite(
            self._runner, sock, shutdown_timeout=2.0, ssl_context=server_context(cert, key)
        )
        await site.start()
        self.write_kubeconfig()

    async def stop(self) -> None:
        if self.store:
            for watchers in list(self.store.watchers.values()):
                for watcher in list(watchers):
                    watcher.close()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self._collector:
            await self._collector.stop()
        if self.store:
            await self.store.settled()
            self.store.close()
            self.store = None

    @property
    def ca_pem(self) -> bytes:
        """The serving certificate (self-signed; trust it as the CA)."""
        return ensure_certificate(self.data_dir, self.host)[0].read_bytes()

    @property
    def ca_path(self) -> Path:
        return ensure_certificate(self.data_dir, self.host)[0]

    def compact(self) -> int:
        """Forget all watch history so far: watches from older resourceVersions get 410."""
        assert self.store is not None, "the cluster is not running"
        return self.store.compact()

    def write_kubeconfig(self, path: str | Path | None = None, token: str | None = None) -> Path:
        target = Path(path) if path else self.kubeconfig
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed into place: `kubeloop up` polls for this file while the
        # server starts, and read half-written (empty) it parsed as None ("'NoneType' object
        # is not subscriptable", a failed start-up). The token never sits in a 0644 file.
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.touch(mode=0o600)
        temporary.write_text(kubeconfig_text(self.url, token or self.token, self.ca_pem))
        temporary.replace(target)
        return target

    def add_user(self, name: str) -> Path:
        """A second identity: a new bearer token for user `name`, in `DIR/kubeconfig-<name>`.

        Requests with that token are served like the admin's (there is no authorization
        here) but audit records carry `name`, so a test can tell one client's calls from
        another's. The token lives in memory only: a restarted server forgets it.
        """
        if not USER_NAME.match(name) or name == ADMIN_USER:
            raise ValueError(f"user name {name!r} must be a lowercase DNS label")
        token = next((t for t, user in self.users.items() if user == name), None)
        if token is None:
            token = secrets.token_urlsafe(32)
            self.users[token] = name
        return self.write_kubeconfig(self.data_dir / f"kubeconfig-{name}", token)

    def audit_records(self) -> list[AuditRecord]:
        """What was requested since the audit log was last cleared (empty when audit is off)."""
        return self.audit.records()

    def clear_audit(self) -> None:
        self.audit.clear()

    def set_audit(self, enabled: bool) -> None:
        self.audit.enabled = enabled


class BackgroundCluster:
    """Runs a `LocalCluster` on its own event loop in a daemon thread (for sync callers)."""

    def __init__(
        self, data_dir: str | Path, host: str = "127.0.0.1", port: int = 0, **kwargs: Any
    ) -> None:
        self.cluster = LocalCluster(data_dir, host, port, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="localcluster", daemon=True
        )

    def start(self) -> BackgroundCluster:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.cluster.start(), self._loop).result(timeout=60)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            raise
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.cluster.stop(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def compact(self) -> int:
        async def run() -> int:
            return self.cluster.compact()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def add_user(self, name: str) -> Path:
        async def run() -> Path:
            return self.cluster.add_user(name)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def audit_records(self) -> list[AuditRecord]:
        async def run() -> list[AuditRecord]:
            return self.cluster.audit_records()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def clear_audit(self) -> None:
        async def run() -> None:
            self.cluster.clear_audit()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def token(self) -> str:
        return self.cluster.token

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def data_dir(self) -> Path:
        return self.cluster.data_dir

    def __enter__(self) -> BackgroundCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
