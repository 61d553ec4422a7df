"""FeatureView: a Spark-computed, Feast-registered set of features over one source."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from operators.api.common import (
    AGE_COLUMN,
    ENGINE_DESCRIPTION,
    IDENTIFIER_PATTERN,
    READY_COLUMN,
    REASON_COLUMN,
    ApiModel,
    Duration,
    Engine,
    PrinterColumn,
    ResourceKind,
    StatusBase,
    condition_column,
)


class ValueType(StrEnum):
    STRING = "STRING"
    INT64 = "INT64"
    INT32 = "INT32"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    BOOL = "BOOL"


class FeatureDtype(StrEnum):
    INT64 = "int64"
    INT32 = "int32"
    FLOAT64 = "float64"
    FLOAT32 = "float32"
    STRING = "string"
    BOOL = "bool"


class SourceFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


class Entity(ApiModel):
    name: str = Field(pattern=IDENTIFIER_PATTERN, description="Feast entity name.")
    join_key: str = Field(pattern=IDENTIFIER_PATTERN, description="Column holding the key.")
    value_type: ValueType = ValueType.STRING


class Source(ApiModel):
    path: str = Field(min_length=1, description="File or directory (local path, s3://, gs://).")
    format: SourceFormat = SourceFormat.PARQUET
    timestamp_field: str = Field(pattern=IDENTIFIER_PATTERN, description="Event time column.")
    created_timestamp_field: str | None = Field(
        default=None,
        pattern=IDENTIFIER_PATTERN,
        description="When the row became known; later rows win ties and are invisible before it.",
    )


class Transformation(ApiModel):
    sql: str = Field(
        min_length=1,
        description="Spark SQL over the temp view `source`; must output the join keys, "
        "the timestamp field(s) and every declared feature.",
    )


class Feature(ApiModel):
    name: str = Field(pattern=IDENTIFIER_PATTERN)
    dtype: FeatureDtype


class Backfill(ApiModel):
    start: datetime = Field(description="First event time to compute (inclusive).")
    end: datetime | None = Field(default=None, description="Exclusive end; default: now.")
    schedule: str | None = Field(
        default=None,
        pattern=r"^(@(hourly|daily|weekly|monthly))|((\S+\s+){4}\S+)$",
        description="Cron schedule for incremental backfills (five fields or @daily...).",
    )

    @model_validator(mode="after")
    def _window_ordered(self) -> Backfill:
        if self.end is not None and self.end <= self.start:
            raise ValueError("backfill.end must be after backfill.start")
        return self


class OnlineStoreType(StrEnum):
    SQLITE = "sqlite"
    REDIS = "redis"


class OnlineStore(ApiModel):
    type: OnlineStoreType = OnlineStoreType.SQLITE
    connection_string: str | None = Field(
        default=None, description="e.g. 127.0.0.1:6379 for Redis; operator default if unset."
    )


class Store(ApiModel):
    project: str = Field(default="kubeloop", pattern=IDENTIFIER_PATTERN)
    offline_path: str | None = Field(
        default=None, description="Root of the offline store; operator default if unset."
    )
    online_store: OnlineStore | None = None


class FeatureViewSpec(ApiModel):
    """Features computed by Spark SQL over a source, backfilled and materialized with Feast."""

    entities: list[Entity] = Field(min_length=1)
    source: Source
    transformation: Transformation | None = None
    features: list[Feature] = Field(min_length=1)
    ttl: Duration = Field(default="30d", description="How long a feature value stays valid.")
    backfill: Backfill
    online: bool = Field(default=True, description="Materialize to the online store.")
    store: Store | None = None
    engine: Engine = Field(
        default=Engine.AUTO, description="Backfill engine. " + ENGINE_DESCRIPTION
    )

    @model_validator(mode="after")
    def _names_unique(self) -> FeatureViewSpec:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features: duplicate feature names {duplicates}")
        keys = {e.join_key for e in self.entities}
        clash = sorted(keys & set(names))
        if clash:
            raise ValueError(f"features: {clash} are entity join keys, not features")
        return self

    @model_validator(mode="after")
    def _duckdb_can_run_the_sql(self) -> FeatureViewSpec:
        # engine auto falls back to Spark for such SQL; an explicit duckdb cannot.
        if self.engine == Engine.DUCKDB and self.transformation is not None:
            from components.engines import transpile

            transpile(self.transformation.sql)  # TranspileError is a ValueError
        return self


class BackfillWindow(ApiModel):
    start: datetime
    end: datetime


class BackfillRun(ApiModel):
    run: str = Field(description="Deterministic pipeline run name.")
    run_url: str | None = None
    window: BackfillWindow
    state: str | None = None
    rows: int | None = None
    finished_at: datetime | None = None
    message: str | None = None
    engine: str | None = Field(default=None, description="The engine that ran it, and why.")


class Freshness(ApiModel):
    """How far each store is complete: every source event before `offline` (`online`) that
    existed when the covering backfill ran is in the offline (online) store. A watermark, not
    the newest event: a quiet hour without events is still fresh."""

    offline: datetime | None = Field(
        default=None, description="End of the newest successfully backfilled window."
    )
    online: datetime | None = Field(
        default=None, description="End of the newest window materialized to the online store."
    )
    observed_at: datetime | None = Field(
        default=None, description="When the run that moved these marks finished."
    )


class FeatureViewStatus(StatusBase):
    TRACKED_CONDITIONS: ClassVar[tuple[str, ...]] = ("Ready", "Backfilled", "Materialized")

    version: str | None = Field(default=None, description="Hash of the feature definition.")
    last_backfill: BackfillRun | None = None
    freshness: Freshness | None = Field(
        default=None,
        description="Watermarks of the current version's stores (reset by a new version).",
    )
    offline_path: str | None = Field(
        default=None, description="Offline store directory of this version (Parquet by date)."
    )

    @field_validator("freshness", mode="before")
    @classmethod
    def _legacy_freshness(cls, value: object) -> object:
        """Statuses written before freshness was split by store held one timestamp, the end
        of the newest window backfilled."""
        if isinstance(value, str | datetime):
            return {"offline": value}
        return value


FEATUREVIEW = ResourceKind(
    kind="FeatureView",
    short_names=["fv"],
    spec_model=FeatureViewSpec,
    status_model=FeatureViewStatus,
    printer_columns=[
        READY_COLUMN,
        condition_column("Backfilled", "Backfilled"),
        PrinterColumn(name="Version", type="string", json_path=".status.version"),
        PrinterColumn(name="Rows", type="integer", json_path=".status.lastBackfill.rows"),
        PrinterColumn(name="Fresh", type="date", json_path=".status.freshness.offline"),
        REASON_COLUMN,
        AGE_COLUMN,
    ],
)
