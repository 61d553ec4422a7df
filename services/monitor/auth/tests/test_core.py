"""The pure authorization rules: route classes, tokens, verdicts, caches, the rate limiter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.auth import EMBEDDED_USER
from services.monitor.auth.core import (
    EMBEDDED,
    Access,
    Identity,
    RateLimiter,
    RouteClass,
    TtlCache,
    bearer_token,
    classify,
    decide,
    needed_check,
)

OPERATOR = "system:serviceaccount:kubeloop-system:kubeloop-operator"
LABELER = Identity("system:serviceaccount:team-a:labeler", ("system:authenticated",))


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/metrics", RouteClass.OPEN),
        ("GET", "/healthz", RouteClass.OPEN),
        ("GET", "/readyz", RouteClass.OPEN),
        ("POST", "/metrics", RouteClass.OPERATOR),
        ("POST", "/", RouteClass.INGEST),
        ("POST", "/v1/events", RouteClass.INGEST),
        ("PUT", "/v1/models/a/m/config", RouteClass.OPERATOR),
        ("GET", "/v1/models/a/m/config", RouteClass.READ),
        ("POST", "/v1/models/a/m/drift/evaluate", RouteClass.OPERATOR),
        ("GET", "/v1/models/a/m/drift/evaluate", RouteClass.OPERATOR),
        ("POST", "/v1/drift/evaluate", RouteClass.OPERATOR),
        ("POST", "/v1/models/a/m/feedback", RouteClass.FEEDBACK),
        ("GET", "/v1/models/a/m/feedback", RouteClass.OPERATOR),
        ("GET", "/v1/models/a/m/figures", RouteClass.READ),
        ("GET", "/v1/models/a/m/quality/report", RouteClass.READ),
        ("GET", "/v1/models", RouteClass.READ_ALL),
        ("GET", "/v1/bad-input", RouteClass.READ_ALL),
        ("GET", "/v1/reports/abc", RouteClass.READ_ALL),
        ("DELETE", "/v1/anything/new", RouteClass.OPERATOR),  # closed until classified
    ],
)
def test_every_route_has_a_class(method: str, path: str, route: RouteClass) -> None:
    assert classify(method, path).route is route


def test_model_routes_carry_their_namespace() -> None:
    assert classify("POST", "/v1/models/team-a/churn/feedback") == Access(
        RouteClass.FEEDBACK, "team-a", "churn"
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc.def-_~+/==", "abc.def-_~+/=="),
        ("  Bearer   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("Bearer a\x00b", None),
        ("Bearer é", None),
        ("Bearer " + "a" * 9000, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@given(st.text(max_size=300))
def test_any_header_is_a_token_or_none(header: str) -> None:
    token = bearer_token(header)
    assert token is None or (token.isascii() and " " not in token)


def test_decide_by_route() -> None:
    ops = frozenset({OPERATOR})
    config = Access(RouteClass.OPERATOR, "team-a", "churn")
    feedback = Access(RouteClass.FEEDBACK, "team-a", "churn")
    read = Access(RouteClass.READ, "team-a", "churn")
    ingest = Access(RouteClass.INGEST)
    assert decide(Access(RouteClass.OPEN), None, ops).allowed
    for access in (config, feedback, read, ingest):
        assert decide(access, None, ops).status == 401
        assert decide(access, EMBEDDED, ops).allowed
        assert decide(access, Identity(OPERATOR), ops).allowed
    assert decide(config, LABELER, ops, allowed_by_review=True).status == 403
    assert decide(ingest, LABELER, ops).status == 403
    assert decide(feedback, LABELER, ops, allowed_by_review=False).status == 403
    assert decide(feedback, LABELER, ops, allowed_by_review=None).status == 403
    assert decide(feedback, LABELER, ops, allowed_by_review=True).allowed
    assert decide(read, LABELER, ops, allowed_by_review=True).allowed
    # Tokenless ingest on the NetworkPolicy's word (KServe's agent): allowed, nothing else is.
    assert decide(ingest, None, ops, network_ingest=True).allowed
    assert decide(config, None, ops, network_ingest=True).status == 401


def test_needed_checks_are_the_documented_ones() -> None:
    feedback = needed_check(Access(RouteClass.FEEDBACK, "team-a", "churn"))
    assert feedback is not None
    assert (feedback.verb, feedback.resource, feedback.subresource, feedback.namespace) == (
        "create",
        "mlmodels",
        "feedback",
        "team-a",
    )
    read = needed_check(Access(RouteClass.READ, "team-a", "churn"))
    assert read is not None and (read.verb, read.subresource) == ("get", "status")
    every = needed_check(Access(RouteClass.READ_ALL))
    assert every is not None and every.namespace == ""
    assert needed_check(Access(RouteClass.OPERATOR)) is None
    assert EMBEDDED.username == EMBEDDED_USER


def test_cache_expires_and_stays_bounded() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl_s=10, max_entries=3)
    for index in range(5):
        cache.put(str(index), index, now=0)
    assert len(cache) == 3 and cache.get("0", 1) is None and cache.get("4", 1) == 4
    assert cache.get("4", 10.0) is None  # expired
    cache.put("short", 1, now=0, ttl_s=1)
    assert cache.get("short", 0.5) == 1 and cache.get("short", 1.5) is None


def test_rate_limiter_bursts_then_refills() -> None:
    limiter = RateLimiter(rate=2.0, burst=3.0, max_clients=2)
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.allow("a", 0.0)
    assert wait == pytest.approx(0.5)
    assert limiter.allow("b", 0.0) == 0.0  # per client
    assert limiter.allow("a", 0.5) == 0.0  # refilled one token
    for client in "cdefg":
        limiter.allow(client, 1.0)
    assert len(limiter._buckets) == 2  # bounded
