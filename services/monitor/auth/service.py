"""The monitor's authenticator: tokens → identities → verdicts, with brief bounded caches.

Shell around the pure rules of :mod:`services.monitor.auth.core`: it holds the embedded token,
the Kubernetes reviewer (TokenReview + SubjectAccessReview, :mod:`.kube`), the verdict caches
and the feedback rate limiter, and counts refusals for ``/metrics``. Both listeners (the
aiohttp app and the fast ingest port) ask it before doing anything with a request.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from services.monitor.auth.core import (
    EMBEDDED,
    UNAUTHENTICATED,
    Access,
    Identity,
    RateLimiter,
    ResourceCheck,
    RouteClass,
    TtlCache,
    Verdict,
    bearer_token,
    decide,
    needed_check,
    same_token,
)
from services.monitor.auth.kube import KubeReviewer, ReviewUnavailable

if TYPE_CHECKING:
    from services.monitor.config import AuthSettings

log = logging.getLogger(__name__)

UNAVAILABLE = Verdict(503, "auth_unavailable", "the Kubernetes API did not answer a review; retry")
INSECURE_WARNING = (
    "!!! MONITOR AUTHENTICATION IS DISABLED: anyone who can reach this monitor can change "
    "model configs, forge the figures rollouts are judged on, send labels and read every "
    "report. Only for a throwaway local experiment. !!!"
)


class MonitorAuth:
    """``check(access, authorization_header, peer)`` → (verdict, identity)."""

    def __init__(
        self,
        settings: AuthSettings,
        clock: Callable[[], float],
        token: str | None,
        reviewer: KubeReviewer | None = None,
    ) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.clock = clock
        self._token = token
        self.reviewer = reviewer
        self._operators = frozenset(settings.operators)
        self._identities: TtlCache[str, Identity | None] = TtlCache(
            settings.cache_ttl_s, settings.cache_entries
        )
        self._reviews: TtlCache[tuple[Identity, ResourceCheck], bool] = TtlCache(
            settings.cache_ttl_s, settings.cache_entries
        )
        self._feedback_limit = RateLimiter(
            settings.feedback_rate_per_s, settings.feedback_burst, settings.cache_entries
        )
        self.refused: Counter[tuple[str, int]] = Counter()  # (route class, status)
        self.dropped_unconfigured = 0
        if not self.enabled:
            log.warning(INSECURE_WARNING)

    @property
    def embedded_token(self) -> str | None:
        return self._token

    # ------------------------------------------------------------------ identities

    def _local_identity(self, token: str) -> Identity | None:
        if self._token is not None and same_token(token, self._token):
            return EMBEDDED
        return None

    def check_now(self, access: Access, header: str | None, peer: str) -> Verdict | None:
        """The verdict when no review is needed (open routes, the embedded token, no token,
        ingest); None when only :meth:`check` can tell."""
        if not self.enabled or access.route is RouteClass.OPEN:
            return self._count(access, self._admit(access, EMBEDDED, None, peer))
        token = bearer_token(header)
        identity = self._local_identity(token) if token is not None else None
        if identity is not None or token is None or self.reviewer is None:
            allowed = None
            return self._count(access, self._admit(access, identity, allowed, peer))
        if access.route is RouteClass.INGEST and self.settings.network_ingest:
            # KServe's agent sends no credentials: a token here is not the predictors'.
            return self._count(access, self._admit(access, None, None, peer))
        return None

    async def check(self, access: Access, header: str | None, peer: str) -> Verdict:
        quick = self.check_now(access, header, peer)
        if quick is not None:
            return quick
        token = bearer_token(header)
        assert token is not None and self.reviewer is not None
        try:
            identity = await self._review_token(token)
            allowed = None
            check = needed_check(access)
            if identity is not None and check is not None:
                allowed = await self._review_access(identity, check)
        except ReviewUnavailable as error:
            log.warning("auth review failed: %s", error)
            return self._count(access, UNAVAILABLE)
        return self._count(access, self._admit(access, identity, allowed, peer))

    def is_anonymous_ingest(self, header: str | None) -> bool:
        """Ingest that came in on the NetworkPolicy's word alone: only configured models."""
        if not self.enabled:
            return False
        token = bearer_token(header)
        return token is None or self._local_identity(token) is None

    async def _review_token(self, token: str) -> Identity | None:
        assert self.reviewer is not None
        key = hashlib.sha256(token.encode()).hexdigest()  # the token itself is not kept
        now = self.clock()
        cached = self._identities.get(key, now)
        if cached is not None or key in self._identities._entries:
            return cached
        identity = await self.reviewer.review_token(token)
        ttl = self.settings.cache_ttl_s if identity else self.settings.deny_cache_ttl_s
        self._identities.put(key, identity, self.clock(), ttl)
        return identity

    async def _review_access(self, identity: Identity, check: ResourceCheck) -> bool:
        assert self.reviewer is not None
        now = self.clock()
        cached = self._reviews.get((identity, check), now)
        if cached is not None:
            return cached
        allowed = await self.reviewer.allowed(identity, check)
        ttl = self.settings.cache_ttl_s if allowed else self.settings.deny_cache_ttl_s
        self._reviews.put((identity, check), allowed, self.clock(), ttl)
        return allowed

    # ------------------------------------------------------------------ verdicts

    def _admit(
        self, access: Access, identity: Identity | None, allowed: bool | None, peer: str
    ) -> Verdict:
        if not self.enabled:
            verdict = Verdict(200)
        else:
            verdict = decide(
                access, identity, self._operators, allowed, self.settings.network_ingest
            )
        limited = identity is None or not identity.embedded  # kubeloop's own: not limited
        if verdict.allowed and access.route is RouteClass.FEEDBACK and limited:
            client = identity.username if identity is not None else f"peer:{peer}"
            wait = self._feedback_limit.allow(client, self.clock())
            if wait > 0:
                message = f"too many feedback requests; retry in {wait:.2f}s"
                return Verdict(429, "rate_limited", message)
        return verdict

    def _count(self, access: Access, verdict: Verdict) -> Verdict:
        if not verdict.allowed:
            self.refused[(access.route.value, verdict.status)] += 1
        return verdict

    async def close(self) -> None:
        if self.reviewer is not None:
            await self.reviewer.close()


__all__ = ["INSECURE_WARNING", "UNAUTHENTICATED", "MonitorAuth"]
