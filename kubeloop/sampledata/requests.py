"""Pure part of the traffic generator: which columns a model takes, request bodies, accuracy.

The served model's inputs are the training set's feature columns, named `<view>__<feature>`
by build_training_set (the view name with non-identifier characters replaced by `_`). The
demo FeatureView's features are projections of raw event columns, so a request is built from
one generated event row by renaming its raw columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.spark_feature_backfill.definition import training_column


class TrafficInputError(ValueError):
    """Bad traffic input; the message names the field or column."""


def feature_columns(experiment_spec: Mapping[str, Any]) -> dict[str, str]:
    """Model input column → raw event column, from an Experiment spec's `features`."""
    refs = experiment_spec.get("features")
    if not isinstance(refs, list) or not refs:
        raise TrafficInputError("experiment spec.features must be a non-empty list")
    columns: dict[str, str] = {}
    for index, ref in enumerate(refs):
        view = ref.get("featureView") if isinstance(ref, Mapping) else None
        names = ref.get("names") if isinstance(ref, Mapping) else None
        if not isinstance(view, str) or not view:
            raise TrafficInputError(f"spec.features[{index}].featureView is missing")
        if not isinstance(names, list) or not names:
            raise TrafficInputError(f"spec.features[{index}].names must be a non-empty list")
        for name in names:
            columns[training_column(view, str(name))] = str(name)
    return columns


def build_instances(
    rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> dict[str, list[dict[str, float]]]:
    """A KServe v1 body `{"instances": [...]}`, one feature object per event row."""
    if not rows:
        raise TrafficInputError("no rows to build a request from")
    instances = []
    for index, row in enumerate(rows):
        missing = sorted({raw for raw in columns.values() if raw not in row})
        if missing:
            raise TrafficInputError(f"row {index} lacks raw column(s) {missing}")
        instances.append({model: float(row[raw]) for model, raw in columns.items()})
    return {"instances": instances}


def build_v2_request(
    rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """A v2 (Open Inference Protocol) body: one FP32 tensor of shape [N] per model column.

    v2 carries the datatype, which JSON numbers of v1 cannot: a model whose signature asks for
    float32 accepts these, and MLflow widens float32 where a signature asks for double.
    """
    body = build_instances(rows, columns)["instances"]
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(body)],
                "datatype": "FP32",
                "data": [r[name] for r in body],
            }
            for name in columns
        ]
    }


def predictions_of(answer: Mapping[str, Any]) -> list[Any]:
    """Predictions from a v1 (`predictions`) or v2 (`outputs[0].data`) answer body."""
    if "predictions" in answer:
        return list(answer["predictions"])
    outputs = answer.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], Mapping):
        return list(outputs[0].get("data") or [])
    raise TrafficInputError("the answer has neither predictions (v1) nor outputs (v2)")


def score_of(prediction: Any) -> float:
    """The positive-class score from one prediction (a number, a [p0, p1] pair, or a record)."""
    if isinstance(prediction, bool):
        return float(prediction)
    if isinstance(prediction, (int, float)):
        return float(prediction)
    if isinstance(prediction, list) and prediction:
        return float(prediction[-1])
    if isinstance(prediction, Mapping) and prediction:
        return float(list(prediction.values())[-1])
    raise TrafficInputError(f"unsupported prediction {prediction!r}")


@dataclass(frozen=True)
class Outcome:
    """One answered request whose label arrives later: the time it was served and the verdict."""

    served_at: float
    version: str
    correct: bool


def accuracy_series(outcomes: Sequence[Outcome], bucket_s: float) -> list[tuple[float, float, int]]:
    """(bucket start, accuracy, count) over time, from outcomes whose labels have arrived."""
    if bucket_s <= 0:
        raise TrafficInputError(f"bucket_s must be positive, got {bucket_s}")
    buckets: dict[int, list[bool]] = {}
    for outcome in outcomes:
        buckets.setdefault(int(outcome.served_at // bucket_s), []).append(outcome.correct)
    return [
        (key * bucket_s, sum(values) / len(values), len(values))
        for key, values in sorted(buckets.items())
    ]
