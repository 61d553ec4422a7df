"""Fixtures shared by the component tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One small local session for the whole test process (getOrCreate shares it)."""
    # Imported here: only the Spark-based components' tests pay for PySpark.
    from components.spark_feature_backfill.session import spark_session

    session = spark_session(
        "local[2]",
        {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"},
        app_name="kubeloop-tests",
    )
    yield session
