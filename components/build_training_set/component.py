"""KFP component: point-in-time training set (Feast or Spark) split by time."""

from kfp import dsl

from components.image import COMPONENT_IMAGE

# No `from __future__ import annotations`: KFP reads the real annotation types.


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def build_training_set(
    labels: dict,
    feature_views: list,
    split: dict,
    output_dir: str,
    method: str = "auto",
    spark_master: str = "local[*]",
    spark_conf: dict = {},  # noqa: B006 - KFP needs a literal default; never mutated
) -> str:
    """Writes <output_dir>/{train,validation,test}/; returns the summary as JSON."""
    from components.build_training_set.impl import build_training_set as build

    summary = build(
        labels,
        feature_views,
        split,
        output_dir,
        method=method,  # type: ignore[arg-type]
        spark_master=spark_master,
        spark_conf=spark_conf or None,
    )
    return summary.model_dump_json()
