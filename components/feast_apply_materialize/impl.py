"""Register a FeatureView with Feast and materialize a window into the online store.

The Feast objects are generated from the FeatureView definition (``feast_objects.py``): one
Entity per entity, a FileSource over the offline store the backfill wrote (``event_timestamp``
and ``created_timestamp`` columns), and a FeatureView with the declared schema and TTL.
``apply`` is idempotent (re-applying the same definition changes nothing), and materializing
the same window twice writes the same online values.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


def _copy_window(offline_uri: str, local: Path, start: datetime, end: datetime) -> bool:
    """The window's date partitions of an object-storage offline store, copied to ``local``;
    False if the window has none (nothing to materialize). Feast 0.47's file offline store
    joins its repo path before any source path that is not absolute, an s3:// URI included
    (feast/infra/offline_stores/dask.py ``_read_datasource``), so it cannot read the store by
    its URI; materialize reads only the window's event times, which are its date partitions
    (``date=<UTC date>``). The registered source is that local copy: serving reads the online
    store, and the training sets are built from the offline store by kubeloop itself."""
    fs, root = uris.filesystem(offline_uri)
    found = False
    day = start.astimezone(UTC).date()
    while day <= (end - timedelta(microseconds=1)).astimezone(UTC).date():
        partition = f"{root.rstrip('/')}/date={day.isoformat()}"
        if fs.exists(partition):
            fs.get(partition + "/", str(local / f"date={day.isoformat()}") + "/", recursive=True)
            found = True
        day += timedelta(days=1)
    return found


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
    if uris.is_local(offline_path):
        entities, view = feast_feature_view(definition, uris.local_path(offline_path))
        feature_store.apply([*entities, view])
        if materialize:
            feature_store.materialize(window_start, window_end, feature_views=[view.name])
    else:
        local = Path(config.repo_path) / "offline-window" / uuid.uuid4().hex
        try:
            found = _copy_window(offline_path, local, window_start, window_end)
            entities, view = feast_feature_view(definition, str(local))
            feature_store.apply([*entities, view])
            if materialize and found:
                feature_store.materialize(window_start, window_end, feature_views=[view.name])
        finally:
            shutil.rmtree(local, ignore_errors=True)
    return MaterializeSummary(
        project=config.project,
        feature_view=view.name,
        entities=[e.name for e in entities],
        features=definition.feature_names,
        start=window_start,
        end=window_end,
        online_store=config.online_store,
    )
