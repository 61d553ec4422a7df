"""spec.engine on the FeatureView: auto resolves at launch and is recorded; an explicit duckdb
with SQL DuckDB cannot run is an invalid spec that names the fix."""

from __future__ import annotations

from pathlib import Path

from operators.api.featureview import FEATUREVIEW
from operators.config import OperatorConfig
from operators.featureview import service
from operators.featureview.tests.test_service import NOW, featureview
from tests.support.fakes import FakeObject, FakePipelines

HINTED = {"sql": "SELECT /*+ BROADCAST(s) */ * FROM source s"}


def _backends(tmp_path: Path, pipelines: FakePipelines, **config: object):
    settings = OperatorConfig(state_dir=tmp_path / "state", **config)  # type: ignore[arg-type]
    return service.FeatureViewBackends.from_config(settings, pipelines)


def _launch(obj: FakeObject, fv: service.FeatureViewBackends) -> str:
    for _ in range(2):
        obj.run(service.reconcile, fv, NOW)
    assert obj.status.last_backfill is not None
    return obj.status.last_backfill.run


def _source(tmp_path: Path) -> str:
    path = tmp_path / "events"
    path.mkdir()
    (path / "part-0.parquet").write_bytes(b"x" * 1000)
    return str(path)


def test_auto_runs_duckdb_on_the_embedded_default_and_says_why(tmp_path: Path) -> None:
    pipelines = FakePipelines()
    obj = FakeObject(FEATUREVIEW, featureview(_source(tmp_path)))
    run = _launch(obj, _backends(tmp_path, pipelines))
    assert pipelines.params[run]["engine"] == "auto"
    assert obj.status.last_backfill is not None
    assert (obj.status.last_backfill.engine or "").startswith("duckdb (auto: input ~0 MiB")


def test_auto_runs_spark_on_a_cluster_master_or_for_untranspilable_sql(tmp_path: Path) -> None:
    pipelines = FakePipelines()
    cluster = _backends(tmp_path, pipelines, spark_master="k8s://https://api:6443")
    obj = FakeObject(FEATUREVIEW, featureview(_source(tmp_path)))
    _launch(obj, cluster)
    assert "is a cluster" in (obj.status.last_backfill.engine or "")  # type: ignore[union-attr]
    hinted = FakeObject(FEATUREVIEW, featureview(str(tmp_path / "events"), transformation=HINTED))
    _launch(hinted, _backends(tmp_path, pipelines))
    assert (hinted.status.last_backfill.engine or "").startswith("spark (auto: transformation.sql")  # type: ignore[union-attr]


def test_explicit_duckdb_with_untranspilable_sql_is_invalid(tmp_path: Path) -> None:
    pipelines = FakePipelines()
    spec = featureview(_source(tmp_path), transformation=HINTED, engine="duckdb")
    obj = FakeObject(FEATUREVIEW, spec)
    for _ in range(2):
        obj.run(service.reconcile, _backends(tmp_path, pipelines), NOW)
    assert obj.condition("Ready") == ("False", "InvalidSpec")
    assert "set spec.engine: spark" in obj.status.conditions[0].message
    assert pipelines.submits == {}
