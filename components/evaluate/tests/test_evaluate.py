"""evaluate(): windows, baselines and the objective, on synthetic data and a real MLflow model."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.evaluate.impl import (
    EvaluationError,
    Objective,
    evaluate,
    evaluate_frames,
    parse_objective,
    report_json,
)
from components.evaluate.tests.synthetic import (
    FEATURES,
    LABEL,
    TRUE_WEIGHTS,
    labelled_frame,
    log_model_run,
    sigmoid,
    write_training_set,
)


def splits() -> dict[str, pd.DataFrame]:
    return {
        "train": labelled_frame(800, 0),
        "validation": labelled_frame(400, 1),
        "test": labelled_frame(400, 2),
    }


def true_model(frame: pd.DataFrame) -> np.ndarray:
    return sigmoid(frame[FEATURES].to_numpy() @ TRUE_WEIGHTS)


def noise_model(frame: pd.DataFrame) -> np.ndarray:
    return sigmoid(frame["user__noise"].to_numpy())


def test_true_model_beats_baselines_and_passes() -> None:
    report = evaluate_frames(splits(), LABEL, FEATURES, true_model, Objective(threshold=0.7))
    assert set(report.windows) == {"validation", "test"}
    assert report.windows["validation"].rows == 400
    names = [b.name for b in report.baselines]
    assert names == ["base_rate", "single_feature:user__x1"]
    assert report.baselines[0].windows["validation"].auc == 0.5
    objective = report.objective
    assert objective.value is not None and objective.value > 0.8
    assert objective.baseline == "single_feature:user__x1"
    assert objective.passes_threshold and objective.beats_baseline and objective.passed
    assert report.flat_metrics()["validation_auc"] == objective.value
    assert json.loads(report_json(report))["objective"]["passed"] is True


def test_noise_model_fails_baseline_and_threshold_with_reasons() -> None:
    report = evaluate_frames(splits(), LABEL, FEATURES, noise_model, Objective(threshold=0.7))
    objective = report.objective
    assert not objective.passes_threshold and not objective.beats_baseline
    assert "does not pass the threshold 0.7" in objective.reason
    assert "does not beat the baseline single_feature:user__x1" in objective.reason


def test_logloss_objective_minimizes() -> None:
    report = evaluate_frames(
        splits(),
        LABEL,
        FEATURES,
        true_model,
        parse_objective({"metric": "logloss", "threshold": 0.6}),
    )
    assert report.objective.goal == "minimize"
    assert report.objective.value is not None and report.objective.value < 0.6
    assert report.objective.beats_baseline


def test_missing_feature_column_is_named() -> None:
    data = splits()
    data["test"] = data["test"].drop(columns=["user__x2"])
    with pytest.raises(EvaluationError, match="column 'user__x2' missing from the test split"):
        evaluate_frames(data, LABEL, FEATURES, true_model, Objective())


def test_non_binary_label_is_named() -> None:
    data = splits()
    data["validation"][LABEL] = data["validation"][LABEL] * 3
    with pytest.raises(EvaluationError, match="label column 'label' in validation is not binary"):
        evaluate_frames(data, LABEL, FEATURES, true_model, Objective())


def test_bad_objective_is_named() -> None:
    with pytest.raises(EvaluationError, match="objective.metric"):
        parse_objective({"metric": "accuracy"})
    with pytest.raises(EvaluationError, match="goal 'maximize' does not fit metric 'logloss'"):
        parse_objective({"metric": "logloss", "goal": "maximize"})


def test_single_class_window_gives_undefined_objective() -> None:
    data = splits()
    data["validation"][LABEL] = 0
    report = evaluate_frames(data, LABEL, FEATURES, true_model, Objective())
    assert report.objective.value is None and not report.objective.passed
    assert "undefined" in report.objective.reason


@pytest.mark.slow  # loads torch and MLflow's pyfunc machinery
def test_evaluate_real_mlflow_model_and_logs_to_run(mlflow_sqlite: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from tests.support.mlflow import sqlite_artifact_location

    dataset = write_training_set(tmp_path / "training_set")
    run_id, model_uri = log_model_run(
        mlflow_sqlite, "eval", TRUE_WEIGHTS, sqlite_artifact_location(mlflow_sqlite, "eval")
    )
    report = evaluate(
        dataset,
        model_uri,
        LABEL,
        {"metric": "auc", "threshold": 0.7},
        (),
        tracking_uri=mlflow_sqlite,
        mlflow_run_id=run_id,
    )
    assert report.feature_columns == FEATURES  # from the model signature
    assert report.objective.passed
    run = MlflowClient(mlflow_sqlite).get_run(run_id)
    assert run.data.metrics["eval_validation_auc"] == pytest.approx(report.objective.value)
    logged = MlflowClient(mlflow_sqlite).download_artifacts(
        run_id, "evaluation/metrics.json", str(tmp_path)
    )
    assert json.loads(Path(logged).read_text())["objective"]["passed"] is True
    assert "scores" not in json.loads(Path(logged).read_text())

    # The validation scores, saved as the version's prediction-drift baseline, exposed on
    # registration (tag) and by the operator's registry client.
    from components.register_model.impl import register_model
    from contracts.mlflow_tags import SCORE_REFERENCE, SCORE_REFERENCE_ARTIFACT
    from contracts.mlflow_tags import SCORE_REFERENCE_COLUMN as COLUMN
    from operators.backends.registry import MlflowRegistry

    client = MlflowClient(mlflow_sqlite)
    saved = pd.read_parquet(
        client.download_artifacts(run_id, SCORE_REFERENCE_ARTIFACT, str(tmp_path))
    )
    assert saved[COLUMN].tolist() == pytest.approx(report.scores["validation"], abs=0)
    train = pd.read_parquet(Path(dataset) / "train")
    registration = register_model(client, "scored", run_id, {}, train, FEATURES, sample_rows=50)
    uri = f"runs:/{run_id}/{SCORE_REFERENCE_ARTIFACT}"
    assert registration.score_reference_uri == uri
    assert client.get_model_version("scored", registration.version).tags[SCORE_REFERENCE] == uri
    registry = MlflowRegistry(lambda: client)
    located = registry.score_reference_uri(run_id)
    assert located is not None and located.endswith(SCORE_REFERENCE_ARTIFACT)
    assert registry.score_reference_uri(None) is None

    # Champion/challenger on a real registry: no alias yet, then the MLModel operator's
    # registry client marks the version champion, and the same model no longer passes.
    first = evaluate(dataset, model_uri, LABEL, {}, (), mlflow_sqlite, champion_model="scored")
    assert first.vs_champion is None and first.objective.passed
    registry.mark_champion("scored", registration.version)
    against = evaluate(dataset, model_uri, LABEL, {}, (), mlflow_sqlite, champion_model="scored")
    assert against.vs_champion is not None
    assert against.vs_champion.version == registration.version
    assert against.vs_champion.improvement == 0.0 and not against.vs_champion.passed
    assert not against.objective.passed and not against.objective.beats_champion


def test_scores_of_the_evaluated_windows_stay_out_of_the_report_json() -> None:
    data = splits()
    report = evaluate_frames(data, LABEL, FEATURES, true_model, Objective())
    assert len(report.scores["validation"]) == len(data["validation"])
    assert "scores" not in json.loads(report_json(report))
