"""Pure core of serving from Feast: which entities a request names, and the request the
predictor gets once the FeatureView's online values (or their defaults) are filled in.

A request names its entities by the FeatureView's join key (``spec.entity_key``) and may carry
request-time features beside it; the transformer adds one model column per feature, named as
the training set names it (``training_column``: ``<view>__<feature>``), so the predictor sees
exactly the columns the model was trained on. The entity input stays in the request: the
predictor drops inputs beyond its signature, and the prediction log keeps it for the monitor's
training-serving skew check.

Missing values: an entity the online store does not hold (or holds only expired rows of: Feast
returns nulls past the TTL, as the training set's point-in-time join does) gets each feature's
default, ``defaults[feature]`` where set, else 0 for numbers, false for booleans and "" for
strings; so does a single null feature of a known entity. Both are counted (:class:`FillCounts`).
Bad requests raise :class:`FeatureRequestError` (a 400 naming the input). No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.spark_feature_backfill.definition import feast_view_name, training_column
from contracts.feature_serving import FETCHED_AT_INPUT

Value = float | int | str | bool | None

_INT_TYPES = {"INT32", "INT64"}
_V2_DATATYPES = {
    "int32": "INT64",
    "int64": "INT64",
    "float32": "FP64",
    "float64": "FP64",
    "bool": "BOOL",
    "string": "BYTES",
}


class FeatureRequestError(ValueError):
    """A request the transformer cannot fill; the message names the input (answered 400)."""


@dataclass(frozen=True)
class FeatureServingSpec:
    """Which FeatureView's online values fill a request, keyed by which request input."""

    feature_view: str  # the FeatureView's Kubernetes name
    entity_key: str  # its join key: the request input naming the entity
    entity_type: str  # the join key's Feast value type (INT64, STRING, ...)
    features: Mapping[str, str]  # feature name -> dtype (the FeatureView's declared ones)
    defaults: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("features: at least one feature is needed")
        for name, dtype in self.features.items():
            if dtype not in _V2_DATATYPES:
                raise ValueError(f"features[{name!r}]: unknown dtype {dtype!r}")
        unknown = sorted(set(self.defaults) - set(self.features))
        if unknown:
            raise ValueError(f"defaults: {unknown} are not features of {self.feature_view!r}")
        for name, value in self.defaults.items():
            if not _fits(value, self.features[name]):
                raise ValueError(
                    f"defaults[{name!r}]: {value!r} is not a {self.features[name]} value"
                )

    @property
    def feast_view(self) -> str:
        return feast_view_name(self.feature_view)

    @property
    def feature_refs(self) -> list[str]:
        """``view:feature`` references, as ``FeatureStore.get_online_features`` takes them."""
        return [f"{self.feast_view}:{name}" for name in self.features]

    def column(self, feature: str) -> str:
        return training_column(self.feature_view, feature)

    @property
    def columns(self) -> dict[str, str]:
        """Model column -> feature name."""
        return {self.column(name): name for name in self.features}

    def default(self, feature: str) -> Value:
        if feature in self.defaults:
            return self.defaults[feature]
        dtype = self.features[feature]
        if dtype == "string":
            return ""
        if dtype == "bool":
            return False
        return 0 if dtype in ("int32", "int64") else 0.0


def _fits(value: Value, dtype: str) -> bool:
    if dtype == "string":
        return isinstance(value, str)
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if dtype in ("int32", "int64"):
        return float(value).is_integer()
    return math.isfinite(float(value))


@dataclass
class FillCounts:
    """What one request needed: rows, rows whose entity had no online values, and defaulted
    values per feature (the missing entities' included)."""

    rows: int = 0
    missing_entities: int = 0
    defaulted: dict[str, int] = field(default_factory=dict)


def _entity_value(value: Any, spec: FeatureServingSpec, where: str) -> Any:
    """The join key value as Feast looks it up: ``17``, ``17.0`` and ``"17"`` are the same
    INT64 entity (the monitor joins them as the same string, services/monitor/served.py)."""
    if value is None or isinstance(value, bool | dict | list):
        raise FeatureRequestError(
            f"{where}: {spec.entity_key!r} must be a {spec.entity_type} entity key, got {value!r}"
        )
    if spec.entity_type in _INT_TYPES:
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
                raise ValueError
            return int(number)
        except (TypeError, ValueError):
            raise FeatureRequestError(
                f"{where}: {spec.entity_key!r} must be an integer entity key, got {value!r}"
            ) from None
    if spec.entity_type == "STRING":
        return value if isinstance(value, str) else str(value)
    return value


def _v2_column(tensor: Mapping[str, Any], where: str) -> list[Any]:
    data, shape = tensor.get("data"), tensor.get("shape")
    if not isinstance(data, list) or not isinstance(shape, list) or not shape:
        raise FeatureRequestError(f"{where}: needs data and shape")
    flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    if flat and isinstance(flat[0], list) or len(flat) != shape[0]:
        raise FeatureRequestError(f"{where}: must have shape [N] or [N, 1], got {shape}")
    return flat


