"""Pipeline data is addressed by URI and read and written through fsspec (issue #13 item 2).

Every component input and output (offline store, training sets, labels, the prediction log) is a
URI: ``file:///abs/dir`` on the embedded default and on a mounted claim, ``s3://`` or ``gs://``
on object storage (fsspec's s3fs/gcsfs, Spark's Hadoop connectors), or any scheme fsspec knows
(``memory://`` in tests). A plain path is a ``file://`` URI, so older callers keep working.

The engines each get the form they read natively:

* pandas / pyarrow: the fsspec filesystem and its path (``filesystem``);
* DuckDB: a local path as is, any other URI after its fsspec filesystem is registered on the
  connection (``duckdb_path``), so ``read_parquet`` and ``COPY`` go through fsspec;
* Spark: the URI with the scheme Hadoop's filesystem layer knows (``spark_path``: ``s3a://``
  for ``s3://``), with the connectors' settings from the same environment
  (``spark_storage_conf``).

Object-storage credentials come from the environment under the names in contracts/storage.py
(the chart, kustomize and the compiled pipelines set them from one Secret). botocore (under
s3fs) reads the S3 key pair and the endpoint itself (``AWS_ENDPOINT_URL_S3``, then
``AWS_ENDPOINT_URL``; a custom endpoint such as MinIO or Ceph RGW is addressed path-style by
default) but not ``AWS_REGION`` (only ``AWS_DEFAULT_REGION``), so the region is passed here;
google-auth (under gcsfs) reads ``GOOGLE_APPLICATION_CREDENTIALS`` itself. Spark's S3A reads
none of the endpoint names, so ``spark_storage_conf`` sets them.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import fsspec
from fsspec import AbstractFileSystem

from contracts.storage import (
    AWS_ACCESS_KEY_ID_ENV,
    AWS_ENDPOINT_URL_ENV,
    AWS_ENDPOINT_URL_S3_ENV,
    AWS_REGION_ENV,
    GOOGLE_CREDENTIALS_ENV,
)

LOCAL_SCHEMES = ("", "file", "local")
# Hadoop's S3 connector is s3a://; s3:// names nothing in Spark's default filesystem table.
_SPARK_SCHEMES = {"s3": "s3a"}
_S3_SCHEMES = ("s3", "s3a")
# S3A's region when an endpoint is given without one: the SDK needs a region to sign with, and
# S3-compatible stores accept any.
_DEFAULT_S3_REGION = "us-east-1"


def scheme(uri: str) -> str:
    parsed = urlparse(str(uri))
    # A Windows drive letter is not a scheme; neither is anything on a plain absolute path.
    return "" if len(parsed.scheme) == 1 else parsed.scheme


def is_local(uri: str) -> bool:
    return scheme(uri) in LOCAL_SCHEMES


def s3_endpoint(env: Mapping[str, str] | None = None) -> str:
    """The S3 endpoint from the environment (the service-specific name first, as botocore
    reads them); empty for AWS itself."""
    env = os.environ if env is None else env
    return env.get(AWS_ENDPOINT_URL_S3_ENV) or env.get(AWS_ENDPOINT_URL_ENV) or ""


def storage_options(uri: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """fsspec options for ``uri`` from the environment: on s3, the region (the key pair and
    the endpoint botocore reads itself)."""
    env = os.environ if env is None else env
    if scheme(uri) in _S3_SCHEMES and env.get(AWS_REGION_ENV):
        return {"client_kwargs": {"region_name": env[AWS_REGION_ENV]}}
    return {}


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of ``uri`` and the path on it (a plain path: the local one)."""
    fs, path = fsspec.core.url_to_fs(str(uri), **storage_options(str(uri)))
    return fs, path


