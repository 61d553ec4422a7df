"""Bad input is refused before any worker starts, with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.train_ddp.impl import LOG_FILE, ClusterOptions, TrainingInputError, train
from components.train_ddp.tests.conftest import LABEL, TabularSets, synthetic_frame


def _train(sets: TabularSets, output: Path, **overrides: object) -> None:
    arguments: dict[str, object] = {"epochs": 1, "batch_size": 64}
    arguments.update(overrides)
    train(sets.training, sets.validation, LABEL, output, **arguments)  # type: ignore[arg-type]


def _refused(sets: TabularSets, tmp_path: Path, **overrides: object) -> str:
    output = tmp_path / "out"
    with pytest.raises(TrainingInputError) as raised:
        _train(sets, output, **overrides)
    assert not (output / LOG_FILE).exists(), "torchrun must not start on bad input"
    return str(raised.value)


def _with_label(tmp_path: Path, values: list[object]) -> TabularSets:
    frame = synthetic_frame(len(values), seed=3).assign(**{LABEL: values})
    path = tmp_path / "bad_label.parquet"
    frame.to_parquet(path)
    return TabularSets(path, path)


def test_missing_training_set_is_named(tabular_sets: TabularSets, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.parquet"
    sets = TabularSets(missing, tabular_sets.validation)
    message = _refused(sets, tmp_path)
    assert "training_set" in message and str(missing) in message


def test_missing_validation_set_is_named(tabular_sets: TabularSets, tmp_path: Path) -> None:
    sets = TabularSets(tabular_sets.training, tmp_path / "gone.parquet")
    assert "validation_set" in _refused(sets, tmp_path)


def test_text_label_names_the_column(tmp_path: Path) -> None:
    message = _refused(_with_label(tmp_path, ["yes", "no"] * 32), tmp_path)
    assert repr(LABEL) in message and "numeric" in message


def test_non_binary_label_names_the_column_and_values(tmp_path: Path) -> None:
    message = _refused(_with_label(tmp_path, [0, 1, 2, 7] * 16), tmp_path)
    assert repr(LABEL) in message and "binary" in message and "7" in message


def test_missing_label_values_are_refused(tmp_path: Path) -> None:
    message = _refused(_with_label(tmp_path, [0.0, 1.0, None, 1.0] * 16), tmp_path)
    assert repr(LABEL) in message and "missing" in message


def test_absent_label_column_is_named(tabular_sets: TabularSets, tmp_path: Path) -> None:
    output = tmp_path / "out"
    with pytest.raises(TrainingInputError, match="label column 'churned' not found"):
        train(tabular_sets.training, tabular_sets.validation, "churned", output, epochs=1)


def test_absent_and_text_features_are_named(tmp_path: Path) -> None:
    frame = synthetic_frame(64, seed=4).assign(country=["de", "fr"] * 32)
    path = tmp_path / "text_feature.parquet"
    frame.to_parquet(path)
    sets = TabularSets(path, path)
    assert "'country' must be numeric" in _refused(sets, tmp_path)
    message = _refused(sets, tmp_path, feature_columns=["amount", "height"])
    assert "feature columns not found: ['height']" in message


def test_repeated_feature_columns_are_named(tabular_sets: TabularSets, tmp_path: Path) -> None:
    # Read from Parquet, a repeated name gave a frame with the column twice, and the checks
    # crashed on it (AttributeError) instead of saying what is wrong.
    message = _refused(tabular_sets, tmp_path, feature_columns=["amount", "clicks", "amount"])
    assert "feature columns listed more than once: ['amount']" in message


def test_validation_set_must_carry_the_training_features(
    tabular_sets: TabularSets, tmp_path: Path
) -> None:
    narrow = tmp_path / "narrow.parquet"
    pd.read_parquet(tabular_sets.validation).drop(columns=["clicks"]).to_parquet(narrow)
    message = _refused(TabularSets(tabular_sets.training, narrow), tmp_path)
    assert "validation_set" in message and "clicks" in message


def test_batch_not_divisible_by_world_size(tabular_sets: TabularSets, tmp_path: Path) -> None:
    message = _refused(tabular_sets, tmp_path, batch_size=63, nproc_per_node=2)
    assert "batch_size 63" in message and "world size 2" in message


def test_fewer_rows_than_one_batch(tabular_sets: TabularSets, tmp_path: Path) -> None:
    message = _refused(tabular_sets, tmp_path, batch_size=4096)
    assert "2048 rows" in message and "batch_size 4096" in message


def test_bad_parameters_name_the_field(tabular_sets: TabularSets, tmp_path: Path) -> None:
    assert "backend" in _refused(tabular_sets, tmp_path, backend="mpi")
    assert "learning_rate" in _refused(tabular_sets, tmp_path, learning_rate=0.0)
    assert "hidden_units" in _refused(tabular_sets, tmp_path, hidden_units=[8, 0])


def test_multi_node_needs_cluster_options(tabular_sets: TabularSets, tmp_path: Path) -> None:
    assert "needs a cluster" in _refused(tabular_sets, tmp_path, nodes=2)
    with pytest.raises(ValueError, match="image"):
        ClusterOptions(image="")
