"""Sticky assignment: the operator's VirtualService for ``spec.rollout.assignment``, the local
router's reading of it (only what Istio would accept), and users that keep their version."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from contracts.headers import BUCKET_HEADER, BUCKETS, assignment_bucket
from contracts.kube import ASSIGNMENT_ANNOTATION
from localcluster.serving import constants as c
from localcluster.serving.router import Router, new_client_session, serve
from localcluster.serving.routing import (
    RouteTable,
    VirtualServiceError,
    bucket_for,
    choose_destination,
    route_table_from_spec,
    static_resolver,
)
from localcluster.serving.tests.test_router import Upstream
from operators.api.mlmodel import Assignment, Traffic
from operators.backends.serving import Owner, TrafficTarget, bucket_regex, virtual_service

OWNER = Owner(namespace="ns", name="churn", uid="u-1")
STABLE_HOST = "churn-v1-predictor.ns.svc.cluster.local"
CANDIDATE_HOST = "churn-v2-predictor.ns.svc.cluster.local"


def rendered(candidate: int, assignment: Assignment, mirror: int = 0) -> dict[str, Any]:
    traffic = Traffic(stable=100 - candidate, candidate=candidate, mirror=mirror)
    return virtual_service(
        TrafficTarget(
            owner=OWNER,
            stable_version="1",
            candidate_version="2",
            traffic=traffic,
            assignment=assignment,
        )  # fmt: skip
    )


def local_table(vs: dict[str, Any], hosts: dict[str, str] | None = None) -> RouteTable:
    hosts = hosts or {STABLE_HOST: "http://127.0.0.1:1", CANDIDATE_HOST: "http://127.0.0.1:2"}
    annotations = vs["metadata"].get("annotations")
    return route_table_from_spec(vs["spec"], static_resolver(hosts), annotations)


def served_role(table: RouteTable, headers: dict[str, str], body: bytes, rng: random.Random) -> str:
    """What the router does per request: the bucket header (when absent), then the routes."""
    headers = dict(headers)
    if table.assignment is not None and table.assignment.header not in headers:
        bucket = bucket_for(table.assignment, headers, body)
        if bucket is not None:
            headers[table.assignment.header] = bucket
    route = table.route_for(headers)
    assert route is not None
    destination = choose_destination(route, rng)
    assert destination is not None
    return destination.role


BY_HEADER = Assignment(by="header", key="x-user-id")
BY_ENTITY = Assignment(by="entity", key="user_id")


# ----------------------------------------------------------------------------- contracts


def test_bucket_is_a_stable_hash() -> None:
    assert assignment_bucket("user-42") == assignment_bucket("user-42")
    # SHA-256, not Python's salted hash(): the same in every process and language.
    assert assignment_bucket("") == int("e3b0c44298fc1c14", 16) % BUCKETS
    counts = [0] * BUCKETS
    for i in range(20_000):
        counts[assignment_bucket(f"user-{i}")] += 1
    assert min(counts) > 120 and max(counts) < 290  # 200 each, ±6 σ


@pytest.mark.parametrize("below", range(1, BUCKETS + 1))
def test_bucket_regex_matches_exactly_the_buckets_below(below: int) -> None:
    regex = re.compile(bucket_regex(below))
    assert [b for b in range(BUCKETS) if regex.fullmatch(str(b))] == list(range(below))
    for junk in ("", "100", "-1", "05", "1.0", " 1", "abc"):
        assert not regex.fullmatch(junk)


# ----------------------------------------------------------------------------- rendering


def test_request_assignment_renders_one_weighted_route() -> None:
    vs = rendered(10, Assignment())
    assert len(vs["spec"]["http"]) == 1 and "match" not in vs["spec"]["http"][0]
    assert "annotations" not in vs["metadata"]


def test_sticky_assignment_renders_bucket_routes_before_the_weighted_one() -> None:
    vs = rendered(10, BY_HEADER)
    first, second, last = vs["spec"]["http"]
    assert first["match"] == [{"headers": {BUCKET_HEADER: {"regex": bucket_regex(10)}}}]
    assert [r["destination"]["host"] for r in first["route"]] == [CANDIDATE_HOST]
    assert [r["destination"]["host"] for r in second["route"]] == [STABLE_HOST]
    assert "match" not in last and [r["weight"] for r in last["route"]] == [90, 10]
    assert json.loads(vs["metadata"]["annotations"][ASSIGNMENT_ANNOTATION]) == {
        "by": "header", "key": "x-user-id", "header": BUCKET_HEADER,
    }  # fmt: skip


@pytest.mark.parametrize("candidate", [0, 100])
def test_no_bucket_routes_without_a_split(candidate: int) -> None:
    assert len(rendered(candidate, BY_HEADER)["spec"]["http"]) == 1


def test_every_rendering_is_accepted_by_the_local_router() -> None:
    """The stand-in refuses what Istio refuses; kubeloop never renders that."""
    for candidate in range(0, 101):
        for assignment in (Assignment(), BY_HEADER, BY_ENTITY):
            local_table(rendered(candidate, assignment, mirror=candidate % 3))


# ----------------------------------------------------------------------------- stickiness


@pytest.mark.parametrize("assignment", [BY_HEADER, BY_ENTITY])
def test_one_user_sees_one_version_within_a_step(assignment: Assignment) -> None:
    rng = random.Random(7)
    table = local_table(rendered(10, assignment))
    users = [f"user-{i}" for i in range(2000)]

    def request(user: str) -> tuple[dict[str, str], bytes]:
        if assignment.by == "header":
            return {"x-user-id": user}, b"{}"
        return {}, json.dumps({"instances": [{"user_id": user, "x": 1.0}]}).encode()

    seen = {user: {served_role(table, *request(user), rng) for _ in range(5)} for user in users}
    assert all(len(roles) == 1 for roles in seen.values())
    on_candidate = {u for u, roles in seen.items() if roles == {c.ROLE_CANDIDATE}}
    n, p = len(users), 0.10
    assert abs(len(on_candidate) - n * p) <= 4 * math.sqrt(n * p * (1 - p))
    # The next step: every user already on the candidate stays there.
    wider = local_table(rendered(50, assignment))
    assert all(served_role(wider, *request(u), rng) == c.ROLE_CANDIDATE for u in on_candidate)


def test_request_level_split_stays_available() -> None:
    rng = random.Random(3)
    table = local_table(rendered(50, Assignment()))
    roles = {served_role(table, {"x-user-id": "user-1"}, b"{}", rng) for _ in range(50)}
    assert roles == {c.ROLE_STABLE, c.ROLE_CANDIDATE}


def test_requests_without_the_key_fall_back_to_the_weighted_split() -> None:
    rng = random.Random(5)
    table = local_table(rendered(50, BY_HEADER))
    roles = {served_role(table, {}, b"{}", rng) for _ in range(60)}
    assert roles == {c.ROLE_STABLE, c.ROLE_CANDIDATE}


def test_a_caller_supplied_bucket_is_honoured() -> None:
    table = local_table(rendered(10, BY_HEADER))
    rng = random.Random(1)
    assert served_role(table, {BUCKET_HEADER: "3", "x-user-id": "x"}, b"", rng) == c.ROLE_CANDIDATE
    assert served_role(table, {BUCKET_HEADER: "10"}, b"", rng) == c.ROLE_STABLE


def test_entity_from_v2_tensors_and_numbers() -> None:
    table = local_table(rendered(10, BY_ENTITY))
    assert table.assignment is not None
    v2 = {"inputs": [{"name": "user_id", "shape": [1], "datatype": "INT64", "data": [42]},
                     {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}  # fmt: skip
    v1 = {"instances": [{"user_id": 42}]}
    expected = str(assignment_bucket("42"))
    assert bucket_for(table.assignment, {}, json.dumps(v2).encode()) == expected
    assert bucket_for(table.assignment, {}, json.dumps(v1).encode()) == expected
    assert bucket_for(table.assignment, {}, b"not json") is None
    assert bucket_for(table.assignment, {}, b'{"instances": [[1, 2]]}') is None


# ----------------------------------------------------------------------------- refusals


def vs_with(http: list[dict[str, Any]]) -> dict[str, Any]:
    return {"hosts": ["m"], "http": http}


ROUTE = [{"destination": {"host": STABLE_HOST}}]


@pytest.mark.parametrize(
    ("http", "field"),
    [
        ([{"match": [{"headers": {"x-a": {"exact": "1", "prefix": "1"}}}], "route": ROUTE}],
         "spec.http[0].match[0].headers.x-a"),
        ([{"match": [{"headers": {"x-a": {"regex": "(?=a)b"}}}], "route": ROUTE}],
         "spec.http[0].match[0].headers.x-a.regex"),
        ([{"match": [{"headers": {"X-A": {"exact": "1"}}}], "route": ROUTE}],
         "spec.http[0].match[0].headers"),
        ([{"match": [{"uri": {"prefix": "/v1"}}], "route": ROUTE}], "spec.http[0].match[0].uri"),
        ([{"match": [{"headerz": {}}], "route": ROUTE}], "spec.http[0].match[0]"),
        ([{"route": ROUTE, "retries": {"attempts": 3}}], "spec.http[0]"),
        ([{"match": [], "route": ROUTE}], "spec.http[0].match"),
    ],
)  # fmt: skip
def test_what_istio_rejects_or_the_stand_in_lacks_is_refused_by_name(
    http: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(VirtualServiceError, match=re.escape(field)):
        route_table_from_spec(vs_with(http), static_resolver({}))


def test_bad_assignment_annotation_is_refused() -> None:
    with pytest.raises(VirtualServiceError, match=ASSIGNMENT_ANNOTATION):
        route_table_from_spec(vs_with([{"route": ROUTE}]), static_resolver({}),
                              {ASSIGNMENT_ANNOTATION: '{"by": "cookie", "key": "k"}'})  # fmt: skip


def test_first_matching_entry_wins_and_no_match_without_default_is_404() -> None:
    http = [
        {"match": [{"headers": {"x-a": {"prefix": "b"}}}, {"headers": {"x-c": {"exact": "1"}}}],
         "route": [{"destination": {"host": CANDIDATE_HOST}}]},
        {"match": [{"headers": {"x-a": {"regex": "b.*"}}}], "route": ROUTE},
    ]  # fmt: skip
    table = route_table_from_spec(vs_with(http), static_resolver({}))
    first = table.route_for({"x-a": "bee"})
    assert first is not None and first.destinations[0].host == CANDIDATE_HOST
    second = table.route_for({"x-c": "1"})
    assert second is not None and second.destinations[0].host == CANDIDATE_HOST
    assert table.route_for({"x-a": "cee"}) is None  # Envoy: 404, no route


# ----------------------------------------------------------------------------- the router


@pytest.fixture
async def ups() -> AsyncIterator[dict[str, Upstream]]:
    upstreams = {name: Upstream(name) for name in ("stable", "candidate")}
    for upstream in upstreams.values():
        await upstream.start()
    yield upstreams
    for upstream in upstreams.values():
        assert upstream.runner is not None
        await upstream.runner.cleanup()


async def test_router_keeps_each_user_on_one_version(ups: dict[str, Upstream]) -> None:
    hosts = {STABLE_HOST: ups["stable"].url, CANDIDATE_HOST: ups["candidate"].url}
    table = local_table(rendered(30, BY_HEADER), hosts)
    async with new_client_session() as session:
        router = Router(session, table, rng=random.Random(11))
        runner = await serve(router, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/models/m:predict"
        try:
            async with aiohttp.ClientSession() as client:
                for user in (f"user-{i}" for i in range(40)):
                    for _ in range(3):
                        answer = await client.post(url, data=b"{}", headers={"x-user-id": user})
                        assert answer.status == 200
                answer = await client.post(url, data=b"{}")  # no key: weighted, counted
                assert answer.status == 200
        finally:
            await runner.cleanup()
    by_user: dict[str, set[str]] = {}
    for name, upstream in ups.items():
        for seen in upstream.seen:
            user = seen["headers"].get("x-user-id")
            if user is None:
                continue
            by_user.setdefault(user, set()).add(name)
            assert seen["headers"][BUCKET_HEADER] == str(assignment_bucket(user))
    assert len(by_user) == 40 and all(len(v) == 1 for v in by_user.values())
    assert router.stats["assignment_key_missing"] == 1


def test_apply_sets_and_clears_the_assignment_annotation() -> None:
    """The operator's patch of an existing VirtualService carries the annotation with the
    spec: set for sticky assignment, null (deleted, RFC 7386) when back to request level."""
    from kubernetes.client.rest import ApiException

    from operators.backends.serving import KubeObjects

    patches: list[dict[str, Any]] = []

    class Custom:
        def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            raise ApiException(status=409)

        def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            patches.append(args[-1])
            return {}

    objects = KubeObjects.__new__(KubeObjects)
    objects.custom = Custom()  # type: ignore[assignment]
    objects.apply_virtual_service(rendered(10, BY_HEADER))
    objects.apply_virtual_service(rendered(10, Assignment()))
    first, second = (p["metadata"]["annotations"][ASSIGNMENT_ANNOTATION] for p in patches)
    assert json.loads(first)["key"] == "x-user-id"
    assert second is None
    assert len(patches[1]["spec"]["http"]) == 1
