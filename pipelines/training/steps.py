"""Pipeline-local KFP steps of the training pipeline."""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def training_set_handoff(
    summary_json: str,
    labels: dict,
    train: Output[Dataset],
    validation: Output[Dataset],
) -> NamedTuple(  # type: ignore[valid-type]  # noqa: UP014
    "HandoffOutputs",
    [("label_column", str), ("feature_columns", list), ("data_window", dict)],
):
    """Splits as Dataset artifacts for train_ddp; label, features and window for the rest."""
    import json
    from collections import namedtuple

    from pipelines.training.handoff import copy_split, handoff

    result = handoff(json.loads(summary_json), labels)
    copy_split(result.training_set_dir, "train", train.path)
    copy_split(result.training_set_dir, "validation", validation.path)
    HandoffOutputs = namedtuple(
        "HandoffOutputs", ["label_column", "feature_columns", "data_window"]
    )
    return HandoffOutputs(result.label_column, result.feature_columns, result.data_window)
