"""Which engine runs a backfill or a point-in-time join: DuckDB on one node, Spark beyond it.

Both engines implement one semantics (``spark_feature_backfill/impl.py`` for backfills,
``build_training_set/impl.py`` for point-in-time joins); the differential tests
(``components/tests/test_engines_differential.py``) hold them to it row for row. The choice is
only about where the work fits:

* ``spark`` / ``duckdb``: what the user asked for, always;
* ``auto``: DuckDB when Spark's master is local (the embedded default: one node either way) and
  the input's estimated in-memory size fits the memory budget; Spark otherwise (a Kubernetes
  master or Spark Connect means a cluster was provisioned for the work, and an input beyond the
  budget would spill a single process to disk).

The choice (``choose_engine``, ``transpile``) is pure: the caller measures the input with
``local_input_bytes`` and lists it with ``visible_files`` (the two functions here that read
the filesystem) and passes the budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

Engine = Literal["auto", "duckdb", "spark"]
ENGINES: tuple[str, ...] = ("auto", "duckdb", "spark")
# Parquet is compressed and columnar: decoded, a column takes several times its file size
# (dictionary/RLE-encoded floats and timestamps). 4x is what bench/pit_join.py's data shows
# (10M feature rows: 0.5 GiB of Parquet, ~2.5 GiB peak for the DuckDB join).
PARQUET_EXPANSION = 4
DEFAULT_MEMORY_BUDGET_MB = 4096


class EngineError(ValueError):
    """The requested engine cannot run this input; the message names the field and the fix."""


class TranspileError(EngineError):
    """The Spark SQL has no faithful DuckDB translation; the message says to use Spark."""


def transpile(spark_sql: str) -> str:
    """Spark SQL → DuckDB SQL with sqlglot (https://github.com/tobymao/sqlglot), or
    TranspileError saying why and what to do. Constructs sqlglot knows it cannot carry over
    (hints, for one) raise rather than being dropped or passed through."""
    # Imported here: the operator imports this module; only transpiling pays for sqlglot.
    import sqlglot
    from sqlglot.errors import ErrorLevel, SqlglotError

    try:
        parsed = sqlglot.parse(spark_sql, read="spark")
        statements = [
            # Spark 4 runs ANSI SQL by default: CAST raises on a value it cannot convert, where
            # sqlglot (Spark 2 semantics) writes TRY_CAST, which would yield NULL instead. An
            # explicit TRY_CAST (safe=True) stays one.
            tree.transform(_ansi_cast).sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
            for tree in parsed
            if tree is not None
        ]
    except SqlglotError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TranspileError(
            f"transformation.sql cannot run on DuckDB ({first}); set spec.engine: spark"
        ) from None
    if len(statements) != 1:
        raise TranspileError(
            f"transformation.sql must be one SELECT, got {len(statements)} statements"
        )
    return statements[0]


def _ansi_cast(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.TryCast) and not node.args.get("safe"):
        return exp.Cast(this=node.this, to=node.args["to"])
    return node


def transpiles(spark_sql: str | None) -> bool:
    if spark_sql is None:
        return True
    try:
        transpile(spark_sql)
    except TranspileError:
        return False
    return True


def choose_engine(
    requested: str,
    spark_master: str,
    input_bytes: int | None,
    memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB,
    sql_transpiles: bool = True,
) -> tuple[Literal["duckdb", "spark"], str]:
    """(engine, why). ``input_bytes`` None: the input is not on a local file system (size
    unknown, so it is not assumed to fit one node). ``sql_transpiles``: the transformation SQL
    has a DuckDB translation (``transpile``); auto runs SQL without one on Spark."""
    if requested not in ENGINES:
        raise EngineError(f"engine {requested!r} is not one of {', '.join(ENGINES)}")
    if requested == "duckdb":
        return "duckdb", "spec.engine is duckdb"
    if requested == "spark":
        return "spark", "spec.engine is spark"
    if not spark_master.startswith("local"):
        return "spark", f"auto: Spark master {spark_master} is a cluster"
    if input_bytes is None:
        return "spark", "auto: the input is not on a local file system"
    if not sql_transpiles:
        return "spark", "auto: transformation.sql has no DuckDB translation"
    estimate_mb = input_bytes * PARQUET_EXPANSION / 2**20
    if estimate_mb > memory_budget_mb:
        return "spark", (
            f"auto: input ~{estimate_mb:.0f} MiB in memory exceeds the {memory_budget_mb} MiB "
            "single-node budget"
        )
    return "duckdb", (
        f"auto: input ~{estimate_mb:.0f} MiB in memory fits the {memory_budget_mb} MiB "
        "single-node budget"
    )


def local_input_bytes(paths: Iterable[str]) -> int | None:
    """Total size of the files under ``paths`` (files or directories); None if any is remote."""
    from components.uris import input_bytes

    return input_bytes(paths)


def _hidden(name: str) -> bool:
    # Hadoop's hidden-path rule, which Spark's file index applies to every file and folder
    # name below a directory source (``_SUCCESS``, ``.crc`` files, a writer's temp files).
    return name.startswith((".", "_"))


def visible_files(uri: str, suffix: str = ".parquet") -> list[str]:
    """The files Spark would read for ``uri``: the file itself, or every ``suffix`` file below
    the directory whose name and folders are not hidden, as URIs of the same filesystem (a
    local one as paths). DuckDB's globs and directory reads include hidden files, so a writer's
    in-progress ``.tmp-…`` file would be read (and fail) there while Spark skips it: both
    engines read this list instead."""
    from components.uris import as_uri, filesystem

    fs, root = filesystem(uri)
    if not fs.isdir(root):
        return [as_uri(fs, root)]
    found: list[str] = []
    for path in sorted(fs.find(root)):
        relative = path[len(root.rstrip("/")) + 1 :].split("/")
        if path.endswith(suffix) and not any(_hidden(part) for part in relative):
            found.append(as_uri(fs, path))
    return found


def duckdb_parquet(con: Any, uri: str, hive_partitioning: bool) -> str:
    """A DuckDB ``read_parquet(...)`` over :func:`visible_files` (``uri`` itself when nothing
    is there, so DuckDB's own "no files found" error names it), through fsspec for a URI that
    is not local (``components.uris.duckdb_path``)."""
    from components.uris import duckdb_path

    files = [duckdb_path(con, f) for f in visible_files(uri) or [uri]]
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    hive = "true" if hive_partitioning else "false"
    return f"read_parquet([{listed}], hive_partitioning = {hive}, union_by_name = true)"
