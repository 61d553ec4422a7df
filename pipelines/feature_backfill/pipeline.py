"""KFP pipeline ``feature_backfill``: one (FeatureView version, window) backfill.

spark_feature_backfill writes the window to the offline store; feast_apply_materialize then
registers the Feast objects and materializes the same window to the online store.
"""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from typing import Any, NamedTuple

from kfp import dsl

from components.feast_apply_materialize.component import feast_apply_materialize
from components.spark_feature_backfill.component import spark_feature_backfill
from pipelines.storage import PVC, storage_attacher

PIPELINE_NAME = "kubeloop-feature-backfill"


class BackfillOutputs(NamedTuple):
    rows: int
    feast_summary_json: str


def build_feature_backfill(storage_kind: str = PVC) -> Any:
    """The pipeline for a storage root of ``storage_kind`` (pipelines/storage.py): the tasks
    are the same, only how each reaches the root differs."""
    attach = storage_attacher(storage_kind)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Spark backfill of a FeatureView window, then Feast apply and materialize.",
    )
    def feature_backfill(
        feature_view: dict,
        start: str,
        end: str,
        offline_path: str,
        store: dict,
        materialize: bool = True,
        spark_master: str = "local[*]",
        spark_conf: dict = {},  # noqa: B006
        engine: str = "auto",
        memory_budget_mb: int = 4096,
        # How every task reaches the storage root (pipelines/storage.py): the claim to mount
        # (pvc), the credentials Secret (s3, gs).
        storage_pvc: str = "",
        storage_secret: str = "",
    ) -> BackfillOutputs:
        backfill = spark_feature_backfill(
            feature_view=feature_view,
            start=start,
            end=end,
            output_path=offline_path,
            spark_master=spark_master,
            spark_conf=spark_conf,
            engine=engine,
            memory_budget_mb=memory_budget_mb,
        ).set_display_name("spark-feature-backfill")
        attach(backfill, storage_pvc, storage_secret)
        feast = (
            feast_apply_materialize(
                feature_view=feature_view,
                offline_path=offline_path,
                store=store,
                start=start,
                end=end,
                materialize=materialize,
            )
            .set_display_name("feast-apply-materialize")
            .after(backfill)
        )
        attach(feast, storage_pvc, storage_secret)
        return BackfillOutputs(backfill.output, feast.output)

    return feature_backfill
