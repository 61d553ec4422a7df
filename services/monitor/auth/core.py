"""The monitor's authorization rules, pure: which route needs what, and the verdict.

No I/O and no clock: the shell (``services/monitor/auth/service.py``) passes the time in and
does the TokenReview / SubjectAccessReview calls this module asks for.

Route classes (issue 16):

=============  ==============================================  ==================================
class          routes                                          who
=============  ==============================================  ==================================
``open``       ``/metrics``, ``/healthz``, ``/readyz``         anyone the NetworkPolicy lets in
``operator``   ``PUT .../config``, ``POST .../drift/evaluate``, the embedded token, or an
               ``POST /v1/drift/evaluate``                     identity listed as an operator
``ingest``     ``POST /``, ``POST /v1/events``                 the embedded token (local
                                                               predictors); on a cluster, when
                                                               ``network`` ingest is allowed,
                                                               anyone the NetworkPolicy lets in,
                                                               for configured models only
``feedback``   ``POST .../feedback``                           SAR ``create`` ``mlmodels/feedback``
                                                               in the model's namespace
``read``       every other ``GET`` under ``/v1/models/{ns}``   SAR ``get`` ``mlmodels/status`` in
                                                               the namespace
``read-all``   ``GET /v1/models``, ``/v1/bad-input``,          SAR ``get`` ``mlmodels/status`` in
               ``/v1/reports/{id}``                            all namespaces
=============  ==============================================  ==================================

The embedded token (and an operator identity) may do everything. Unknown paths are
``read-all`` for GET and ``operator`` otherwise, so a route added later is closed until
someone classifies it here.
"""

from __future__ import annotations

import hmac
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from contracts.auth import (
    EMBEDDED_USER,
    FEEDBACK_SUBRESOURCE,
    MLMODELS,
    STATUS_SUBRESOURCE,
    VERB_CREATE,
    VERB_GET,
)
from contracts.kube import GROUP


class RouteClass(StrEnum):
    OPEN = "open"
    OPERATOR = "operator"
    INGEST = "ingest"
    FEEDBACK = "feedback"
    READ = "read"
    READ_ALL = "read-all"


@dataclass(frozen=True)
class Access:
    """What one request wants: its class and, when it names one, the model."""

    route: RouteClass
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to (TokenReview's ``status.user``, or the embedded token)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def embedded(self) -> bool:
        return self.username == EMBEDDED_USER


EMBEDDED = Identity(EMBEDDED_USER)


@dataclass(frozen=True)
class ResourceCheck:
    """The ``spec.resourceAttributes`` of the SubjectAccessReview a route needs."""

    verb: str
    namespace: str  # "" = all namespaces, as in a SubjectAccessReview
    group: str = GROUP
    resource: str = MLMODELS
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True)
class Verdict:
    """An HTTP answer for a refused request (401/403/429) or ``ALLOW``."""

    status: int
    reason: str = ""
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOW = Verdict(200)

_OPEN = {"/metrics", "/healthz", "/readyz"}
_INGEST = {"/", "/v1/events"}
_MODEL = re.compile(r"^/v1/models/([^/]+)/([^/]+)(/.*)?$")


def classify(method: str, path: str) -> Access:
    """The route class of ``method path`` (path without the query)."""
    method = method.upper()
    if path in _OPEN and method in ("GET", "HEAD"):
        return Access(RouteClass.OPEN)
    if path in _INGEST and method == "POST":
        return Access(RouteClass.INGEST)
    if path == "/v1/drift/evaluate":
        return Access(RouteClass.OPERATOR)
    match = _MODEL.match(path)
    if match is not None:
        namespace, name, tail = match.group(1), match.group(2), match.group(3) or ""
        if tail == "/feedback" and method == "POST":
            return Access(RouteClass.FEEDBACK, namespace, name)
        if method in ("GET", "HEAD") and tail not in ("/drift/evaluate", "/feedback"):
            return Access(RouteClass.READ, namespace, name)
        return Access(RouteClass.OPERATOR, namespace, name)
    if method in ("GET", "HEAD"):
        return Access(RouteClass.READ_ALL)
    return Access(RouteClass.OPERATOR)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None if absent or malformed.

    The scheme is case-insensitive (RFC 7235 §2.1); the token must be RFC 6750 ``b64token``
    characters, so nothing odd ever reaches a TokenReview or a log line.
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        return None
    if _B64TOKEN.match(token) is None:
        return None
    return token


