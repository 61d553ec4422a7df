"""Pipeline data by URI (issue #13 item 2): the components read and write through fsspec, so a
filesystem that is not the local one (here fsspec's ``memory://``, as s3:// or gs:// would be
on a cluster) holds the offline store and the training sets with the same results as
``file://``. On the code before, DuckDB refused a non-local output ("writes local paths
only"), and the training set's splits went to a local directory named ``memory:/…``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from components import uris
from components.build_training_set.impl import build_training_set
from components.build_training_set.tests.test_pit_join import _hard_case_rows, _view, _write_offline
from components.engines import visible_files
from components.evaluate.impl import read_split
from components.spark_feature_backfill.impl import run_backfill
from contracts.storage import (
    AWS_ACCESS_KEY_ID_ENV,
    AWS_ENDPOINT_URL_ENV,
    AWS_ENDPOINT_URL_S3_ENV,
    AWS_REGION_ENV,
    AWS_SECRET_ACCESS_KEY_ENV,
    GOOGLE_CREDENTIALS_ENV,
)
from kubeloop.sampledata.feature_views import user_activity_view
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset
from pipelines.training.handoff import copy_split, earliest

LABELS = {
    "timestampField": "event_timestamp",
    "labelField": "label",
    "entityKeys": ["user_id", "item_id"],
}
SPLIT = {"validation": "1h", "test": "1h", "end": "2026-01-05T12:00:00Z"}
# Windows meeting at noon: the second backfill carries the first one's morning rows over.
WINDOWS = [
    ("2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z"),
    ("2026-01-06T12:00:00Z", "2026-01-08T00:00:00Z"),
]


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh directory on fsspec's in-process memory filesystem, removed afterwards."""
    root = f"memory://kubeloop-test-{uuid.uuid4().hex}"
    yield root
    fs, path = uris.filesystem(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def upload(local: Path, uri: str) -> str:
    fs, path = uris.filesystem(uri)
    fs.put(str(local), path, recursive=True)
    return uri


def _offline(uri: str) -> pd.DataFrame:
    frame = uris.read_parquet(uri)
    frame["date"] = frame["date"].astype(str)
    keys = [c for c in frame.columns if c != "date"]
    return frame.sort_values(keys, kind="mergesort").reset_index(drop=True)


def test_uri_forms() -> None:
    assert uris.join("file:///data/x/", "train") == "file:///data/x/train"
    assert uris.join("/data/x", "train") == "/data/x/train"
    assert uris.join("s3://bucket/root", "/a/", "b") == "s3://bucket/root/a/b"
    assert uris.spark_path("s3://bucket/a") == "s3a://bucket/a"
    assert uris.spark_path("gs://bucket/a") == "gs://bucket/a"
    assert uris.spark_path("file:///a") == "file:///a"
    assert uris.is_local("/a") and uris.is_local("file:///a") and not uris.is_local("memory://a")
    assert uris.local_path("file:///data/a b") == "/data/a b"
    assert uris.input_bytes(["file:///nonexistent", "memory://x"]) is None
    with pytest.raises(ValueError, match="not on the local filesystem"):
        uris.local_path("gs://bucket/a")


def test_s3_options_come_from_the_credentials_environment() -> None:
    """botocore reads the key pair and the endpoint itself, but not AWS_REGION: that is passed."""
    env = {
        AWS_ACCESS_KEY_ID_ENV: "key",
        AWS_SECRET_ACCESS_KEY_ENV: "secret",
        AWS_ENDPOINT_URL_ENV: "http://minio.storage:9000",
        AWS_REGION_ENV: "eu-west-1",
    }
    assert uris.storage_options("s3://bucket/x", env) == {
        "client_kwargs": {"region_name": "eu-west-1"}
    }
    assert uris.storage_options("s3://bucket/x", {AWS_ACCESS_KEY_ID_ENV: "key"}) == {}
    assert uris.storage_options("gs://bucket/x", env) == {}
    assert uris.storage_options("file:///x", env) == {}
    # The service-specific endpoint first, as botocore reads them (Feast and S3A are given it).
    assert uris.s3_endpoint({**env, AWS_ENDPOINT_URL_S3_ENV: "http://s3.local:9000"}) == (
        "http://s3.local:9000"
    )
    assert uris.s3_endpoint(env) == "http://minio.storage:9000"


def test_spark_connectors_are_configured_from_the_same_environment() -> None:
    env = {
        AWS_ACCESS_KEY_ID_ENV: "key",
        AWS_SECRET_ACCESS_KEY_ENV: "secret",
        AWS_ENDPOINT_URL_ENV: "http://minio.storage:9000",
        GOOGLE_CREDENTIALS_ENV: "/var/run/secrets/kubeloop/storage/key.json",
    }
    conf = uris.spark_storage_conf(env)
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "EnvironmentVariableCredentialsProvider"
    )
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio.storage:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "us-east-1"
    assert conf["spark.hadoop.google.cloud.auth.service.account.json.keyfile"] == (
        "/var/run/secrets/kubeloop/storage/key.json"
    )
    assert (
        conf["spark.hadoop.fs.gs.impl"] == "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem"
    )
    # AWS itself: the key pair only, S3A's own endpoint and virtual-host addressing.
    aws = uris.spark_storage_conf({AWS_ACCESS_KEY_ID_ENV: "key", AWS_SECRET_ACCESS_KEY_ENV: "s"})
    assert set(aws) == {"spark.hadoop.fs.s3a.aws.credentials.provider"}
    assert uris.spark_storage_conf({}) == {}


