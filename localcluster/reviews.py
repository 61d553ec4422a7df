"""TokenReview, SubjectAccessReview and TokenRequest, as kube-apiserver serves them.

- ``POST /apis/authentication.k8s.io/v1/tokenreviews``: ``spec.token`` (required) and
  ``spec.audiences`` → ``201`` with the review echoed and ``status {authenticated, user
  {username, uid, groups}, audiences, error}``. With no audiences the API server's own is
  meant; ``status.audiences`` is the intersection of the requested and the token's audiences
  (an empty intersection is not authenticated). API reference:
  https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/
- ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``: ``spec.resourceAttributes``
  (or ``nonResourceAttributes``, exactly one), ``spec.user`` and/or ``spec.groups`` → ``201``
  with ``status {allowed, reason}`` decided by :mod:`localcluster.rbac` from the stored RBAC
  objects. API reference:
  https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/subject-access-review-v1/
- ``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`` (TokenRequest): a token for
  the ServiceAccount, for ``spec.audiences`` (default: the API server's), valid
  ``spec.expirationSeconds`` (default 3600, at least 600), as a projected volume gets it; the
  user is ``system:serviceaccount:<ns>:<name>`` in groups ``system:serviceaccounts``,
  ``system:serviceaccounts:<ns>`` and ``system:authenticated``. Tokens are HMAC-signed with a
  key kept in the data dir (0600), so they survive a restart, and are refused once the
  ServiceAccount is gone or replaced (its uid is in the token).

The caller needs ``create`` on ``tokenreviews`` / ``subjectaccessreviews`` /
``serviceaccounts/token`` by the same RBAC rules (the admin token is in ``system:masters``).
Neither review is stored. Tokens from a TokenRequest are answered by TokenReview only: this
API server takes only the kubeconfig tokens for its own requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ApiError, bad_request

#: kube-apiserver's default API audience (its service account issuer in most setups).
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
AUTHENTICATED = "system:authenticated"
MIN_EXPIRATION_S = 600
DEFAULT_EXPIRATION_S = 3600
MAX_EXPIRATION_S = 48 * 3600
TOKEN_PREFIX = "lc1."


@dataclass(frozen=True)
class Principal:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    audiences: tuple[str, ...] = (API_AUDIENCE,)
    expires_at: float | None = None


@dataclass(frozen=True)
class ServiceAccountClaims:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires_at: float


class TokenSigner:
    """HMAC-SHA256 over a compact JSON claim set; the key lives in ``DIR/token-signing-key``."""

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / "token-signing-key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        self._key = path.read_bytes()

    def issue(self, claims: ServiceAccountClaims) -> str:
        payload = json.dumps(
            {
                "ns": claims.namespace,
                "sa": claims.name,
                "uid": claims.uid,
                "aud": list(claims.audiences),
                "exp": int(claims.expires_at),
            },
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(payload).rstrip(b"=")
        signature = base64.urlsafe_b64encode(self._mac(body)).rstrip(b"=")
        return TOKEN_PREFIX + body.decode() + "." + signature.decode()

    def verify(self, token: str) -> ServiceAccountClaims | None:
        if not token.startswith(TOKEN_PREFIX) or token.count(".") != 2:
            return None
        body, _, signature = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            expected = base64.urlsafe_b64encode(self._mac(body.encode())).rstrip(b"=").decode()
            if not hmac.compare_digest(expected, signature):
                return None
            raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return ServiceAccountClaims(
                str(raw["ns"]),
                str(raw["sa"]),
                str(raw["uid"]),
                tuple(raw["aud"]),
                float(raw["exp"]),
            )
        except (ValueError, KeyError, TypeError, UnicodeError):
            return None

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()


def service_account_principal(claims: ServiceAccountClaims) -> Principal:
    return Principal(
        username=f"system:serviceaccount:{claims.namespace}:{claims.name}",
        uid=claims.uid,
        groups=(
            "system:serviceaccounts",
            f"system:serviceaccounts:{claims.namespace}",
            AUTHENTICATED,
        ),
        audiences=claims.audiences,
        expires_at=claims.expires_at,
    )


def _spec(body: Any, kind: str, api_version: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a {kind} object")
    if body.get("kind", kind) != kind or body.get("apiVersion", api_version) != api_version:
        raise bad_request(f"expected kind {kind} in {api_version}")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise ApiError(422, f"{kind}.spec: Required value", reason="Invalid")
    return spec


def _string_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{field} must be a list of strings")
    return list(value)


def _answer(
    body: dict[str, Any], kind: str, api_version: str, status: dict[str, Any]
) -> dict[str, Any]:
    given = body.get("metadata")
    metadata: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    metadata["creationTimestamp"] = None
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "spec": body["spec"],
        "status": status,
    }


TOKEN_REVIEW = ("TokenReview", "authentication.k8s.io/v1")
SUBJECT_ACCESS_REVIEW = ("SubjectAccessReview", "authorization.k8s.io/v1")


def token_review(body: Any, principal_of: Any, now: float) -> dict[str, Any]:
    """``principal_of(token) -> Principal | None`` looks a token up (kubeconfig tokens and
    verified TokenRequest tokens whose ServiceAccount still exists)."""
    kind, api_version = TOKEN_REVIEW
    spec = _spec(body, kind, api_version)
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        # kube-apiserver's TokenReview REST storage refuses an empty token the same way.
        raise bad_request("token is required for TokenReview in authentication")
    requested = _string_list(spec.get("audiences"), "spec.audiences")
    principal = principal_of(token)
    status: dict[str, Any] = {"user": {}}
    if principal is None or (principal.expires_at is not None and principal.expires_at <= now):
        status["error"] = "[invalid bearer token, token lookup failed]"
        status["authenticated"] = False
        return _answer(body, kind, api_version, status)
    wanted = requested or [API_AUDIENCE]
    common = [audience for audience in wanted if audience in principal.audiences]
    if not common:
        status["error"] = (
            "[invalid bearer token, token audiences is invalid for the target audiences]"
        )
        status["authenticated"] = False
        return _answer(body, kind, api_version, status)
    user: dict[str, Any] = {"username": principal.username, "groups": list(principal.groups)}
    if principal.uid:
        user["uid"] = principal.uid
    status.update({"authenticated": True, "user": user, "audiences": common})
    return _answer(body, kind, api_version, status)


def access_attributes(body: Any) -> tuple[str, list[str], dict[str, str] | None]:
    """(user, groups, resourceAttributes or None for nonResourceAttributes) of a SAR body."""
    kind, api_version = SUBJECT_ACCESS_REVIEW
    spec = _spec(body, kind, api_version)
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        raise ApiError(
            422,
            f'{kind}.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid '
            "value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            reason="Invalid",
        )
    user = spec.get("user") or ""
    groups = _string_list(spec.get("groups"), "spec.groups")
    if not isinstance(user, str):
        raise bad_request("spec.user must be a string")
    if not user and not groups:
        raise ApiError(
            422,
            f'{kind}.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at least '
            "one of user or group must be specified",
            reason="Invalid",
        )
    if resource is None:
        return user, groups, None
    if not isinstance(resource, dict) or not all(
        isinstance(v, str)
        for k, v in resource.items()
        if k != "fieldSelector" and k != "labelSelector"
    ):
        raise bad_request("spec.resourceAttributes must map names to strings")
    keys = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
    return user, groups, {k: str(resource.get(k) or "") for k in keys}


def access_answer(body: dict[str, Any], allowed: bool, reason: str) -> dict[str, Any]:
    kind, api_version = SUBJECT_ACCESS_REVIEW
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return _answer(body, kind, api_version, status)


def token_request(
    body: Any, namespace: str, name: str, sa_uid: str, signer: TokenSigner, now: float
) -> dict[str, Any]:
    """The TokenRequest answer (``status.token``, ``status.expirationTimestamp``)."""
    api_version = "authentication.k8s.io/v1"
    if body is None or body == {}:
        body = {"spec": {}}
    spec = _spec(body, "TokenRequest", api_version)
    audiences = _string_list(spec.get("audiences"), "spec.audiences") or [API_AUDIENCE]
    seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION_S)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < MIN_EXPIRATION_S:
        raise ApiError(
            422,
            f"spec.expirationSeconds: Invalid value: {seconds!r}: may not specify a duration "
            f"less than {MIN_EXPIRATION_S} seconds",
            reason="Invalid",
        )
    seconds = min(seconds, MAX_EXPIRATION_S)
    expires = now + seconds
    token = signer.issue(ServiceAccountClaims(namespace, name, sa_uid, tuple(audiences), expires))
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": api_version,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds},
        "status": {"token": token, "expirationTimestamp": stamp},
    }


def rbac_objects_wanted(namespace: str) -> list[tuple[str, str, str | None]]:
    """(plural, kind, namespace) of the RBAC lists one decision reads."""
    wanted: list[tuple[str, str, str | None]] = [
        ("clusterroles", "ClusterRole", None),
        ("clusterrolebindings", "ClusterRoleBinding", None),
    ]
    if namespace:
        wanted += [("roles", "Role", namespace), ("rolebindings", "RoleBinding", namespace)]
    return wanted


def by_name(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str((item.get("metadata") or {}).get("name")): item for item in items}