_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


def same_token(presented: str, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def needed_check(access: Access) -> ResourceCheck | None:
    """The SubjectAccessReview an identity other than the embedded one/an operator needs."""
    # The model's name is in the review, so a Role may grant some models (resourceNames).
    if access.route is RouteClass.FEEDBACK:
        return ResourceCheck(
            VERB_CREATE, access.namespace, subresource=FEEDBACK_SUBRESOURCE, name=access.name
        )
    if access.route is RouteClass.READ:
        return ResourceCheck(
            VERB_GET, access.namespace, subresource=STATUS_SUBRESOURCE, name=access.name
        )
    if access.route is RouteClass.READ_ALL:
        return ResourceCheck(VERB_GET, "", subresource=STATUS_SUBRESOURCE)
    return None


UNAUTHENTICATED = Verdict(
    401, "unauthenticated", "send Authorization: Bearer <token> (see the monitor README)"
)


def decide(
    access: Access,
    identity: Identity | None,
    operators: frozenset[str],
    allowed_by_review: bool | None = None,
    network_ingest: bool = False,
) -> Verdict:
    """The verdict for ``identity`` (None: no valid token) on ``access``.

    ``allowed_by_review`` is the SubjectAccessReview's answer for :func:`needed_check`
    (None when none was asked). ``network_ingest``: unauthenticated ingest is left to the
    NetworkPolicy (KServe's agent cannot send credentials); the caller then keeps only
    events of configured models.
    """
    if access.route is RouteClass.OPEN:
        return ALLOW
    if identity is None:
        if access.route is RouteClass.INGEST and network_ingest:
            return ALLOW
        return UNAUTHENTICATED
    if identity.embedded or identity.username in operators:
        return ALLOW
    if access.route is RouteClass.OPERATOR:
        return Verdict(403, "forbidden", f"{identity.username!r} is not the operator")
    if access.route is RouteClass.INGEST:
        if network_ingest:
            return ALLOW
        return Verdict(403, "forbidden", f"{identity.username!r} may not send inference events")
    check = needed_check(access)
    if check is None or not allowed_by_review:
        what = _describe(check)
        return Verdict(403, "forbidden", f"{identity.username!r} may not {what}")
    return ALLOW


def _describe(check: ResourceCheck | None) -> str:
    if check is None:
        return "do this"
    where = f"namespace {check.namespace!r}" if check.namespace else "all namespaces"
    return f"{check.verb} {check.resource}/{check.subresource} in {where}"


K = TypeVar("K")
V = TypeVar("V")


@dataclass
class TtlCache(Generic[K, V]):
    """A bounded, time-limited memo (least recently stored evicted first); time passed in."""

    ttl_s: float
    max_entries: int
    _entries: OrderedDict[K, tuple[float, V]] = field(default_factory=OrderedDict)

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if now >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V, now: float, ttl_s: float | None = None) -> None:
        self._entries[key] = (now + (self.ttl_s if ttl_s is None else ttl_s), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class RateLimiter:
    """Token bucket per client: ``rate`` requests/s sustained, ``burst`` at once.

    At most ``max_clients`` buckets are kept; the least recently seen is dropped first (a
    dropped client starts again with a full bucket — a bounded-memory trade-off).
    """

    rate: float
    burst: float
    max_clients: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def allow(self, client: str, now: float, cost: float = 1.0) -> float:
        """0.0 when allowed (and charged), else the seconds until it would be."""
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= cost
        self._buckets[client] = (tokens - cost if allowed else tokens, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if allowed:
            return 0.0
        return (cost - tokens) / self.rate if self.rate > 0 else math.inf
