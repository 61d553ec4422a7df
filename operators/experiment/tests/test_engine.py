"""spec.engine on the Experiment: the training set's join engine is resolved at launch, passed
to the run and recorded in status with why."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.api.experiment import EXPERIMENT
from operators.experiment import service
from operators.experiment.tests.test_service import (
    Registrar,
    experiment,
    feature_view,
    finish_all,
    make,
    passes,
)
from tests.support.fakes import FakeFeatureViews, FakeObject


@pytest.mark.parametrize(
    ("engine", "master", "expected", "why"),
    [
        (None, "local[*]", "duckdb", "fits the 4096 MiB single-node budget"),
        (None, "k8s://https://api:6443", "spark", "is a cluster"),
        ("spark", "local[*]", "spark", "spec.engine is spark"),
    ],
)
def test_join_engine_is_resolved_passed_and_recorded(
    tmp_path: Path, labels: str, engine: str | None, master: str, expected: str, why: str
) -> None:
    views = FakeFeatureViews({("team-a", "fv"): feature_view()})
    backends, pipelines = make(tmp_path, views, Registrar())
    backends.spark_master = master
    spec = experiment(labels)
    if engine:
        spec["spec"]["engine"] = engine
    obj = FakeObject(EXPERIMENT, spec)
    passes(obj, backends, 1)
    assert [p["join_method"] for p in pipelines.params.values()] == [expected]
    assert obj.status.engine is not None
    assert obj.status.engine.startswith(expected) and why in obj.status.engine


class RecordingRegistrar(Registrar):
    def __init__(self) -> None:
        super().__init__()
        self.lineages: list[dict] = []

    def __call__(self, *args: object) -> service.Registration:
        self.lineages.append(args[3])  # type: ignore[arg-type]
        return super().__call__(*args)


def test_registered_lineage_names_the_training_set_engine(tmp_path: Path, labels: str) -> None:
    views = FakeFeatureViews({("team-a", "fv"): feature_view()})
    registrar = RecordingRegistrar()
    backends, pipelines = make(tmp_path, views, registrar)
    obj = FakeObject(EXPERIMENT, experiment(labels))
    passes(obj, backends, 1)
    finish_all(pipelines)
    passes(obj, backends, 2)
    assert [lineage["training_set_engine"] for lineage in registrar.lineages] == ["duckdb"]
