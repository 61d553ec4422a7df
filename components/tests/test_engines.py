"""Engine choice (pure) and the Spark SQL → DuckDB transpile step."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.engines import (
    EngineError,
    TranspileError,
    choose_engine,
    local_input_bytes,
    transpile,
)

MIB = 2**20


def test_explicit_engines_are_kept_whatever_the_size() -> None:
    assert choose_engine("spark", "local[*]", 1, 4096)[0] == "spark"
    assert choose_engine("duckdb", "k8s://https://api:6443", 10**12, 1)[0] == "duckdb"


def test_auto_picks_duckdb_only_on_one_node_within_the_budget() -> None:
    assert choose_engine("auto", "local[*]", 100 * MIB, 4096)[0] == "duckdb"
    # 4x Parquet expansion: 1.5 GiB of files is ~6 GiB in memory, over a 4 GiB budget.
    engine, why = choose_engine("auto", "local[*]", 1536 * MIB, 4096)
    assert engine == "spark" and "exceeds the 4096 MiB" in why
    assert choose_engine("auto", "k8s://https://api:6443", 1, 4096)[0] == "spark"
    assert choose_engine("auto", "sc://spark:15002", 1, 4096)[0] == "spark"
    assert choose_engine("auto", "local[*]", None, 4096)[0] == "spark"
    engine, why = choose_engine("auto", "local[2]", 1, 4096, sql_transpiles=False)
    assert engine == "spark" and "no DuckDB translation" in why


def test_unknown_engine_is_refused_by_name() -> None:
    with pytest.raises(EngineError, match="engine 'polars' is not one of auto, duckdb, spark"):
        choose_engine("polars", "local[*]", 1)


def test_local_input_bytes_sums_files_and_refuses_remote(tmp_path: Path) -> None:
    (tmp_path / "d" / "date=2026-01-01").mkdir(parents=True)
    (tmp_path / "d" / "date=2026-01-01" / "a.parquet").write_bytes(b"x" * 10)
    (tmp_path / "f.parquet").write_bytes(b"y" * 5)
    assert local_input_bytes([str(tmp_path / "d"), str(tmp_path / "f.parquet")]) == 15
    assert local_input_bytes([str(tmp_path / "d"), "s3://bucket/labels"]) is None


def test_transpile_rewrites_spark_idioms_and_refuses_what_it_cannot_carry() -> None:
    out = transpile("SELECT nvl(a, 0) AS a, date_format(ts, 'yyyy-MM-dd') AS d FROM source")
    assert "COALESCE" in out and "STRFTIME" in out and "%Y-%m-%d" in out
    # Spark 4's ANSI CAST raises on bad input, as DuckDB's CAST does; TRY_CAST stays TRY_CAST.
    out = transpile("SELECT CAST(a AS INT) AS a, TRY_CAST(b AS INT) AS b FROM source")
    assert out == "SELECT CAST(a AS INT) AS a, TRY_CAST(b AS INT) AS b FROM source"
    with pytest.raises(TranspileError, match=r"cannot run on DuckDB .*set spec.engine: spark"):
        transpile("SELECT /*+ BROADCAST(s) */ * FROM source s")
    with pytest.raises(TranspileError, match="one SELECT, got 2 statements"):
        transpile("SELECT 1; SELECT 2")
