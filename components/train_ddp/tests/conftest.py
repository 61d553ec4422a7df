"""Tiny synthetic tabular sets for the train_ddp tests (deterministic by seed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FEATURES = ("amount", "age_days", "clicks", "noise")
LABEL = "converted"


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    """Features on very different scales, a label that depends on three of them."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, rows)
    age_days = rng.uniform(0, 1000, rows)
    clicks = rng.poisson(3, rows).astype("int64")
    noise = rng.normal(0, 1, rows)
    logit = 0.8 * (np.log(amount) - 3.0) - 0.002 * (age_days - 500) + 0.4 * (clicks - 3)
    converted = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(
        {
            "amount": amount,
            "age_days": age_days,
            "clicks": clicks,
            "noise": noise,
            LABEL: converted,
        }
    )


@dataclass(frozen=True)
class TabularSets:
    training: Path
    validation: Path


def write_sets(directory: Path, train_rows: int = 2048, val_rows: int = 512) -> TabularSets:
    directory.mkdir(parents=True, exist_ok=True)
    training, validation = directory / "train.parquet", directory / "validation.parquet"
    synthetic_frame(train_rows, seed=1).to_parquet(training)
    synthetic_frame(val_rows, seed=2).to_parquet(validation)
    return TabularSets(training, validation)


@pytest.fixture
def tabular_sets(tmp_path: Path) -> TabularSets:
    return write_sets(tmp_path / "data")
