"""KFP v2 component shell for ``register_model`` (logic in ``components.register_model.impl``)."""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from typing import NamedTuple

from kfp import dsl

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(
    mlflow_tracking_uri: str,
    model_name: str,
    mlflow_run_id: str,
    training_set_dir: str,
    feature_columns: list,
    feature_view_versions: dict = {},  # noqa: B006 - KFP reads defaults from the signature
    data_window: dict = {},  # noqa: B006
    experiment: str = "",
    trial: str = "",
    kfp_run_id: str = "",
    kfp_run_name: str = "",
    code_version: str = "",
    retrain_reason: str = "",
    drift_report: str = "",
    retrain_requested_at: str = "",
    evaluation_json: str = "",
    model_artifact_path: str = "model",
    sample_rows: int = 5000,
) -> NamedTuple(  # type: ignore[valid-type]  # noqa: UP014
    "RegisterOutputs",
    [("model_version", str), ("created", bool), ("registration_json", str)],
):
    """MLflow model version from the run's model, with lineage tags and a drift reference."""
    from collections import namedtuple

    from components.register_model.impl import (
        Lineage,
        comparison_lineage,
        register_from_training_set,
    )
    from components.register_model.impl import code_version as current_code_version

    lineage = Lineage(
        feature_view_versions={str(k): str(v) for k, v in feature_view_versions.items()},
        data_window=dict(data_window),
        code_version=code_version or current_code_version(),
        kfp_run_id=kfp_run_id,
        kfp_run_name=kfp_run_name,
        experiment=experiment,
        trial=trial,
        retrain_reason=retrain_reason,
        drift_report=drift_report,
        retrain_requested_at=retrain_requested_at,
        # The champion/challenger figures of the evaluation that let it through.
        **comparison_lineage(evaluation_json),
    )
    registration = register_from_training_set(
        tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        run_id=mlflow_run_id,
        lineage=lineage,
        training_set_dir=training_set_dir,
        feature_columns=[str(column) for column in feature_columns],
        model_artifact_path=model_artifact_path,
        sample_rows=sample_rows,
    )
    verb = "registered" if registration.created else "already registered as"
    print(f"run {mlflow_run_id} {verb} {model_name} version {registration.version}")
    RegisterOutputs = namedtuple(
        "RegisterOutputs", ["model_version", "created", "registration_json"]
    )
    return RegisterOutputs(
        registration.version, registration.created, registration.model_dump_json()
    )
