"""Spark session from a master string: ``local[*]``, ``k8s://https://…`` or ``sc://host:port``."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import SparkSession

from components.uris import spark_storage_conf

# Settings every kubeloop job relies on: UTC dates for partitions, no UI port to collide on.
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def spark_session(
    master: str = "local[*]",
    conf: Mapping[str, str] | None = None,
    app_name: str = "kubeloop",
) -> SparkSession:
    """Create (or reuse) a session. ``sc://`` is Spark Connect; anything else is a master URL.

    On ``k8s://`` masters the caller passes the pod settings (container image, namespace,
    service account) in ``conf``. The object-storage connectors are configured from the
    environment's credentials (components/uris.py ``spark_storage_conf``); ``conf`` wins.
    """
    storage: dict[str, str] = {}
    if master.startswith("sc://"):
        # The Connect server reads object storage with its own settings and credentials.
        builder = SparkSession.builder.remote(master)
    else:
        storage = spark_storage_conf()
        builder = SparkSession.builder.master(master).appName(app_name)
        if master.startswith("local"):
            # Loopback only: no reverse-DNS wait on the host name, nothing exposed.
            builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config(
                "spark.driver.host", "127.0.0.1"
            )
    for key, value in {**BASE_CONF, **storage, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session
