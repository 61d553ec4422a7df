"""The compiled feature_backfill pipeline's graph is the intended one (pipelines/tests checks it is current)."""

from pipelines.compile import checked_in


def test_materialize_runs_after_the_backfill() -> None:
    spec = checked_in("feature_backfill")
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"spark-feature-backfill", "feast-apply-materialize"}
    assert tasks["feast-apply-materialize"]["dependentTasks"] == ["spark-feature-backfill"]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["feature_view"]["parameterType"] == "STRUCT"
    assert set(spec["root"]["outputDefinitions"]["parameters"]) == {"rows", "feast_summary_json"}
