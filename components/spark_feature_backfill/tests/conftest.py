from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from components.spark_feature_backfill.session import spark_session


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One small local session for the whole test process (getOrCreate shares it)."""
    session = spark_session(
        "local[2]",
        {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"},
        app_name="kubeloop-tests",
    )
    yield session