def test_visible_files_skip_hidden_ones_on_any_filesystem(memory_root: str) -> None:
    fs, root = uris.filesystem(memory_root)
    for name in ("date=1/part-0.parquet", "date=1/.tmp-1.parquet", "_temporary/x.parquet"):
        fs.pipe(f"{root}/{name}", b"x")
    assert visible_files(memory_root) == [f"memory://{root}/date=1/part-0.parquet"]


def check_backfill_equals_file_uris(tmp_path: Path, remote_root: str) -> None:
    """The DuckDB backfill reading and writing under ``remote_root`` gives the ``file://``
    result (also run on moto's S3 server: tests/integration/test_s3_storage.py)."""
    write_dataset(GeneratorConfig(rows=1500, seed=5, days=3), tmp_path / "data")
    local_events = tmp_path / "data" / "events"
    remote_events = upload(local_events, f"{remote_root}/events")
    on_file = f"file://{tmp_path}/offline"
    on_remote = f"{remote_root}/offline"
    for window in WINDOWS:
        via_file = run_backfill(
            user_activity_view(f"file://{local_events}"), *window, on_file, engine="duckdb"
        )
        via_remote = run_backfill(
            user_activity_view(remote_events), *window, on_remote, engine="duckdb"
        )
        assert via_remote == via_file > 0
    fs, path = uris.filesystem(on_remote)
    fs.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)) == [
        "date=2026-01-05",
        "date=2026-01-06",
        "date=2026-01-07",
    ]
    assert not any((tmp_path / "offline").glob("*:"))  # no local directory named by a scheme
    pd.testing.assert_frame_equal(_offline(on_remote), _offline(on_file))


def check_training_set_equals_file_uris(tmp_path: Path, remote_root: str) -> None:
    """The training-set build reading and writing under ``remote_root`` gives the ``file://``
    splits (also run on moto's S3 server: tests/integration/test_s3_storage.py)."""
    labels, user_rows, item_rows = _hard_case_rows()
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    _write_offline(user_rows, tmp_path / "user_stats")
    _write_offline(item_rows, tmp_path / "item_stats")
    user = _view("user_stats", "user_id", [("score", "int64"), ("tag", "string")], "1h")
    item = _view("item_stats", "item_id", [("price", "float64")], None)

    def inputs(root: str) -> tuple[dict, list[dict]]:
        views = [
            {"featureView": user, "offlinePath": f"{root}/user_stats"},
            {"featureView": item, "offlinePath": f"{root}/item_stats", "names": ["price"]},
        ]
        return {**LABELS, "source": f"{root}/labels.parquet"}, views

    for name in ("labels.parquet", "user_stats", "item_stats"):
        upload(tmp_path / name, f"{remote_root}/{name}")
    on_file = build_training_set(
        *inputs(f"file://{tmp_path}"), SPLIT, f"file://{tmp_path}/ts", method="duckdb"
    )
    on_remote = build_training_set(
        *inputs(remote_root), SPLIT, f"{remote_root}/ts", method="duckdb"
    )
    assert on_remote.rows == on_file.rows and on_remote.windows == on_file.windows
    for split in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(
            read_split(f"{remote_root}/ts", split), read_split(f"file://{tmp_path}/ts", split)
        )


@pytest.mark.slow
def test_backfill_to_and_from_a_non_local_filesystem_equals_file_uris(
    tmp_path: Path, memory_root: str
) -> None:
    check_backfill_equals_file_uris(tmp_path, memory_root)


@pytest.mark.slow
def test_training_set_on_a_non_local_filesystem_equals_file_uris(
    tmp_path: Path, memory_root: str
) -> None:
    check_training_set_equals_file_uris(tmp_path, memory_root)
    # The steps after it read the same URI: the hand-off copies a split into a local artifact.
    assert earliest(f"{memory_root}/ts", "train", "event_timestamp") == earliest(
        f"file://{tmp_path}/ts", "train", "event_timestamp"
    )
    copy_split(f"{memory_root}/ts", "train", str(tmp_path / "artifact"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "artifact"), read_split(f"{memory_root}/ts", "train")
    )
    assert fsspec.filesystem("memory").exists(uris.filesystem(f"{memory_root}/ts/test")[1])