def spark_storage_conf(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Spark settings for Hadoop's S3A and GCS connectors from the same environment: S3A takes
    the key pair from it (the AWS SDK's environment provider), the endpoint path-style; the GCS
    connector the key file ``GOOGLE_APPLICATION_CREDENTIALS`` names."""
    env = os.environ if env is None else env
    conf: dict[str, str] = {}
    if env.get(AWS_ACCESS_KEY_ID_ENV):
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
        )
    endpoint = s3_endpoint(env)
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
    if endpoint or env.get(AWS_REGION_ENV):
        region = env.get(AWS_REGION_ENV) or _DEFAULT_S3_REGION
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    if env.get(GOOGLE_CREDENTIALS_ENV):
        conf.update(
            {
                "spark.hadoop.fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
                "spark.hadoop.fs.AbstractFileSystem.gs.impl": (
                    "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS"
                ),
                "spark.hadoop.google.cloud.auth.type": "SERVICE_ACCOUNT_JSON_KEYFILE",
                "spark.hadoop.google.cloud.auth.service.account.json.keyfile": env[
                    GOOGLE_CREDENTIALS_ENV
                ],
            }
        )
    return conf


def local_path(uri: str) -> str:
    """The path of a ``file://`` URI (or a plain path, made absolute)."""
    if not is_local(uri):
        raise ValueError(f"{uri!r} is not on the local filesystem")
    return filesystem(uri)[1]


def join(uri: str, *parts: str) -> str:
    """``parts`` under ``uri``, keeping its scheme (a plain path stays a path)."""
    clean = [p.strip("/") for p in parts if p.strip("/")]
    if not scheme(uri):
        return posixpath.join(str(uri), *clean)
    return "/".join([str(uri).rstrip("/"), *clean])


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return bool(fs.exists(path))


def isdir(uri: str) -> bool:
    fs, path = filesystem(uri)
    return bool(fs.isdir(path))


def as_uri(fs: AbstractFileSystem, path: str) -> str:
    """A path on ``fs`` as a URI the same filesystem resolves again."""
    return path if _is_local_fs(fs) else str(fs.unstrip_protocol(path))


def _is_local_fs(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def duckdb_path(con: Any, uri: str) -> str:
    """``uri`` as DuckDB reads and writes it: a local path, or the URI with its fsspec
    filesystem registered on ``con`` (once per protocol)."""
    fs, path = filesystem(uri)
    if _is_local_fs(fs):
        return str(path)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol not in con.list_filesystems():
        con.register_filesystem(fs)
    return as_uri(fs, path)


def spark_path(uri: str) -> str:
    """``uri`` as Spark's Hadoop filesystem layer names it."""
    found = scheme(uri)
    if found in _SPARK_SCHEMES:
        return _SPARK_SCHEMES[found] + str(uri)[len(found) :]
    return str(uri)


def input_bytes(uris: Iterable[str]) -> int | None:
    """Total size of the files under ``uris`` (files or directories); None if any is not on the
    local filesystem (its size is not assumed to fit one node)."""
    total = 0
    for uri in uris:
        if not is_local(uri):
            return None
        fs, path = filesystem(uri)
        if fs.isfile(path):
            total += int(fs.size(path))
        elif fs.isdir(path):
            total += int(fs.du(path, total=True))
    return total


def read_parquet(uri: str, columns: Sequence[str] | None = None) -> Any:
    """A Parquet file or directory (Hive ``key=value`` folders as columns) as pandas."""
    import pandas as pd

    fs, path = filesystem(uri)
    return pd.read_parquet(path, columns=list(columns) if columns else None, filesystem=fs)


def write_parquet_dir(frame: Any, uri: str) -> None:
    """``frame`` as the only Parquet file of the directory ``uri`` (older files removed)."""
    fs, path = filesystem(uri)
    fs.makedirs(path, exist_ok=True)
    for stale in fs.glob(posixpath.join(path, "*.parquet")):
        fs.rm(stale)
    with fs.open(posixpath.join(path, "part-00000.parquet"), "wb") as out:
        frame.to_parquet(out, index=False)
