"""KFP component: Spark backfill of a FeatureView window into the offline store."""

from kfp import dsl

from components.image import COMPONENT_IMAGE

# No `from __future__ import annotations`: KFP reads the real annotation types.


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def spark_feature_backfill(
    feature_view: dict,
    start: str,
    end: str,
    output_path: str,
    spark_master: str = "local[*]",
    spark_conf: dict = {},  # noqa: B006 - KFP needs a literal default; never mutated
    engine: str = "auto",
    memory_budget_mb: int = 4096,
) -> int:
    """Returns the number of rows written for [start, end) (engine: auto, duckdb or spark)."""
    from components.spark_feature_backfill.impl import run_backfill

    return run_backfill(
        feature_view,
        start,
        end,
        output_path,
        spark_master,
        spark_conf or None,
        engine=engine,
        memory_budget_mb=memory_budget_mb,
    )
