"""Column names of the training set that ``build_training_set`` writes and later steps read.

Feature columns are ``<view>__<feature>`` (``spark_feature_backfill.definition.training_column``);
the columns below are the others the pipeline adds.
"""

from __future__ import annotations

from typing import Final

# Per-row sample weight of the train split (recency weighting, ``spec.split.recencyHalfLife``);
# absent when the rows are equally weighted. train_ddp weighs each row's loss by it.
SAMPLE_WEIGHT_COLUMN: Final = "sample_weight"
