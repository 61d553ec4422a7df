"""KFP v2 component `train_ddp`: a thin shell over `components.train_ddp.impl.train`.

The model artifact's directory receives the MLflow model (`<model.path>/model`), the run's
`summary.json` and `torchrun.log`. Checkpoints go to `checkpoint_dir` (give a directory on a
persistent volume to resume across pod retries; empty means a scratch directory).
With `nodes > 1` the step creates a Kubeflow Trainer TrainJob; `shared_dir` must then be a
path every training node sees, and the results are copied into the artifact afterwards.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_ddp(
    training_set: Input[Dataset],
    validation_set: Input[Dataset],
    label_column: str,
    model: Output[Model],
    metrics: Output[Metrics],
    feature_columns: list = [],  # noqa: B006 - KFP reads defaults from the signature
    hidden_units: list = [32, 16],  # noqa: B006
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 0.01,
    weight_decay: float = 0.0,
    seed: int = 0,
    nproc_per_node: int = 1,
    nodes: int = 1,
    backend: str = "auto",
    max_restarts: int = 3,
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = "kubeloop-training",
    mlflow_run_id: str = "",
    run_name: str = "",
    params: dict = {},  # noqa: B006
    checkpoint_dir: str = "",
    shared_dir: str = "",
    trainjob_image: str = "",
    namespace: str = "default",
) -> NamedTuple("TrainOutputs", [("mlflow_run_id", str), ("model_uri", str)]):  # type: ignore[valid-type]  # noqa: UP014
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from components.train_ddp.impl import ClusterOptions, train

    on_cluster = nodes > 1
    if on_cluster and not (shared_dir and trainjob_image):
        raise ValueError("nodes > 1 needs shared_dir and trainjob_image for the TrainJob")
    output_dir = Path(shared_dir) / (run_name or "train") if on_cluster else Path(model.path)
    summary = train(
        training_set.path,
        validation_set.path,
        label_column,
        output_dir,
        feature_columns=[str(column) for column in feature_columns],
        # On a cluster the default <output_dir>/checkpoints is on the shared storage.
        checkpoint_dir=checkpoint_dir
        or (None if on_cluster else tempfile.mkdtemp(prefix="kubeloop-ckpt-")),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        hidden_units=[int(units) for units in hidden_units],
        seed=seed,
        nproc_per_node=nproc_per_node,
        nodes=nodes,
        backend=backend,
        max_restarts=max_restarts,
        mlflow_tracking_uri=mlflow_tracking_uri or None,
        mlflow_experiment=mlflow_experiment,
        mlflow_run_id=mlflow_run_id or None,
        run_name=run_name or None,
        params={str(key): str(value) for key, value in params.items()},
        cluster=ClusterOptions(image=trainjob_image, namespace=namespace) if on_cluster else None,
    )
    if on_cluster:
        shutil.copytree(output_dir, model.path, dirs_exist_ok=True)
    model.metadata.update(
        {
            "framework": "pytorch",
            "mlflow_run_id": summary.mlflow_run_id or "",
            "mlflow_model_uri": summary.model_uri or "",
            "feature_columns": summary.feature_columns,
            "world_size": summary.world_size,
        }
    )
    for name in ("final_train_loss", "final_val_loss", "samples_per_sec"):
        value = getattr(summary, name)
        if value is not None:
            metrics.log_metric(name, float(value))
    metrics.log_metric("world_size", float(summary.world_size))
    TrainOutputs = namedtuple("TrainOutputs", ["mlflow_run_id", "model_uri"])  # noqa: N806
    return TrainOutputs(summary.mlflow_run_id or "", summary.model_uri or "")
