"""The checked-in compiled feature_backfill pipeline is current, and its graph is intended."""

from pipelines.compile import compile_to_text, normalized, package_path


def test_checked_in_yaml_matches_a_fresh_compile() -> None:
    golden = normalized(package_path("feature_backfill").read_text())
    assert golden == normalized(compile_to_text("feature_backfill")), (
        "pipelines/feature_backfill/pipeline.yaml is stale: run `python -m pipelines.compile`"
    )


def test_materialize_runs_after_the_backfill() -> None:
    spec = normalized(package_path("feature_backfill").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"spark-feature-backfill", "feast-apply-materialize"}
    assert tasks["feast-apply-materialize"]["dependentTasks"] == ["spark-feature-backfill"]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["feature_view"]["parameterType"] == "STRUCT"
    assert set(spec["root"]["outputDefinitions"]["parameters"]) == {"rows", "feast_summary_json"}
