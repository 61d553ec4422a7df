"""TokenReview and SubjectAccessReview through the Kubernetes API (the monitor's I/O for auth).

The request and answer shapes are kube-apiserver's ``authentication.k8s.io/v1`` TokenReview
(``spec.token``, ``spec.audiences`` → ``status.authenticated``, ``status.user {username, uid,
groups, extra}``, ``status.audiences``, ``status.error``) and ``authorization.k8s.io/v1``
SubjectAccessReview (``spec.resourceAttributes {namespace, verb, group, resource,
subresource, name}``, ``spec.user/groups/uid/extra`` → ``status.allowed``, ``status.denied``,
``status.reason``, ``status.evaluationError``), per the API reference
(https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/,
https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/subject-access-review-v1/).

The monitor's ServiceAccount needs ``create`` on both (the ``system:auth-delegator``
ClusterRole grants exactly that; the manifests bind it).
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from services.monitor.auth.core import Identity, ResourceCheck

IN_CLUSTER = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class ReviewUnavailable(RuntimeError):
    """The API server did not answer a review: the request gets a 503, never a pass."""


@dataclass(frozen=True)
class ApiTarget:
    """Where the API server is and how the monitor authenticates to it."""

    server: str
    ca_file: str | None
    token: str | None = None
    token_file: Path | None = None  # re-read per call: projected tokens rotate
    ca_data: str | None = None  # PEM, from a kubeconfig's certificate-authority-data

    def bearer(self) -> str:
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token or ""


def in_cluster() -> ApiTarget:
    import os

    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    host = f"[{host}]" if ":" in host else host
    return ApiTarget(
        f"https://{host}:{port}", str(IN_CLUSTER / "ca.crt"), None, IN_CLUSTER / "token"
    )


def from_kubeconfig(path: Path) -> ApiTarget:
    """The current context's server, CA and bearer token (token auth only)."""
    doc = yaml.safe_load(path.read_text())
    current = doc.get("current-context")
    contexts = {c["name"]: c["context"] for c in doc.get("contexts", [])}
    context = contexts.get(current) or next(iter(contexts.values()))
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])
    ca_file = cluster.get("certificate-authority")
    ca_data = None
    if cluster.get("certificate-authority-data"):
        ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    token_file = Path(user["tokenFile"]) if user.get("tokenFile") else None
    return ApiTarget(cluster["server"], ca_file, user.get("token"), token_file, ca_data)


class KubeReviewer:
    """Posts TokenReviews and SubjectAccessReviews; one aiohttp session per monitor."""

    def __init__(self, target: ApiTarget, audience: str, timeout_s: float = 5.0) -> None:
        self.target = target
        self.audience = audience
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.target.ca_file, cadata=self.target.ca_data)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl())
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        headers = {"Authorization": f"Bearer {self.target.bearer()}"}
        try:
            async with self._session.post(
                self.target.server + path, json=body, headers=headers
            ) as answer:
                if answer.status != 201 and answer.status != 200:
                    text = (await answer.text())[:200]
                    raise ReviewUnavailable(f"{path} answered {answer.status}: {text}")
                result: dict[str, Any] = await answer.json()
                return result
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            raise ReviewUnavailable(f"{path}: {error}") from error

    async def review_token(self, token: str) -> Identity | None:
        """The token's user, or None when the API server does not authenticate it for the
        monitor's audience."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.audience]},
        }
        status = (await self._post(TOKEN_REVIEWS, body)).get("status") or {}
        if status.get("authenticated") is not True:
            return None
        # An audience-aware server echoes the audience; an empty list means the token is
        # only valid for the API server itself (TokenReviewStatus.audiences), so it is refused.
        if self.audience not in (status.get("audiences") or []):
            return None
        user = status.get("user") or {}
        username = user.get("username")
        if not isinstance(username, str) or not username:
            return None
        extra = tuple(sorted((k, tuple(v)) for k, v in (user.get("extra") or {}).items()))
        return Identity(username, tuple(user.get("groups") or ()), user.get("uid") or "", extra)

    async def allowed(self, identity: Identity, check: ResourceCheck) -> bool:
        attributes = {
            "namespace": check.namespace,
            "verb": check.verb,
            "group": check.group,
            "resource": check.resource,
            "subresource": check.subresource,
            "name": check.name,
        }
        spec: dict[str, Any] = {
            "resourceAttributes": {k: v for k, v in attributes.items() if v},
            "user": identity.username,
            "groups": list(identity.groups),
        }
        if identity.uid:
            spec["uid"] = identity.uid
        if identity.extra:
            spec["extra"] = {k: list(v) for k, v in identity.extra}
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        status = (await self._post(SUBJECT_ACCESS_REVIEWS, body)).get("status") or {}
        return status.get("allowed") is True and status.get("denied") is not True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
