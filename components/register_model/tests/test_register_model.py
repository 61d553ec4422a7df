"""register_model against a real MLflow server (PostgreSQL backend store, proxied artifacts)."""

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.evaluate.tests.synthetic import (
    FEATURES,
    TRUE_WEIGHTS,
    labelled_frame,
    log_model_run,
    write_training_set,
)
from components.register_model.impl import (
    REFERENCE_ARTIFACT,
    Lineage,
    RegistrationError,
    code_version,
    register_from_training_set,
    register_model,
)

LINEAGE = Lineage(
    feature_view_versions={"user-features": "3f2a9c"},
    data_window={"start": "2026-01-01T00:00:00+00:00", "end": "2026-03-01T00:00:00+00:00"},
    code_version="git:abc123",
    kfp_run_id="run-uuid-1",
    kfp_run_name="exp-ctr-r1-t0",
    experiment="ctr",
    trial="t0",
)


def versions_tag(client: MlflowClient, key: str) -> str:
    return str(client.get_model_version("ctr-model", "1").tags[key])


@pytest.mark.slow  # shares the session's MLflow server, whose start takes a while
def test_registers_with_lineage_reference_and_is_idempotent(
    mlflow_server: str, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    run_id, model_uri = log_model_run(mlflow_server, "register-idempotent", TRUE_WEIGHTS)
    train = labelled_frame(300, seed=0)

    first = register_model(client, "ctr-model", run_id, LINEAGE, train, FEATURES, sample_rows=100)
    again = register_model(client, "ctr-model", run_id, LINEAGE, train, FEATURES, sample_rows=100)

    assert first.created and not again.created
    assert first.version == again.version == "1"
    logged_model = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert first.source == logged_model.artifact_location
    assert versions_tag(client, "kubeloop.io/logged-model-id") == logged_model.model_id
    versions = client.search_model_versions("name = 'ctr-model'")
    assert [v.version for v in versions] == ["1"]
    tags = versions[0].tags
    assert json.loads(tags["kubeloop.io/feature-view-versions"]) == {"user-features": "3f2a9c"}
    assert json.loads(tags["kubeloop.io/data-window"])["end"] == "2026-03-01T00:00:00+00:00"
    assert tags["kubeloop.io/code-version"] == "git:abc123"
    assert tags["kubeloop.io/kfp-run-name"] == "exp-ctr-r1-t0"
    assert tags["kubeloop.io/kfp-run-id"] == "run-uuid-1"
    assert tags["kubeloop.io/experiment"] == "ctr" and tags["kubeloop.io/trial"] == "t0"
    assert tags["kubeloop.io/reference"] == f"runs:/{run_id}/{REFERENCE_ARTIFACT}"

    artifacts = [a.path for a in client.list_artifacts(run_id, "reference")]
    assert artifacts == [REFERENCE_ARTIFACT]  # uploaded once
    local = client.download_artifacts(run_id, REFERENCE_ARTIFACT, str(tmp_path))
    reference = pd.read_parquet(local)
    assert list(reference.columns) == FEATURES and len(reference) == 100
    # Every sampled row is a row of the training features (sampled, not synthesized).
    assert len(reference.merge(train[FEATURES].drop_duplicates(), on=FEATURES)) == 100


@pytest.mark.slow
def test_second_run_gets_the_next_version(mlflow_server: str, tmp_path: Path) -> None:
    dataset = write_training_set(tmp_path / "ts", {"train": 50, "validation": 10, "test": 10})
    runs = [log_model_run(mlflow_server, "register-versions", TRUE_WEIGHTS)[0] for _ in range(2)]
    versions = [
        register_from_training_set(
            mlflow_server, "versions-model", run_id, {"trial": f"t{i}"}, dataset, FEATURES
        ).version
        for i, run_id in enumerate(runs)
    ]
    assert versions == ["1", "2"]


@pytest.mark.slow
def test_bad_input_is_named(mlflow_server: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    train = labelled_frame(20, seed=0)
    with pytest.raises(RegistrationError, match="run 'no-such-run' not found"):
        register_model(client, "m", "no-such-run", {}, train, FEATURES)
    run_id, _ = log_model_run(mlflow_server, "register-bad", TRUE_WEIGHTS)
    with pytest.raises(RegistrationError, match="feature column 'user__missing' missing"):
        register_model(client, "m", run_id, {}, train, [*FEATURES, "user__missing"])
    with pytest.raises(RegistrationError, match="no model at artifact path 'weights'"):
        register_model(client, "m", run_id, {}, train, FEATURES, model_artifact_path="weights")
    with pytest.raises(ValueError, match="unknown_field"):
        register_model(client, "m", run_id, {"unknown_field": 1}, train, FEATURES)


def test_embedded_default_sqlite_store(mlflow_sqlite: str, tmp_path: Path) -> None:
    from tests.support.mlflow import sqlite_artifact_location

    location = sqlite_artifact_location(mlflow_sqlite, "embedded")
    run_id, _ = log_model_run(mlflow_sqlite, "embedded", TRUE_WEIGHTS, location)
    dataset = write_training_set(tmp_path / "ts", {"train": 40, "validation": 10, "test": 10})
    first = register_from_training_set(
        mlflow_sqlite, "local-model", run_id, LINEAGE, dataset, FEATURES
    )
    again = register_from_training_set(
        mlflow_sqlite, "local-model", run_id, LINEAGE, dataset, FEATURES
    )
    assert (first.version, first.created) == ("1", True)
    assert (again.version, again.created) == ("1", False)


def test_code_version_is_git_sha_in_a_checkout_else_package(tmp_path: Path) -> None:
    assert code_version().startswith("git:")
    assert code_version(tmp_path) == "kubeloop==0.1.0"  # not a git checkout


def test_passed_evaluation_becomes_the_tag_latest_passing_follows() -> None:
    from components.register_model.impl import Lineage
    from operators.backends.registry import EVALUATION_PASSED, EVALUATION_TAG

    assert Lineage(evaluation="passed").tags()[EVALUATION_TAG] == EVALUATION_PASSED
    assert EVALUATION_TAG not in Lineage(trial="t0").tags()


def test_retrain_lineage_becomes_tags_only_when_set() -> None:
    retrained = Lineage(
        retrain_reason="drift on user_activity__price",
        drift_report="http://monitor/reports/7",
        retrain_requested_at="2026-03-01T10:00:00+00:00",
    ).tags()
    assert retrained["kubeloop.io/retrain-reason"] == "drift on user_activity__price"
    assert retrained["kubeloop.io/drift-report"] == "http://monitor/reports/7"
    assert retrained["kubeloop.io/retrain-requested-at"] == "2026-03-01T10:00:00+00:00"
    first = LINEAGE.tags()
    assert not {k for k in first if "retrain" in k or "drift" in k}


def test_champion_and_baseline_comparisons_become_camel_case_tags() -> None:
    from components.register_model.impl import comparison_lineage
    from contracts.mlflow_tags import VS_BASELINE, VS_CHAMPION

    report = {
        "vs_champion": {"reference": "champion", "version": "2", "reference_value": 0.7},
        "vs_baseline": {"reference": "base_rate", "version": None, "min_improvement": 0.01},
    }
    lineage = comparison_lineage(json.dumps(report))
    tags = Lineage(**lineage).tags()
    assert json.loads(tags[VS_CHAMPION]) == {
        "reference": "champion",
        "version": "2",
        "referenceValue": 0.7,
    }
    assert json.loads(tags[VS_BASELINE]) == {"reference": "base_rate", "minImprovement": 0.01}
    # No champion yet: only the baseline's tag.
    first = comparison_lineage(json.dumps({"vs_champion": None, "vs_baseline": {"passed": True}}))
    first_tags = Lineage(**first).tags()
    assert VS_BASELINE in first_tags and VS_CHAMPION not in first_tags
    assert comparison_lineage("") == {}
    with pytest.raises(RegistrationError, match="evaluation_json is not JSON"):
        comparison_lineage("{")
