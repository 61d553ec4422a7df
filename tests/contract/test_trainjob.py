"""The TrainJob the train_ddp step writes for nodes > 1, against the Trainer v2.1 schema in
``schemas/trainjob.trainer-2.1.json`` (written from the TrainJob API types it names)."""

from __future__ import annotations

from typing import Any

import pytest

from components.train_ddp.config import TrainConfig
from components.train_ddp.trainjob import ClusterOptions, trainjob_manifest
from tests.contract.schemas import errors

SCHEMA = "trainjob.trainer-2.1"


def config(run_name: str | None) -> TrainConfig:
    return TrainConfig(
        training_set="/shared/train.parquet",
        validation_set="/shared/validation.parquet",
        label_column="churned",
        output_dir="/shared/out",
        run_name=run_name,
    )


CASES: dict[str, tuple[str | None, ClusterOptions, int]] = {
    "defaults": (None, ClusterOptions(image="kubeloop:0.1.0"), 2),
    "resources": (
        "Churn Trial 7",
        ClusterOptions(image="kubeloop:0.1.0", namespace="team", cpu="2", memory="4Gi", gpu=1),
        4,
    ),
    "long name": (
        "x" * 200,
        ClusterOptions(image="kubeloop:0.1.0", runtime_kind="TrainingRuntime"),
        2,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_trainjob_fits_the_trainer_schema(case: str) -> None:
    run_name, options, nodes = CASES[case]
    manifest = trainjob_manifest(
        config(run_name), nodes=nodes, nproc_per_node=2, max_restarts=1, options=options
    )
    assert errors(SCHEMA, manifest) == []


def test_the_schema_can_fail() -> None:
    manifest: dict[str, Any] = trainjob_manifest(
        config(None), nodes=2, nproc_per_node=1, max_restarts=0, options=CASES["defaults"][1]
    )
    manifest["spec"]["trainer"]["numNode"] = 2
    manifest["metadata"]["name"] = "Upper_Case"
    del manifest["spec"]["runtimeRef"]
    found = errors(SCHEMA, manifest)
    assert any("numNode" in e for e in found), found
    assert any(e.startswith("metadata/name") for e in found), found
    assert any("runtimeRef" in e for e in found), found
