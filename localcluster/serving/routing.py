"""Pure routing: an Istio VirtualService spec → a route table, and the per-request choices.

Supported subset of ``spec.http[0]``: ``route[] {destination {host, port{number}}, weight,
headers.request.set}``, ``mirror {host, port}``, ``mirrorPercentage {value}`` (or the legacy
``mirrorPercent``). ``match`` blocks and further ``http`` entries are ignored: kubeloop writes one
catch-all route per MLModel.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from localcluster.serving import constants as c

# host, port → base URL of a running local predictor, or None when it is not (yet) available.
HostResolver = Callable[[str, int | None], str | None]


class Destination(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    url: str | None
    weight: int
    role: str


class RouteTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    destinations: tuple[Destination, ...] = ()
    mirror: Destination | None = None
    mirror_percent: float = 0.0

    @property
    def total_weight(self) -> int:
        return sum(d.weight for d in self.destinations)


class VirtualServiceError(ValueError):
    """The VirtualService cannot be realized; the message names the offending field."""


def choose_destination(table: RouteTable, rng: random.Random) -> Destination | None:
    """Weighted choice; deterministic for a seeded ``rng``. None when every weight is 0."""
    total = table.total_weight
    if total <= 0:
        return None
    point = rng.random() * total
    for destination in table.destinations:
        if destination.weight <= 0:
            continue
        point -= destination.weight
        if point < 0:
            return destination
    return next(d for d in reversed(table.destinations) if d.weight > 0)


def should_mirror(table: RouteTable, rng: random.Random) -> bool:
    if table.mirror is None or table.mirror.url is None or table.mirror_percent <= 0:
        return False
    return table.mirror_percent >= 100 or rng.random() * 100.0 < table.mirror_percent


def _host_port(block: Any, field: str) -> tuple[str, int | None]:
    if (
        not isinstance(block, Mapping)
        or not isinstance(block.get("host"), str)
        or not block["host"]
    ):
        raise VirtualServiceError(f"{field}.host must be a non-empty string")
    port = block.get("port", {})
    number = port.get("number") if isinstance(port, Mapping) else None
    if number is not None and not isinstance(number, int):
        raise VirtualServiceError(f"{field}.port.number must be an integer, got {number!r}")
    return block["host"], number


def _declared_role(route: Mapping[str, Any]) -> str | None:
    headers = route.get("headers") or {}
    request_set = (headers.get("request") or {}).get("set") or {}
    role = request_set.get(c.ROLE_HEADER)
    return role if role in c.ROLES else None


def _weight(route: Mapping[str, Any], index: int, count: int) -> int:
    weight = route.get("weight")
    if weight is None:
        return 100 if count == 1 else 0
    if not isinstance(weight, int) or weight < 0:
        raise VirtualServiceError(f"spec.http[0].route[{index}].weight must be an integer >= 0")
    return weight


def _mirror_percent(http: Mapping[str, Any]) -> float:
    percentage = http.get("mirrorPercentage")
    if isinstance(percentage, Mapping) and "value" in percentage:
        value = percentage["value"]
    else:
        value = http.get("mirrorPercent", 100)
    if not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise VirtualServiceError(
            f"spec.http[0].mirrorPercentage.value must be in [0, 100], got {value!r}"
        )
    return float(value)


def route_table_from_spec(spec: Mapping[str, Any], resolve: HostResolver) -> RouteTable:
    """Translate ``VirtualService.spec`` into a route table (raises VirtualServiceError)."""
    http_routes = spec.get("http")
    if not isinstance(http_routes, list) or not http_routes:
        raise VirtualServiceError("spec.http must be a non-empty list")
    http = http_routes[0]
    routes = http.get("route")
    if not isinstance(routes, list) or not routes:
        raise VirtualServiceError("spec.http[0].route must be a non-empty list")
    parsed = []
    for index, route in enumerate(routes):
        host, port = _host_port(
            route.get("destination"), f"spec.http[0].route[{index}].destination"
        )
        parsed.append((host, port, _weight(route, index, len(routes)), _declared_role(route)))
    heaviest = max(range(len(parsed)), key=lambda i: parsed[i][2])
    destinations = tuple(
        Destination(
            host=host,
            url=resolve(host, port),
            weight=weight,
            # Without an explicit role header the heaviest destination is the stable one.
            role=role or (c.ROLE_STABLE if index == heaviest else c.ROLE_CANDIDATE),
        )
        for index, (host, port, weight, role) in enumerate(parsed)
    )
    mirror = None
    mirror_percent = 0.0
    if http.get("mirror") is not None:
        host, port = _host_port(http["mirror"], "spec.http[0].mirror")
        mirror = Destination(host=host, url=resolve(host, port), weight=0, role=c.ROLE_SHADOW)
        mirror_percent = _mirror_percent(http)
    return RouteTable(destinations=destinations, mirror=mirror, mirror_percent=mirror_percent)


def loopback_url(host: str, port: int | None) -> str | None:
    """``127.0.0.1``/``localhost`` with an explicit port is taken literally (benchmarks, tests)."""
    if host in ("127.0.0.1", "localhost") and port:
        return f"http://127.0.0.1:{port}"
    return None


def static_resolver(mapping: Mapping[str, str]) -> HostResolver:
    """Resolve hosts from a fixed host → URL map; a host that is already a URL resolves to itself."""

    def resolve(host: str, port: int | None) -> str | None:
        if host.startswith(("http://", "https://")):
            return host.rstrip("/")
        return loopback_url(host, port) or mapping.get(host)

    return resolve
