"""Feast objects generated from a FeatureView definition, and the Feast repo config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RepoConfig
from feast.types import Bool, Float32, Float64, Int32, Int64, PrimitiveFeastType, String
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PydanticField

from components.spark_feature_backfill.definition import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FeatureViewDefinition,
)

FEAST_DTYPES: dict[str, PrimitiveFeastType] = {
    "int32": Int32,
    "int64": Int64,
    "float32": Float32,
    "float64": Float64,
    "string": String,
    "bool": Bool,
}
FEAST_VALUE_TYPES: dict[str, ValueType] = {
    "INT32": ValueType.INT32,
    "INT64": ValueType.INT64,
    "STRING": ValueType.STRING,
    "FLOAT": ValueType.FLOAT,
    "DOUBLE": ValueType.DOUBLE,
    "BOOL": ValueType.BOOL,
}


class FeastStoreConfig(BaseModel):
    """Where Feast keeps its registry and online store (the FeatureView's ``store``)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    project: str = PydanticField(default="kubeloop", pattern=r"^[A-Za-z0-9_]+$")
    repo_path: str = PydanticField(alias="repoPath", min_length=1)
    registry_path: str | None = PydanticField(default=None, alias="registryPath")
    online_store: Literal["sqlite", "redis"] = PydanticField(default="sqlite", alias="onlineStore")
    sqlite_path: str | None = PydanticField(default=None, alias="sqlitePath")
    redis_connection_string: str | None = PydanticField(default=None, alias="redisConnectionString")
    redis_key_ttl_seconds: int | None = PydanticField(
        default=None, alias="redisKeyTtlSeconds", gt=0
    )

    @model_validator(mode="after")
    def _redis_needs_address(self) -> FeastStoreConfig:
        if self.online_store == "redis" and not self.redis_connection_string:
            raise ValueError("onlineStore redis needs redisConnectionString (e.g. 127.0.0.1:6379)")
        return self

    def repo_config(self) -> RepoConfig:
        repo = Path(self.repo_path)
        registry = self.registry_path or str(repo / "registry.db")
        online: dict[str, Any]
        if self.online_store == "redis":
            online = {"type": "redis", "connection_string": self.redis_connection_string}
            if self.redis_key_ttl_seconds:
                online["key_ttl_seconds"] = self.redis_key_ttl_seconds
        else:
            online = {"type": "sqlite", "path": self.sqlite_path or str(repo / "online_store.db")}
        return RepoConfig(
            project=self.project,
            provider="local",
            registry={"registry_type": "file", "path": registry, "cache_ttl_seconds": 0},
            offline_store={"type": "file"},
            online_store=online,
            entity_key_serialization_version=2,
            repo_path=repo,
        )


def open_store(config: FeastStoreConfig) -> FeatureStore:
    Path(config.repo_path).mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config.repo_config())


def feast_entities(definition: FeatureViewDefinition) -> list[Entity]:
    return [
        Entity(name=e.name, join_keys=[e.join_key], value_type=FEAST_VALUE_TYPES[e.value_type])
        for e in definition.entities
    ]


def feast_feature_view(
    definition: FeatureViewDefinition,
    source_path: str,
    *,
    timestamp_field: str = EVENT_TIMESTAMP,
    created_timestamp_column: str | None = CREATED_TIMESTAMP,
    extra_fields: dict[str, PrimitiveFeastType] | None = None,
    ttl: timedelta | None = None,
) -> tuple[list[Entity], FeatureView]:
    """Entities and a FeatureView over a FileSource (the offline store directory by default)."""
    entities = feast_entities(definition)
    source = FileSource(
        name=f"{definition.view_name}_source",
        path=source_path,
        timestamp_field=timestamp_field,
        created_timestamp_column=created_timestamp_column or "",
    )
    schema = [Field(name=f.name, dtype=FEAST_DTYPES[f.dtype]) for f in definition.features]
    schema += [Field(name=n, dtype=t) for n, t in (extra_fields or {}).items()]
    view = FeatureView(
        name=definition.view_name,
        entities=entities,
        ttl=ttl if ttl is not None else (definition.ttl or timedelta(0)),
        schema=schema,
        source=source,
        online=True,
    )
    return entities, view
