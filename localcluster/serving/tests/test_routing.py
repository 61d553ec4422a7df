"""Pure routing: VirtualService translation and seeded weighted choices."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from localcluster.serving import constants as c
from localcluster.serving.routing import (
    RouteTable,
    VirtualServiceError,
    choose_destination,
    route_table_from_spec,
    should_mirror,
    static_resolver,
)

HOSTS = {"v1-predictor.ns.svc.cluster.local": "http://127.0.0.1:1001", "v2-predictor.ns.svc.cluster.local": "http://127.0.0.1:1002", "v3-predictor.ns.svc.cluster.local": "http://127.0.0.1:1003"}  # fmt: skip


def spec(stable: int, candidate: int, mirror_percent: float | None = None) -> dict[str, Any]:
    http: dict[str, Any] = {
        "route": [
            {"destination": {"host": "v1-predictor.ns.svc.cluster.local"}, "weight": stable},
            {"destination": {"host": "v2-predictor.ns.svc.cluster.local"}, "weight": candidate},
        ]
    }
    if mirror_percent is not None:
        http["mirror"] = {"host": "v3-predictor.ns.svc.cluster.local"}
        http["mirrorPercentage"] = {"value": mirror_percent}
    return {"hosts": ["m.ns.example.com"], "http": [http]}


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize(("stable", "candidate"), [(99, 1), (90, 10), (50, 50), (0, 100)])
def test_weighted_choice_matches_weights(stable: int, candidate: int) -> None:
    table = route_table_from_spec(spec(stable, candidate), static_resolver(HOSTS))
    rng = random.Random(1234)
    n = 20_000
    chosen = [choose_destination(table, rng) for _ in range(n)]
    candidates = sum(
        1 for d in chosen if d is not None and d.url == HOSTS["v2-predictor.ns.svc.cluster.local"]
    )
    assert within_binomial(candidates, n, candidate / 100)
    if candidate in (0, 100):
        assert candidates == n * candidate // 100


def test_seeded_choice_is_deterministic() -> None:
    table = route_table_from_spec(spec(70, 30), static_resolver(HOSTS))
    first = [choose_destination(table, random.Random(7)) for _ in range(50)]
    second = [choose_destination(table, random.Random(7)) for _ in range(50)]
    assert first == second


def test_roles_default_to_heaviest_stable_and_mirror_shadow() -> None:
    table = route_table_from_spec(spec(90, 10, mirror_percent=100), static_resolver(HOSTS))
    assert [d.role for d in table.destinations] == [c.ROLE_STABLE, c.ROLE_CANDIDATE]
    assert table.mirror is not None and table.mirror.role == c.ROLE_SHADOW


def test_role_header_declared_on_the_route_wins() -> None:
    body = spec(40, 60)
    body["http"][0]["route"][0]["headers"] = {"request": {"set": {c.ROLE_HEADER: c.ROLE_STABLE}}}
    body["http"][0]["route"][1]["headers"] = {"request": {"set": {c.ROLE_HEADER: c.ROLE_CANDIDATE}}}
    table = route_table_from_spec(body, static_resolver(HOSTS))
    assert [d.role for d in table.destinations] == [c.ROLE_STABLE, c.ROLE_CANDIDATE]


def test_mirror_percentage_is_honoured() -> None:
    table = route_table_from_spec(spec(100, 0, mirror_percent=25.0), static_resolver(HOSTS))
    rng = random.Random(99)
    n = 20_000
    mirrored = sum(should_mirror(table, rng) for _ in range(n))
    assert within_binomial(mirrored, n, 0.25)


def test_no_mirror_without_mirror_block_or_at_zero_percent() -> None:
    rng = random.Random(1)
    assert not should_mirror(route_table_from_spec(spec(100, 0), static_resolver(HOSTS)), rng)
    zero = route_table_from_spec(spec(100, 0, mirror_percent=0), static_resolver(HOSTS))
    assert not any(should_mirror(zero, rng) for _ in range(1000))


def test_single_destination_without_weight_takes_everything() -> None:
    body = {"http": [{"route": [{"destination": {"host": "v1-predictor.ns.svc.cluster.local"}}]}]}
    table = route_table_from_spec(body, static_resolver(HOSTS))
    assert table.destinations[0].weight == 100 and table.destinations[0].role == c.ROLE_STABLE


def test_all_zero_weights_choose_nothing() -> None:
    table = route_table_from_spec(spec(0, 0), static_resolver(HOSTS))
    assert choose_destination(table, random.Random(1)) is None
    assert choose_destination(RouteTable(), random.Random(1)) is None


def test_unknown_host_is_kept_unresolved() -> None:
    body = {"http": [{"route": [{"destination": {"host": "nowhere"}, "weight": 100}]}]}
    table = route_table_from_spec(body, static_resolver(HOSTS))
    assert table.destinations[0].url is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "spec.http"),
        ({"http": [{}]}, "spec.http[0].route"),
        ({"http": [{"route": [{"weight": 100}]}]}, "spec.http[0].route[0].destination.host"),
        ({"http": [{"route": [{"destination": {"host": "a"}, "weight": -1}]}]}, "weight"),
        (
            {"http": [{"route": [{"destination": {"host": "a", "port": {"number": "x"}}}]}]},
            "port.number",
        ),
        (
            {
                "http": [
                    {
                        "route": [{"destination": {"host": "a"}}],
                        "mirror": {"host": "b"},
                        "mirrorPercentage": {"value": 150},
                    }
                ]
            },
            "mirrorPercentage",
        ),
    ],
)
def test_invalid_virtualservice_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(VirtualServiceError, match=field.replace("[", r"\[").replace("]", r"\]")):
        route_table_from_spec(body, static_resolver(HOSTS))
