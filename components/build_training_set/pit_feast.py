"""Point-in-time join through Feast's ``get_historical_features`` (file offline store).

Feast's file (dask) offline store picks, per entity row, the feature row with the greatest
event timestamp in ``[ts - ttl, ts]``. Three gaps separate that from our semantics (``impl.py``),
and this module closes each around Feast rather than inside it:

1. **Late-arriving rows.** Feast never looks at whether a row was *known* at the label time.
   Before Feast, each view's offline rows become a *knowledge timeline*: per entity, one
   snapshot row at every instant a row became visible (``max(event, created)``), carrying the
   best row known at that instant (greatest event timestamp, then created timestamp). Feast's
   as-of join over the snapshots' instants then returns exactly the best visible row.
2. **TTL.** Feast's window is inclusive at ``ts - ttl`` and applies to the snapshot instant;
   the best row's own event timestamp travels along (``kubeloop_event_ts``) and features are
   nulled unless it is strictly after ``ts - ttl``.
3. **Duplicate label rows (Feast issue 6787) and dropped rows.** Feast drops duplicate
   (entity keys, timestamp) rows, and its dask filter also loses entity rows whose every
   candidate lies outside the window — with several views in one call, a row lost by one view
   also loses the other views' features. Feast is therefore asked one view at a time, with the
   *distinct* (join keys, timestamp) rows, and each answer is merged back onto every original
   label row; a row Feast lost gets nulls for that view, which is the correct answer for it.

The Feast registry is a throwaway repo in ``work_dir``: the timeline files are derived data,
not the offline store that ``feast_apply_materialize`` registers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.types import UnixTimestamp

from components.build_training_set.spec import FeatureRequest, LabelSpec
from components.feast_apply_materialize.feast_objects import (
    FeastStoreConfig,
    feast_feature_view,
    open_store,
)
from components.spark_feature_backfill.definition import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    training_column,
)
from components.uris import filesystem

SNAPSHOT_TS = "kubeloop_snapshot_ts"
BEST_EVENT_TS = "kubeloop_event_ts"
_FEAST_TS = "event_timestamp"  # the entity-dataframe column Feast requires


def pit_join_feast(
    labels: pd.DataFrame,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
    work_dir: str | Path,
) -> pd.DataFrame:
    """Label rows (all kept, duplicates included) with one column per requested feature."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ts = label_spec.timestamp_field
    labels = labels.copy()
    labels[ts] = pd.to_datetime(labels[ts], utc=True).astype("datetime64[us, UTC]")
    store = open_store(FeastStoreConfig(project="kubeloop_pit", repo_path=str(work / "feast_repo")))
    for request in requests:
        labels = _join_one_view(store, labels, ts, request, work)
    return _apply_ttl(labels, ts, requests)


def _join_one_view(
    store: FeatureStore, labels: pd.DataFrame, ts: str, request: FeatureRequest, work: Path
) -> pd.DataFrame:
    timeline = knowledge_timeline(read_offline_rows(request), request)
    path = work / f"{request.view}_timeline.parquet"
    timeline.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    entities, view = feast_feature_view(
        request.feature_view,
        str(path),
        timestamp_field=SNAPSHOT_TS,
        created_timestamp_column=None,
        extra_fields={BEST_EVENT_TS: UnixTimestamp},
    )
    store.apply([*entities, view])
    keys = request.feature_view.join_keys
    distinct = labels[[*keys, ts]].drop_duplicates().rename(columns={ts: _FEAST_TS})
    refs = [f"{request.view}:{f}" for f in [*request.features, BEST_EVENT_TS]]
    answer = store.get_historical_features(
        entity_df=distinct, features=refs, full_feature_names=True
    ).to_df()
    answer = answer.rename(columns={_FEAST_TS: ts})
    answer[ts] = pd.to_datetime(answer[ts], utc=True).astype("datetime64[us, UTC]")
    answer = answer[
        [*keys, ts, *(training_column(request.view, f) for f in [*request.features, BEST_EVENT_TS])]
    ]
    return labels.merge(answer, on=[*keys, ts], how="left", validate="many_to_one")


def read_offline_rows(request: FeatureRequest) -> pd.DataFrame:
    """The columns of one view the join needs, from its offline store (Parquet, date-partitioned)."""
    keys = request.feature_view.join_keys
    columns = [*keys, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *request.features]
    fs, path = filesystem(request.offline_path)
    table = pq.read_table(path, columns=columns, filesystem=fs)
    return table.to_pandas()


def knowledge_timeline(rows: pd.DataFrame, request: FeatureRequest) -> pd.DataFrame:
    """Per entity, a snapshot at each instant a row became visible, holding the best known row.

    Best = greatest (event timestamp, created timestamp, feature values), the same total order
    the Spark path's ``max(struct(...))`` uses (nulls lowest).
    """
    keys = request.feature_view.join_keys
    features = request.features
    rows = rows.dropna(subset=keys).reset_index(drop=True)
    event = pd.to_datetime(rows[EVENT_TIMESTAMP], utc=True)
    created = pd.to_datetime(rows[CREATED_TIMESTAMP], utc=True).fillna(event)
    # Rank every row in the "best" order once; a running max of the rank is the best row so far.
    ranking = pd.DataFrame({"__e": event, "__c": created}).join(rows[features])
    rank_order = ranking.sort_values(
        ["__e", "__c", *features], na_position="first", kind="mergesort"
    ).index
    rank = np.empty(len(rows), dtype=np.int64)
    rank[rank_order.to_numpy()] = np.arange(len(rows))
    timeline = rows[keys].copy()
    timeline[SNAPSHOT_TS] = np.maximum(event, created)
    timeline["_rank"] = rank
    timeline = timeline.sort_values([*keys, SNAPSHOT_TS], kind="mergesort")
    timeline["_best"] = timeline.groupby(keys, sort=False)["_rank"].cummax()
    # Only the last snapshot of each (entity, instant) matters: it has seen every row up to then.
    timeline = timeline.drop_duplicates([*keys, SNAPSHOT_TS], keep="last")
    row_of_rank = rank_order.to_numpy()[timeline["_best"].to_numpy()]
    best = rows.iloc[row_of_rank].reset_index(drop=True)
    out = timeline[[*keys, SNAPSHOT_TS]].reset_index(drop=True)
    out[BEST_EVENT_TS] = pd.to_datetime(best[EVENT_TIMESTAMP], utc=True)
    for feature in features:
        out[feature] = best[feature].to_numpy()
    return out


def _apply_ttl(joined: pd.DataFrame, ts: str, requests: list[FeatureRequest]) -> pd.DataFrame:
    for request in requests:
        best_event = pd.to_datetime(joined[training_column(request.view, BEST_EVENT_TS)], utc=True)
        alive = best_event.notna()
        ttl: timedelta | None = request.feature_view.ttl
        if ttl:
            alive &= best_event > joined[ts] - ttl
        for column in request.output_columns:
            joined[column] = joined[column].astype(object).where(alive, None)
        joined = joined.drop(columns=[training_column(request.view, BEST_EVENT_TS)])
    return joined
