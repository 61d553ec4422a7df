"""KFP pipeline ``training``: one trial of an Experiment.

build_training_set → (hand-off) → train_ddp → evaluate → register_model, where the
registration runs only if it is requested (``register``), the objective passes its threshold,
the model beats the heuristic baselines and the champion (``model_name``'s ``@champion``
version, when there is one; docs/architecture.md "Champion/challenger"), in nested
``dsl.If``s, so the KFP UI shows which gate stopped it.
"""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from typing import Any, NamedTuple

from kfp import dsl

from components.build_training_set.component import build_training_set
from components.evaluate.component import evaluate
from components.register_model.component import register_model
from components.train_ddp.component import train_ddp
from pipelines.storage import PVC, storage_attacher
from pipelines.training.steps import training_set_handoff

PIPELINE_NAME = "kubeloop-training"


class TrainingOutputs(NamedTuple):
    metrics_json: str
    mlflow_run_id: str
    # The training set's windows (pipelines/training/handoff.py lineage_window): the
    # Experiment operator tags the version it registers with them.
    data_window: dict


def build_training(storage_kind: str = PVC) -> Any:
    """The pipeline for a storage root of ``storage_kind`` (pipelines/storage.py): the tasks
    are the same, only how each reaches the root differs."""
    attach = storage_attacher(storage_kind)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Point-in-time training set, DDP training, evaluation vs baselines, "
        "gated MLflow registration.",
    )
    def training(
        labels: dict,
        feature_views: list,
        split: dict,
        training_set_dir: str,
        model_name: str,
        objective: dict = {"metric": "auc", "threshold": 0.5},  # noqa: B006
        register: bool = True,
        experiment: str = "",
        trial: str = "",
        trial_params: dict = {},  # noqa: B006
        feature_view_versions: dict = {},  # noqa: B006
        join_method: str = "auto",
        spark_master: str = "local[*]",
        hidden_units: list = [32, 16],  # noqa: B006
        epochs: int = 5,
        batch_size: int = 256,
        learning_rate: float = 0.01,
        weight_decay: float = 0.0,
        seed: int = 0,
        nproc_per_node: int = 1,
        nodes: int = 1,
        backend: str = "auto",
        checkpoint_dir: str = "",
        # nodes > 1 runs a Kubeflow Trainer TrainJob: its image, the directory every node and this
        # step share, and its namespace (train_ddp refuses nodes > 1 without the first two).
        shared_dir: str = "",
        trainjob_image: str = "",
        trainjob_namespace: str = "default",
        mlflow_tracking_uri: str = "",
        mlflow_experiment: str = "kubeloop-training",
        code_version: str = "",
        kfp_run_name: str = "",
        retrain_reason: str = "",
        drift_report: str = "",
        retrain_requested_at: str = "",
        # How every task reaches the storage root (pipelines/storage.py): the claim to mount
        # (pvc), the credentials Secret (s3, gs).
        storage_pvc: str = "",
        storage_secret: str = "",
    ) -> TrainingOutputs:
        training_set = build_training_set(
            labels=labels,
            feature_views=feature_views,
            split=split,
            output_dir=training_set_dir,
            method=join_method,
            spark_master=spark_master,
        ).set_display_name("build-training-set")
        attach(training_set, storage_pvc, storage_secret)
        handoff = training_set_handoff(summary_json=training_set.output, labels=labels)
        attach(handoff, storage_pvc, storage_secret)
        trained = train_ddp(
            training_set=handoff.outputs["train"],
            validation_set=handoff.outputs["validation"],
            label_column=handoff.outputs["label_column"],
            feature_columns=handoff.outputs["feature_columns"],
            hidden_units=hidden_units,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            seed=seed,
            nproc_per_node=nproc_per_node,
            nodes=nodes,
            backend=backend,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_experiment=mlflow_experiment,
            run_name=kfp_run_name,
            params=trial_params,
            checkpoint_dir=checkpoint_dir,
            shared_dir=shared_dir,
            trainjob_image=trainjob_image,
            namespace=trainjob_namespace,
        ).set_display_name("train-ddp")
        attach(trained, storage_pvc, storage_secret)
        evaluated = evaluate(
            training_set_dir=training_set_dir,
            label_column=handoff.outputs["label_column"],
            model=trained.outputs["model"],
            objective=objective,
            feature_columns=handoff.outputs["feature_columns"],
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_run_id=trained.outputs["mlflow_run_id"],
            champion_model=model_name,
        ).set_display_name("evaluate")
        attach(evaluated, storage_pvc, storage_secret)
        with (
            dsl.If(register == True, name="registration-requested"),  # noqa: E712 - KFP condition
            dsl.If(evaluated.outputs["passes_threshold"] == True, name="passes-threshold"),  # noqa: E712
            dsl.If(evaluated.outputs["beats_baseline"] == True, name="beats-baseline"),  # noqa: E712
            dsl.If(evaluated.outputs["beats_champion"] == True, name="beats-champion"),  # noqa: E712
        ):
            registered = register_model(
                mlflow_tracking_uri=mlflow_tracking_uri,
                model_name=model_name,
                mlflow_run_id=trained.outputs["mlflow_run_id"],
                training_set_dir=training_set_dir,
                feature_columns=evaluated.outputs["feature_columns"],
                feature_view_versions=feature_view_versions,
                data_window=handoff.outputs["data_window"],
                experiment=experiment,
                trial=trial,
                kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                kfp_run_name=kfp_run_name,
                code_version=code_version,
                retrain_reason=retrain_reason,
                drift_report=drift_report,
                retrain_requested_at=retrain_requested_at,
                evaluation_json=evaluated.outputs["metrics_json"],
            ).set_display_name("register-model")
            attach(registered, storage_pvc, storage_secret)
        return TrainingOutputs(
            evaluated.outputs["metrics_json"],
            trained.outputs["mlflow_run_id"],
            handoff.outputs["data_window"],
        )

    return training
