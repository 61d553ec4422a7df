"""Fixtures shared by the Experiment service tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.fixture
def labels(tmp_path: Path) -> str:
    path = tmp_path / "labels.parquet"
    table = pa.table(
        {
            "t": pa.array([datetime(2026, 2, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "y": pa.array([1], pa.int64()),
            "user_id": pa.array([7], pa.int64()),
        }
    )
    pq.write_table(table, path)
    return str(path)
