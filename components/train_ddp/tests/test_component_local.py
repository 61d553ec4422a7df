"""The KFP component runs end to end through kfp.local (the embedded default's backend)."""

from pathlib import Path

import pytest
from kfp import dsl, local

from components.train_ddp.component import train_ddp
from components.train_ddp.summary import read_summary
from components.train_ddp.tests.conftest import LABEL, TabularSets

pytestmark = pytest.mark.slow


def test_component_trains_with_two_processes_via_kfp_local(
    tabular_sets: TabularSets, tmp_path: Path
) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "pipeline_root"),
        raise_on_error=True,
    )

    @dsl.pipeline(name="train-ddp-component-test")
    def pipeline(training_uri: str, validation_uri: str) -> dsl.Model:
        training = dsl.importer(artifact_uri=training_uri, artifact_class=dsl.Dataset)
        validation = dsl.importer(artifact_uri=validation_uri, artifact_class=dsl.Dataset)
        task = train_ddp(
            training_set=training.output,
            validation_set=validation.output,
            label_column=LABEL,
            feature_columns=["amount", "clicks", "age_days"],
            hidden_units=[8],
            epochs=2,
            batch_size=128,
            nproc_per_node=2,
            checkpoint_dir=str(tmp_path / "checkpoints"),
        )
        return task.outputs["model"]

    run = pipeline(
        training_uri=str(tabular_sets.training), validation_uri=str(tabular_sets.validation)
    )
    model_dir = Path(run.output.path)
    summary = read_summary(model_dir / "summary.json")
    assert summary.world_size == 2 and summary.epochs == 2
    assert summary.feature_columns == ["amount", "clicks", "age_days"]
    assert (model_dir / "model" / "MLmodel").exists()
    assert run.output.metadata["world_size"] == 2
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == [
        "epoch-00001.pt",
        "epoch-00002.pt",
    ]
