"""Register a FeatureView with Feast and materialize a window into the online store.

The Feast objects are generated from the FeatureView definition (``feast_objects.py``): one
Entity per entity, a FileSource over the offline store the backfill wrote (``event_timestamp``
and ``created_timestamp`` columns), and a FeatureView with the declared schema and TTL.
``apply`` is idempotent (re-applying the same definition changes nothing), and materializing
the same window twice writes the same online values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from components import uris
from components.feast_apply_materialize.feast_objects import (
    FeastStoreConfig,
    feast_feature_view,
    open_store,
)
from components.spark_feature_backfill.definition import (
    FeatureViewDefinition,
    parse_feature_view,
    parse_window,
)


class FeastError(ValueError):
    """Feast cannot register or materialize this input; the message names the problem."""


class MaterializeSummary(BaseModel):
    project: str
    feature_view: str
    entities: list[str]
    features: list[str]
    start: datetime
    end: datetime
    online_store: str


def apply_and_materialize(
    feature_view: dict[str, Any] | FeatureViewDefinition,
    offline_path: str,
    store: dict[str, Any] | FeastStoreConfig,
    start: str | datetime,
    end: str | datetime,
    materialize: bool = True,
) -> MaterializeSummary:
    """``FeatureStore.apply`` the generated objects, then ``materialize(start, end)``."""
    definition = parse_feature_view(feature_view)
    config = (
        store if isinstance(store, FeastStoreConfig) else FeastStoreConfig.model_validate(store)
    )
    window_start, window_end = parse_window(start, end, FeastError)
    if uris.is_local(offline_path) and not uris.exists(offline_path):
        raise FeastError(f"offline store {offline_path!r} does not exist: run the backfill first")
    feature_store = open_store(config)
    # Feast's FileSource reads a local directory by its path, object storage by its URI.
    source = uris.local_path(offline_path) if uris.is_local(offline_path) else offline_path
    entities, view = feast_feature_view(definition, source)
    feature_store.apply([*entities, view])
    if materialize:
        feature_store.materialize(window_start, window_end, feature_views=[view.name])
    return MaterializeSummary(
        project=config.project,
        feature_view=view.name,
        entities=[e.name for e in entities],
        features=definition.feature_names,
        start=window_start,
        end=window_end,
        online_store=config.online_store,
    )
