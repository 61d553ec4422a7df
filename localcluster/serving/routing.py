"""Pure routing: an Istio VirtualService spec → a route table, and the per-request choices.

Supported subset of ``spec.http[]``, evaluated in order as Istio does (the first entry whose
``match`` matches wins; an entry without ``match`` matches everything, and entries after it
are never reached): ``name``; ``match[] {headers {<lowercase name>: {exact | prefix |
regex}}}`` (blocks OR-ed, headers within a block AND-ed); ``route[] {destination {host,
port{number}}, weight, headers.request.set}``; ``mirror {host, port}``, ``mirrorPercentage
{value}`` (or the legacy ``mirrorPercent``). What Istio would reject is refused here too
(``VirtualServiceError`` naming the field): a ``StringMatch`` with more than one of exact /
prefix / regex, a regex RE2 cannot compile (lookaround, backreferences), an upper-case header
name, an unknown field. Match conditions Istio has but this stand-in does not implement
(``uri``, ``method``, ``queryParams`` …) are refused by name rather than ignored.

Sticky assignment: the ``kubeloop.io/assignment`` annotation (``contracts.kube``) names the
header or request input whose hash is the request's bucket (``contracts.headers``); the router
sets the bucket header from it when the request has none, before the matches are evaluated.
On a real mesh the same header has to be set in front of the sidecar.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.headers import BUCKET_HEADER, assignment_bucket
from contracts.kube import ASSIGNMENT_ANNOTATION
from localcluster.serving import constants as c

# host, port → base URL of a running local predictor, or None when it is not (yet) available.
HostResolver = Callable[[str, int | None], str | None]


class Destination(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    url: str | None
    weight: int
    role: str


class StringMatch(BaseModel):
    """Istio's ``StringMatch`` (case-sensitive), exactly one of the three set."""

    model_config = ConfigDict(frozen=True)

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        if self.prefix is not None:
            return value.startswith(self.prefix)
        assert self.regex is not None
        return re.fullmatch(self.regex, value) is not None  # Envoy's safe_regex: full match


HeaderConditions = tuple[tuple[str, StringMatch], ...]  # AND-ed; names lowercase


class RouteAction(BaseModel):
    """Where a matched request goes: weighted destinations and an optional mirror."""

    model_config = ConfigDict(frozen=True)

    destinations: tuple[Destination, ...] = ()
    mirror: Destination | None = None
    mirror_percent: float = 0.0

    @property
    def total_weight(self) -> int:
        return sum(d.weight for d in self.destinations)


class HttpRoute(RouteAction):
    """One ``spec.http`` entry that has a ``match`` (blocks OR-ed)."""

    name: str | None = None
    matches: tuple[HeaderConditions, ...] = ()

    def applies(self, headers: Mapping[str, str]) -> bool:
        return any(
            all(condition.matches(headers.get(name)) for name, condition in block)
            for block in self.matches
        )


