"""Real torchrun on CPU with gloo: DDP equivalence, kill-and-resume, MLflow logging.

Three small trainings run side by side once per module (2048 rows, 4 epochs, global batch 128):
  single: 1 process; ddp: 2 processes, logging to a real MLflow store (SQLite file);
  crash: 2 processes, rank 1 is SIGKILLed after epoch 2, torchrun restarts the group.
Stated tolerance for "the same loss curve": relative 1e-4, absolute 1e-5 per epoch value
(the runs differ only in float summation order of the gradient all-reduce).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.train_ddp.impl import LOG_FILE, TrainingFailedError, TrainingSummary, train
from components.train_ddp.tests.conftest import FEATURES, LABEL, TabularSets, write_sets
from components.train_ddp.trainer import CRASH_AFTER_EPOCH_ENV, CRASH_MARKER_ENV

pytestmark = pytest.mark.slow

EPOCHS = 4
CRASH_AFTER = 2
RTOL, ATOL = 1e-4, 1e-5
EXPERIMENT = "train-ddp-test"


@dataclass(frozen=True)
class Runs:
    sets: TabularSets
    single: TrainingSummary
    ddp: TrainingSummary
    crash: TrainingSummary
    crash_dir: Path
    marker: Path
    tracking_uri: str


def _create_experiment(root: Path) -> str:
    from mlflow import MlflowClient

    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    # Artifacts under tmp, not ./mlruns in the checkout.
    MlflowClient(tracking_uri).create_experiment(
        EXPERIMENT, artifact_location=(root / "artifacts").as_uri()
    )
    return tracking_uri


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("train_ddp")
    sets = write_sets(root / "data")
    tracking_uri = _create_experiment(root)
    marker = root / "crash-marker"

    def launch(name: str, nproc: int, **extra: object) -> Callable[[], TrainingSummary]:
        def run() -> TrainingSummary:
            return train(  # type: ignore[misc]
                sets.training,
                sets.validation,
                LABEL,
                root / name,
                epochs=EPOCHS,
                batch_size=128,
                learning_rate=0.01,
                hidden_units=(16, 8),
                seed=3,
                nproc_per_node=nproc,
                num_threads=1,
                **extra,  # type: ignore[arg-type]
            )

        return run

    jobs = {
        "single": launch("single", 1, max_restarts=0),
        "ddp": launch(
            "ddp",
            2,
            max_restarts=0,
            mlflow_tracking_uri=tracking_uri,
            mlflow_experiment=EXPERIMENT,
            run_name="ddp-test",
            params={"trial": "t-1"},
        ),
        "crash": launch(
            "crash",
            2,
            max_restarts=1,
            env={CRASH_AFTER_EPOCH_ENV: str(CRASH_AFTER), CRASH_MARKER_ENV: str(marker)},
        ),
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        done = {name: future.result() for name, future in futures.items()}
    return Runs(
        sets, done["single"], done["ddp"], done["crash"], root / "crash", marker, tracking_uri
    )


def _curve(summary: TrainingSummary) -> np.ndarray:
    return np.array([[entry.train_loss, entry.val_loss] for entry in summary.loss_curve])


def test_two_processes_follow_the_one_process_loss_curve(runs: Runs) -> None:
    assert (runs.single.world_size, runs.ddp.world_size) == (1, 2)
    assert runs.single.backend == runs.ddp.backend == "gloo"
    assert [entry.epoch for entry in runs.ddp.loss_curve] == list(range(1, EPOCHS + 1))
    np.testing.assert_allclose(_curve(runs.ddp), _curve(runs.single), rtol=RTOL, atol=ATOL)
    # The model learned something: validation loss well below chance (ln 2).
    assert runs.single.final_val_loss is not None and runs.single.final_val_loss < 0.65
    assert runs.ddp.samples_per_sec is not None and runs.ddp.samples_per_sec > 0


def test_killed_worker_is_restarted_and_resumes_from_last_checkpoint(runs: Runs) -> None:
    assert runs.marker.exists(), "the test hook never killed a worker"
    assert runs.crash.restart_count == 1
    assert runs.crash.resumed_after_epoch == CRASH_AFTER
    log = (runs.crash_dir / LOG_FILE).read_text()
    assert f"killing rank 1 after epoch {CRASH_AFTER}" in log
    assert f"resuming after epoch {CRASH_AFTER}" in log
    # Resuming restores model, optimizer and sampler: the curve is the uninterrupted one.
    np.testing.assert_allclose(_curve(runs.crash), _curve(runs.ddp), rtol=RTOL, atol=ATOL)
    assert runs.single.resumed_after_epoch is None and runs.single.restart_count == 0


def test_mlflow_run_holds_params_metrics_and_the_model(runs: Runs) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(runs.tracking_uri)
    assert runs.ddp.mlflow_run_id is not None
    run = client.get_run(runs.ddp.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "ddp-test"
    assert run.data.params["learning_rate"] == "0.01"
    assert run.data.params["hidden_units"] == "16,8" and run.data.params["trial"] == "t-1"
    assert run.data.tags["kubeloop.world_size"] == "2"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [metric.step for metric in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4]
    logged = [m.value for m in sorted(history, key=lambda m: m.step)]
    expected = [entry.train_loss for entry in runs.ddp.loss_curve]
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    assert run.data.metrics["final_val_loss"] == pytest.approx(runs.ddp.final_val_loss)


def _log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))


@pytest.mark.parametrize("where", ["mlflow", "local"])
def test_served_model_maps_raw_features_to_probabilities(runs: Runs, where: str) -> None:
    import mlflow.pyfunc

    if where == "mlflow":
        mlflow.set_tracking_uri(runs.tracking_uri)
        assert runs.ddp.model_uri is not None
        model = mlflow.pyfunc.load_model(runs.ddp.model_uri)
    else:
        model = mlflow.pyfunc.load_model(runs.single.model_path)
    validation = pd.read_parquet(runs.sets.validation)
    # Columns in another order than training: the signature puts them back by name.
    features = validation[list(reversed(FEATURES))].astype("float32")
    probabilities = np.asarray(model.predict(features)).reshape(-1)
    assert probabilities.shape == (len(validation),)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    summary = runs.ddp if where == "mlflow" else runs.single
    # The served model reproduces the trainer's own validation loss from raw features.
    loss = _log_loss(validation[LABEL].to_numpy(), probabilities)
    assert loss == pytest.approx(summary.final_val_loss, rel=1e-4)


def test_checkpoints_of_another_configuration_are_refused(runs: Runs, tmp_path: Path) -> None:
    with pytest.raises(TrainingFailedError) as raised:
        train(
            runs.sets.training,
            runs.sets.validation,
            LABEL,
            tmp_path / "other",
            checkpoint_dir=runs.single.checkpoint_dir,
            epochs=EPOCHS,
            batch_size=128,
            learning_rate=0.5,
            max_restarts=0,
        )
    # The trainer's own message comes first, then the log tail.
    first_line = str(raised.value).splitlines()[0]
    assert "holds checkpoints of another training configuration" in first_line
    assert runs.single.checkpoint_dir in first_line
