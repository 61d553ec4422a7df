"""KFP v2 component shell for ``evaluate`` (logic in ``components.evaluate.impl``)."""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    training_set_dir: str,
    label_column: str,
    metrics: Output[Metrics],
    model: Input[Model] = None,  # type: ignore[assignment]
    model_uri: str = "",
    objective: dict = {},  # noqa: B006 - KFP reads defaults from the signature; never mutated
    feature_columns: list = [],  # noqa: B006
    mlflow_tracking_uri: str = "",
    mlflow_run_id: str = "",
    champion_model: str = "",
) -> NamedTuple(  # type: ignore[valid-type]  # noqa: UP014
    "EvaluateOutputs",
    [
        ("metrics_json", str),
        ("passes_threshold", bool),
        ("beats_baseline", bool),
        ("beats_champion", bool),
        ("feature_columns", list),
    ],
):
    """Metrics (AUC, log loss, calibration) on the validation and test windows vs baselines.

    The model is train_ddp's artifact (an MLflow model directory at ``<model.path>/model``)
    or, without one, ``model_uri`` (``runs:/``, ``models:/`` or a path). With
    ``champion_model`` (a registered model name), its ``@champion`` version is scored on the
    same test window and must be beaten (paired bootstrap); none yet: baselines only.
    """
    import os
    from collections import namedtuple

    from components.evaluate.impl import evaluate as run_evaluation
    from components.evaluate.impl import report_json

    if model is not None:
        model_uri = os.path.join(model.path, "model")
    if not model_uri:
        raise ValueError("evaluate needs the model artifact or model_uri")
    report = run_evaluation(
        training_set_dir=training_set_dir,
        model_uri=model_uri,
        label_column=label_column,
        objective=objective,
        feature_columns=[str(column) for column in feature_columns],
        tracking_uri=mlflow_tracking_uri or None,
        mlflow_run_id=mlflow_run_id or None,
        champion_model=champion_model,
    )
    for key, value in report.flat_metrics().items():
        metrics.log_metric(key, value)
    print(report.objective.reason)
    EvaluateOutputs = namedtuple(
        "EvaluateOutputs",
        [
            "metrics_json",
            "passes_threshold",
            "beats_baseline",
            "beats_champion",
            "feature_columns",
        ],
    )
    return EvaluateOutputs(
        report_json(report),
        report.objective.passes_threshold,
        report.objective.beats_baseline,
        report.objective.beats_champion,
        report.feature_columns,
    )