class Assignment(BaseModel):
    """From the assignment annotation: hash ``key`` (a header, or a request input) into
    ``header``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    by: str
    key: str
    header: str = BUCKET_HEADER


class RouteTable(RouteAction):
    """The catch-all entry's action (the fields of :class:`RouteAction`), the entries with a
    ``match`` in front of it, and the sticky assignment."""

    matched: tuple[HttpRoute, ...] = ()
    has_default: bool = True  # False: a request no entry matches gets 404, as from Envoy
    assignment: Assignment | None = None

    def route_for(self, headers: Mapping[str, str]) -> RouteAction | None:
        """The action of the first entry that applies to the (lowercase-keyed) headers."""
        for route in self.matched:
            if route.applies(headers):
                return route
        return self if self.has_default else None


class VirtualServiceError(ValueError):
    """The VirtualService cannot be realized; the message names the offending field."""


def choose_destination(table: RouteAction, rng: random.Random) -> Destination | None:
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


def should_mirror(table: RouteAction, rng: random.Random) -> bool:
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


def _weight(route: Mapping[str, Any], field: str, count: int) -> int:
    weight = route.get("weight")
    if weight is None:
        return 100 if count == 1 else 0
    if not isinstance(weight, int) or weight < 0:
        raise VirtualServiceError(f"{field}.weight must be an integer >= 0")
    return weight


def _mirror_percent(http: Mapping[str, Any], field: str) -> float:
    percentage = http.get("mirrorPercentage")
    if isinstance(percentage, Mapping) and "value" in percentage:
        value = percentage["value"]
    else:
        value = http.get("mirrorPercent", 100)
    if not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise VirtualServiceError(
            f"{field}.mirrorPercentage.value must be in [0, 100], got {value!r}"
        )
    return float(value)


# Match conditions Istio accepts that this stand-in does not evaluate: refused by name.
_UNSUPPORTED_MATCH = frozenset(
    {"uri", "scheme", "method", "authority", "port", "queryParams", "ignoreUriCase",
     "withoutHeaders", "sourceLabels", "gateways", "sourceNamespace", "statPrefix"}
)  # fmt: skip
_HTTP_FIELDS = frozenset({"name", "match", "route", "mirror", "mirrorPercentage", "mirrorPercent"})
# Accepted by Python's re, refused by RE2 (Go's regexp, what Istio compiles with).
_NOT_RE2 = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|\(\?P=|[*+?}]\+")


def _string_match(value: Any, field: str) -> StringMatch:
    if not isinstance(value, Mapping):
        raise VirtualServiceError(f"{field} must be an object with exact, prefix or regex")
    unknown = set(value) - {"exact", "prefix", "regex"}
    if unknown:
        raise VirtualServiceError(f"{field}: unknown field(s) {sorted(unknown)}")
    set_ = [k for k in ("exact", "prefix", "regex") if value.get(k) is not None]
    if len(set_) != 1:
        raise VirtualServiceError(f"{field} must set exactly one of exact, prefix, regex")
    if not isinstance(value[set_[0]], str):
        raise VirtualServiceError(f"{field}.{set_[0]} must be a string")
    if set_[0] == "regex":
        regex = value["regex"]
        if _NOT_RE2.search(regex):
            raise VirtualServiceError(
                f"{field}.regex {regex!r} is not RE2 (lookaround, backreference)"
            )
        try:
            re.compile(regex)
        except re.error as exc:
            raise VirtualServiceError(f"{field}.regex {regex!r} does not compile: {exc}") from None
    return StringMatch(**{set_[0]: value[set_[0]]})


def _matches(raw: Any, field: str) -> tuple[HeaderConditions, ...]:
    if not isinstance(raw, list) or not raw:
        raise VirtualServiceError(f"{field} must be a non-empty list")
    blocks = []
    for index, block in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(block, Mapping):
            raise VirtualServiceError(f"{where} must be an object")
        unsupported = sorted(set(block) & _UNSUPPORTED_MATCH)
        if unsupported:
            raise VirtualServiceError(
                f"{where}.{unsupported[0]}: not supported by the local router"
            )
        unknown = sorted(set(block) - {"headers", "name"})
        if unknown:
            raise VirtualServiceError(f"{where}: unknown field(s) {unknown}")
        headers = block.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise VirtualServiceError(f"{where}.headers must be an object")
        conditions = []
        for name, value in headers.items():
            if not name or name != name.lower():
                raise VirtualServiceError(f"{where}.headers: name {name!r} must be lowercase")
            conditions.append((name, _string_match(value, f"{where}.headers.{name}")))
        blocks.append(tuple(conditions))
    return tuple(blocks)


def _route_action(http: Mapping[str, Any], field: str, resolve: HostResolver) -> dict[str, Any]:
    unknown = sorted(set(http) - _HTTP_FIELDS)
    if unknown:
        raise VirtualServiceError(f"{field}: unknown or unsupported field(s) {unknown}")
    routes = http.get("route")
    if not isinstance(routes, list) or not routes:
        raise VirtualServiceError(f"{field}.route must be a non-empty list")
    parsed = []
    for index, route in enumerate(routes):
        where = f"{field}.route[{index}]"
        if not isinstance(route, Mapping):
            raise VirtualServiceError(f"{where} must be an object")
        host, port = _host_port(route.get("destination"), f"{where}.destination")
        parsed.append((host, port, _weight(route, where, len(routes)), _declared_role(route)))
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
        host, port = _host_port(http["mirror"], f"{field}.mirror")
        mirror = Destination(host=host, url=resolve(host, port), weight=0, role=c.ROLE_SHADOW)
        mirror_percent = _mirror_percent(http, field)
    return {"destinations": destinations, "mirror": mirror, "mirror_percent": mirror_percent}


def _assignment(annotations: Mapping[str, Any] | None) -> Assignment | None:
    raw = (annotations or {}).get(ASSIGNMENT_ANNOTATION)
    if not raw:
        return None
    try:
        assignment = Assignment.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VirtualServiceError(f"annotation {ASSIGNMENT_ANNOTATION}: {exc}") from None
    if assignment.by not in ("header", "entity"):
        raise VirtualServiceError(
            f"annotation {ASSIGNMENT_ANNOTATION}: by must be header or entity"
        )
    return assignment


def route_table_from_spec(
    spec: Mapping[str, Any], resolve: HostResolver, annotations: Mapping[str, Any] | None = None
) -> RouteTable:
    """Translate ``VirtualService.spec`` (and its assignment annotation) into a route table
    (raises VirtualServiceError naming the field)."""
    http_routes = spec.get("http")
    if not isinstance(http_routes, list) or not http_routes:
        raise VirtualServiceError("spec.http must be a non-empty list")
    matched: list[HttpRoute] = []
    default: dict[str, Any] | None = None
    for index, http in enumerate(http_routes):
        field = f"spec.http[{index}]"
        if not isinstance(http, Mapping):
            raise VirtualServiceError(f"{field} must be an object")
        action = _route_action(http, field, resolve)
        if http.get("match") is None:
            default = action
            break  # Istio never reaches the entries after a catch-all
        matches = _matches(http["match"], f"{field}.match")
        matched.append(HttpRoute(name=http.get("name"), matches=matches, **action))
    return RouteTable(
        **(default or {}),
        matched=tuple(matched),
        has_default=default is not None,
        assignment=_assignment(annotations),
    )


def assignment_value(assignment: Assignment, headers: Mapping[str, str], body: bytes) -> str | None:
    """The text the bucket is the hash of: the header's value, or the entity input of the
    request's first row (a string as is, a number in its JSON spelling). None when absent."""
    if assignment.by == "header":
        return headers.get(assignment.key.lower())
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    value = _first_entity(payload, assignment.key)
    if value is None or isinstance(value, (dict, list)):
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _first_entity(payload: Any, key: str) -> Any:
    if not isinstance(payload, Mapping):
        return None
    rows = payload.get("instances", payload.get("inputs"))
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], Mapping):
        return None
    if "datatype" in rows[0]:  # v2 tensors: the one named like the key
        tensor = next((t for t in rows if isinstance(t, Mapping) and t.get("name") == key), None)
        data = tensor.get("data") if tensor else None
        while isinstance(data, list) and data:
            data = data[0]
        return data
    return rows[0].get(key)


def bucket_for(assignment: Assignment, headers: Mapping[str, str], body: bytes) -> str | None:
    """The bucket header's value for a request, or None when it has no key value."""
    value = assignment_value(assignment, headers, body)
    return None if value is None else str(assignment_bucket(value))


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
