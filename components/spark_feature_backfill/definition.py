"""The FeatureView definition as the data components see it, and the offline store layout.

The components take the FeatureView as a JSON-able dict (camelCase keys, as in the custom
resource's spec); fields they do not use (backfill, online, store, ...) are ignored.

Offline store layout written by the backfill (and read by Feast and the training-set join):
Parquet under ``<path>/date=YYYY-MM-DD/`` (UTC date of the event) with the entity join-key
columns, ``event_timestamp``, ``created_timestamp`` and one column per declared feature.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.validation import problems

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
PARTITION_COLUMN = "date"
RESERVED_COLUMNS = frozenset({EVENT_TIMESTAMP, CREATED_TIMESTAMP, PARTITION_COLUMN})

# Canonical dtype names and the spellings accepted for each.
DTYPE_ALIASES: dict[str, str] = {
    "int32": "int32",
    "int": "int32",
    "integer": "int32",
    "int64": "int64",
    "long": "int64",
    "bigint": "int64",
    "float32": "float32",
    "float": "float32",
    "float64": "float64",
    "double": "float64",
    "string": "string",
    "str": "string",
    "bool": "bool",
    "boolean": "bool",
}
VALUE_TYPE_TO_DTYPE: dict[str, str] = {
    "INT32": "int32",
    "INT64": "int64",
    "STRING": "string",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "BOOL": "bool",
}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NON_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def feast_view_name(name: str) -> str:
    """A FeatureView's name as Feast and column prefixes use it (``user-activity`` →
    ``user_activity``): Feast names must be identifiers."""
    return _NON_IDENTIFIER.sub("_", name)


def training_column(view: str, feature: str) -> str:
    """The training set's (so the served model's) column for one feature of a view:
    ``<view>__<feature>``, the view as `feast_view_name` writes it, the separator Feast's
    `full_feature_names` uses."""
    return f"{feast_view_name(view)}__{feature}"


class DefinitionError(ValueError):
    """The FeatureView definition is invalid; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class EntitySpec(_Model):
    name: str = Field(min_length=1)
    join_key: str = Field(alias="joinKey", min_length=1)
    value_type: str = Field(default="STRING", alias="valueType")  # as the CR defaults

    @field_validator("value_type")
    @classmethod
    def _known_value_type(cls, value: str) -> str:
        upper = value.upper()
        if upper not in VALUE_TYPE_TO_DTYPE:
            raise ValueError(
                f"unknown valueType {value!r}; use one of {sorted(VALUE_TYPE_TO_DTYPE)}"
            )
        return upper

    @property
    def dtype(self) -> str:
        return VALUE_TYPE_TO_DTYPE[self.value_type]


class SourceSpec(_Model):
    path: str = Field(min_length=1)
    format: Literal["parquet", "csv"] = "parquet"
    timestamp_field: str = Field(alias="timestampField", min_length=1)
    created_timestamp_field: str | None = Field(default=None, alias="createdTimestampField")


class TransformationSpec(_Model):
    sql: str = Field(min_length=1)


class FeatureSpec(_Model):
    name: str = Field(min_length=1)
    dtype: str

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        canonical = DTYPE_ALIASES.get(value.lower())
        if canonical is None:
            raise ValueError(
                f"unknown dtype {value!r}; use one of {sorted(set(DTYPE_ALIASES.values()))}"
            )
        return canonical


class FeatureViewDefinition(_Model):
    name: str = Field(default="features", min_length=1, pattern=r"^[A-Za-z0-9_][-A-Za-z0-9_.]*$")
    entities: list[EntitySpec] = Field(min_length=1)
    source: SourceSpec
    # The CR allows no transformation: the source columns are the features as they are.
    transformation: TransformationSpec = TransformationSpec(sql="SELECT * FROM source")
    features: list[FeatureSpec] = Field(min_length=1)
    ttl: timedelta | None = None

    @field_validator("transformation", mode="before")
    @classmethod
    def _default_transformation(cls, value: Any) -> Any:
        return {"sql": "SELECT * FROM source"} if value is None else value

    @field_validator("ttl", mode="before")
    @classmethod
    def _parse_ttl(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("features")
    @classmethod
    def _no_reserved_feature_names(cls, value: list[FeatureSpec]) -> list[FeatureSpec]:
        names = [f.name for f in value]
        reserved = sorted(set(names) & RESERVED_COLUMNS)
        if reserved:
            raise ValueError(f"feature names {reserved} are reserved by the offline store")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names {duplicates}")
        return value

    @property
    def view_name(self) -> str:
        """The name as Feast and column prefixes use it (``user-activity`` → ``user_activity``)."""
        return feast_view_name(self.name)

    @property
    def join_keys(self) -> list[str]:
        return [e.join_key for e in self.entities]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def parse_duration(value: str | int | float) -> timedelta:
    """``3600``, ``"3600"``, ``"90m"``, ``"1h30m"``, ``"7d"``, ``"1w"`` → timedelta."""
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {value!r}; use e.g. '3600s', '1h30m', '7d'")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def parse_feature_view(definition: dict[str, Any] | FeatureViewDefinition) -> FeatureViewDefinition:
    """Validate a FeatureView dict; errors name the offending field."""
    if isinstance(definition, FeatureViewDefinition):
        return definition
    try:
        return FeatureViewDefinition.model_validate(definition)
    except ValidationError as err:
        described = problems(err, whole="featureView")
        raise DefinitionError(f"invalid FeatureView definition: {described}") from None


def parse_window(
    start: str | datetime, end: str | datetime, error: type[ValueError]
) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` in UTC (naive times are UTC; ISO-8601 strings accepted).
    Raises ``error`` (the calling component's) naming an unreadable bound or an empty window."""
    window_start, window_end = _as_utc(start, "start", error), _as_utc(end, "end", error)
    if window_start >= window_end:
        raise error(
            f"window start {window_start.isoformat()} is not before end {window_end.isoformat()}"
        )
    return window_start, window_end


def _as_utc(value: str | datetime, field: str, error: type[ValueError]) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise error(f"window {field} {value!r} is not an ISO-8601 timestamp") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
