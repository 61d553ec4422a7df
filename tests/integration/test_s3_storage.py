"""An s3:// storage root on a real S3 API (issue #13 item 2): moto's S3 server on 127.0.0.1,
reached with s3fs and the credentials the chart, kustomize and the compiled pipelines put in
the environment (contracts/storage.py names: the key pair, the region and an S3-compatible
endpoint named by host, as an in-cluster MinIO or Ceph store is).

The DuckDB backfill, the training-set build and the monitor's prediction-log compaction write
to s3:// and give what they give on file://. On the code before, ``s3://`` failed in the first
call (no s3fs in the lock: fsspec's "Install s3fs to access S3"), and the monitor had no storage
root to put its prediction log under.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import uris
from components.feast_apply_materialize.tests.test_apply_materialize import (  # noqa: F401
    offline_store as offline_store,  # the fixture: a small offline store on local disk
)
from components.tests.test_uris import (
    check_backfill_equals_file_uris,
    check_training_set_equals_file_uris,
    upload,
)
from contracts.storage import (
    AWS_ACCESS_KEY_ID_ENV,
    AWS_ENDPOINT_URL_ENV,
    AWS_ENDPOINT_URL_S3_ENV,
    AWS_REGION_ENV,
    AWS_SECRET_ACCESS_KEY_ENV,
)

ACCESS_KEY, SECRET_KEY = "kubeloop-test-key", "kubeloop-test-secret"
# Not us-east-1: a bucket made there takes no location constraint, one made elsewhere does,
# so creating it checks the region reached s3fs (botocore reads only AWS_DEFAULT_REGION).
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, addressed by the name ``localhost``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    yield f"http://localhost:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the credentials in the environment as a task pod gets them."""
    for name in (AWS_ENDPOINT_URL_S3_ENV, "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(AWS_ACCESS_KEY_ID_ENV, ACCESS_KEY)
    monkeypatch.setenv(AWS_SECRET_ACCESS_KEY_ENV, SECRET_KEY)
    monkeypatch.setenv(AWS_ENDPOINT_URL_ENV, endpoint)
    monkeypatch.setenv(AWS_REGION_ENV, REGION)
    name = f"kubeloop-{uuid.uuid4().hex[:12]}"
    fs, _ = uris.filesystem(f"s3://{name}")
    fs.mkdir(name)
    return name


def test_the_bucket_is_on_the_server_not_in_process(bucket: str, endpoint: str) -> None:
    """What the components write is on moto's server: a separate boto3 client sees it."""
    import boto3
    from botocore.config import Config

    fs, _ = uris.filesystem(f"s3://{bucket}")
    fs.pipe(f"{bucket}/probe.txt", b"kubeloop")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )
    assert client.get_object(Bucket=bucket, Key="probe.txt")["Body"].read() == b"kubeloop"


@pytest.mark.slow
def test_duckdb_backfill_on_s3_equals_file_uris(tmp_path: Path, bucket: str) -> None:
    check_backfill_equals_file_uris(tmp_path, f"s3://{bucket}")


@pytest.mark.slow
def test_training_set_on_s3_equals_file_uris(tmp_path: Path, bucket: str) -> None:
    check_training_set_equals_file_uris(tmp_path, f"s3://{bucket}")


def test_prediction_log_compacts_to_s3_as_to_a_directory(tmp_path: Path, bucket: str) -> None:
    """The monitor's prediction log under an s3:// root (its default: <root>/prediction-log,
    services/monitor/config.py) holds the rows a local directory gets."""
    import pyarrow.dataset as ds

    from services.monitor.config import MonitorSettings
    from services.monitor.tests.test_predlog import DAY1, DAY2, Harness, prediction

    settings = MonitorSettings(data_dir=tmp_path, storage=f"s3://{bucket}/kubeloop")
    assert settings.prediction_log_location == f"s3://{bucket}/kubeloop/prediction-log"
    tables = []
    for uri, folder in ((settings.prediction_log_location, "s3"), (None, "local")):
        (tmp_path / folder).mkdir()
        harness = Harness(tmp_path / folder, uri=uri)
        try:
            harness.journal(prediction("a", DAY1), prediction("b", DAY2))
            done = harness.log.compact(now=DAY2, replay_margin_s=30)
            assert (done.rows, done.files) == (2, 2)
            fs, path = uris.filesystem(harness.uri)
            fs.invalidate_cache()
            dataset = ds.dataset(path, format="parquet", partitioning="hive", filesystem=fs)
            tables.append(sorted(dataset.to_table().to_pylist(), key=lambda r: r["event_id"]))
        finally:
            harness.close()
    on_s3, local = tables
    assert [r["event_id"] for r in on_s3] == ["a", "b"]
    assert on_s3 == local


def test_feast_materializes_from_an_s3_offline_store(
    tmp_path: Path, bucket: str, offline_store: str
) -> None:
    """Materializing from an s3:// offline store gives the online values file:// gives (Feast
    cannot read the store by its URI: components/feast_apply_materialize/impl.py)."""
    from components.feast_apply_materialize.feast_objects import FeastStoreConfig
    from components.feast_apply_materialize.impl import apply_and_materialize
    from components.feast_apply_materialize.tests.test_apply_materialize import VIEW, _online

    remote = upload(Path(offline_store), f"s3://{bucket}/offline/user_activity")
    online = []
    for name, source in (("s3", remote), ("file", offline_store)):
        config = FeastStoreConfig(project=f"kl_{name}", repo_path=str(tmp_path / name))
        apply_and_materialize(VIEW, source, config, "2026-01-05T00:00:00Z", "2026-01-05T12:00:00Z")
        online.append(_online(config, [1, 2, 3]))
    assert online[0] == online[1]
    assert online[0]["clicks"] == [6, 1, None]