def _rows_of(body: Any) -> tuple[str, list[Any]]:
    """(the body's form, its rows): ``instances``/``inputs`` of feature objects (v1), or the
    tensors of ``inputs`` (v2)."""
    if not isinstance(body, Mapping):
        raise FeatureRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    key = "inputs" if "inputs" in body else "instances"
    items = body.get(key)
    if not isinstance(items, list) or not items:
        raise FeatureRequestError(f'"{key}" must be a non-empty list')
    if not all(isinstance(item, Mapping) for item in items):
        raise FeatureRequestError(
            f'"{key}" must hold objects naming the entity input (lists of values cannot)'
        )
    if key == "inputs" and all("datatype" in item for item in items):
        return "v2", items
    return key, items


def request_entities(body: Any, spec: FeatureServingSpec) -> list[Any]:
    """The entity of each row of a v1 (``instances``/``inputs`` objects) or v2 request."""
    form, items = _rows_of(body)
    served = {**spec.columns, FETCHED_AT_INPUT: FETCHED_AT_INPUT}
    if form == "v2":
        by_name = {str(t.get("name")): t for t in items}
        clash = sorted(set(by_name) & set(served))
        if clash:
            raise FeatureRequestError(
                f"inputs {clash} are filled from FeatureView {spec.feature_view!r}; send "
                f"{spec.entity_key!r} instead"
            )
        tensor = by_name.get(spec.entity_key)
        if tensor is None:
            raise FeatureRequestError(f"inputs lack the entity input {spec.entity_key!r}")
        where = f"input {spec.entity_key!r}"
        return [_entity_value(v, spec, where) for v in _v2_column(tensor, where)]
    entities = []
    for index, item in enumerate(items):
        where = f"{form}[{index}]"
        clash = sorted(set(item) & set(served))
        if clash:
            raise FeatureRequestError(
                f"{where}: {clash} are filled from FeatureView {spec.feature_view!r}; send "
                f"{spec.entity_key!r} instead"
            )
        if spec.entity_key not in item:
            raise FeatureRequestError(f"{where} lacks the entity input {spec.entity_key!r}")
        entities.append(_entity_value(item[spec.entity_key], spec, where))
    return entities


def _filled(
    spec: FeatureServingSpec, online: Mapping[str, Sequence[Value]], rows: int, counts: FillCounts
) -> dict[str, list[Value]]:
    """Feature name -> one value per row, defaults filled in and counted."""
    for name in spec.features:
        got = online.get(name)
        if got is None or len(got) != rows:
            # The online store answers every requested feature for every row: anything else is
            # the store's fault, not the request's.
            raise ValueError(f"online store answered {name!r} for {len(got or [])}/{rows} rows")
    counts.rows += rows
    values: dict[str, list[Value]] = {name: list(online[name]) for name in spec.features}
    for row in range(rows):
        if all(_missing(values[name][row]) for name in spec.features):
            counts.missing_entities += 1
        for name in spec.features:
            if _missing(values[name][row]):
                values[name][row] = spec.default(name)
                counts.defaulted[name] = counts.defaulted.get(name, 0) + 1
    return values


def _missing(value: Value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def with_features(
    body: Mapping[str, Any],
    spec: FeatureServingSpec,
    online: Mapping[str, Sequence[Value]],
    fetched_at: float | None = None,
) -> tuple[dict[str, Any], FillCounts]:
    """The request the predictor gets: ``body`` with one model column per feature, from
    ``online`` (feature name -> one value per row of :func:`request_entities`, nulls for what
    the store lacks), defaults filled in; and what was filled. With ``fetched_at`` (epoch s,
    when the store was read) every row also gets the ``FETCHED_AT_INPUT`` input: the skew
    check pairs the row with what the offline store knew then."""
    form, items = _rows_of(body)
    counts = FillCounts()
    if form == "v2":
        rows = len(request_entities(body, spec))
        values = _filled(spec, online, rows, counts)
        tensors = [
            {
                "name": spec.column(name),
                "shape": [rows],
                "datatype": _V2_DATATYPES[spec.features[name]],
                "data": values[name],
            }
            for name in spec.features
        ]
        if fetched_at is not None:
            tensors.append(
                {
                    "name": FETCHED_AT_INPUT,
                    "shape": [rows],
                    "datatype": "FP64",
                    "data": [fetched_at] * rows,
                }
            )
        return {**body, "inputs": [*items, *tensors]}, counts
    values = _filled(spec, online, len(items), counts)
    stamp = {} if fetched_at is None else {FETCHED_AT_INPUT: fetched_at}
    filled = [
        {**item, **{spec.column(name): values[name][i] for name in spec.features}, **stamp}
        for i, item in enumerate(items)
    ]
    return {**body, form: filled}, counts


def fill_request(
    body: Any,
    spec: FeatureServingSpec,
    lookup: Callable[[list[Any]], Mapping[str, Sequence[Value]]],
    clock: Callable[[], float] | None = None,
) -> tuple[dict[str, Any], FillCounts]:
    """:func:`request_entities`, ``lookup(entities)`` (feature name -> values), then
    :func:`with_features`: the whole preprocess with the store passed in. With ``clock``,
    its reading just after the lookup is each row's ``FETCHED_AT_INPUT``: every value in the
    answer was in the store by then. Read before it, the stamp would miss what was written
    while Feast prepared the read (it reloads its registry first: tens of ms under load), and
    the skew check would count a value the store had as newer than the moment it stamps."""
    entities = request_entities(body, spec)
    online = lookup(entities)
    fetched_at = clock() if clock is not None else None
    return with_features(body, spec, online, fetched_at)
