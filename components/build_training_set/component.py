"""KFP component: point-in-time training set (Feast or Spark) split by time."""

from kfp import dsl

# No `from __future__ import annotations`: KFP reads the real annotation types.
# The kubeloop image carries pyspark, Feast and the installed `components` package.
KUBELOOP_IMAGE = "ghcr.io/kubeloop/kubeloop:0.1.0"


@dsl.component(base_image=KUBELOOP_IMAGE)
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
