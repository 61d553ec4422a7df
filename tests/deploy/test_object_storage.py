"""Object-storage roots and the monitor's storage (issue #13 item 2): s3:// and gs:// roots on
KFP with credentials from one Secret, the image's Spark connectors, the monitor mounting the
claim or reaching the bucket, a pvc:// TrainJob shared directory.

On the code before: the KFP backend refused s3:// and gs:// roots ("not supported on KFP
yet"), no compiled pipeline handed a task any credentials, neither rendering had a credentials
Secret, the monitor never mounted the storage (its prediction log always in /data), the image
had no Hadoop connector, and a pvc:// shared directory reached the training step as a string it
took for a relative path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from contracts.storage import (
    GOOGLE_CREDENTIALS_ENV,
    GOOGLE_CREDENTIALS_FILE,
    PREDICTION_LOG_DIR,
    S3_OPTIONAL_KEYS,
    S3_REQUIRED_KEYS,
    STORAGE_CREDENTIALS_MOUNT_PATH,
    STORAGE_ENV,
    STORAGE_MOUNT_PATH,
    STORAGE_PVC_PARAMETER,
    STORAGE_SECRET_ENV,
    STORAGE_SECRET_PARAMETER,
)
from operators.backends.kfp_cluster import KfpClusterBackend
from operators.backends.runs import PipelineRunError
from operators.config import OperatorConfig
from pipelines.compile import (
    STORAGE_KINDS,
    checked_in,
    checked_in_platform,
    package_path,
    pipeline_functions,
)
from services.monitor.config import MonitorSettings
from tests.deploy.test_helm_chart import find, render
from tests.deploy.test_manifests import kustomize
from tests.deploy.test_storage import BACKFILL_PARAMS, RecordingClient

ROOT = Path(__file__).resolve().parents[2]
SECRET = "kubeloop-storage-credentials"
S3_VALUES = {"storage": {"uri": "s3://bucket/kubeloop", "credentialsSecret": SECRET}}
GS_VALUES = {"storage": {"uri": "gs://bucket/kubeloop", "credentialsSecret": SECRET}}


def _executor_configs(name: str, kind: str) -> dict[str, Any]:
    platform = checked_in_platform(name, kind)
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(configs) == set(checked_in(name, kind)["deploymentSpec"]["executors"])
    return dict(configs)


def _parameter(reference: dict[str, Any]) -> str:
    return str(reference["componentInputParameter"]).removeprefix("pipelinechannel--")


@pytest.mark.parametrize("name", sorted(pipeline_functions()))
def test_every_s3_task_gets_the_secrets_keys_as_its_environment(name: str) -> None:
    for executor, config in _executor_configs(name, "s3").items():
        assert "pvcMount" not in config, executor
        by_optional = {bool(entry.get("optional", False)): entry for entry in config["secretAsEnv"]}
        for optional, keys in ((False, S3_REQUIRED_KEYS), (True, S3_OPTIONAL_KEYS)):
            entry = by_optional[optional]
            assert _parameter(entry["secretNameParameter"]) == STORAGE_SECRET_PARAMETER
            assert {m["secretKey"]: m["envVar"] for m in entry["keyToEnv"]} == {k: k for k in keys}


@pytest.mark.parametrize("name", sorted(pipeline_functions()))
def test_every_gs_task_mounts_the_key_file_and_names_it(name: str) -> None:
    spec = checked_in(name, "gs")
    for executor, config in _executor_configs(name, "gs").items():
        assert "pvcMount" not in config and "secretAsEnv" not in config, executor
        (volume,) = config["secretAsVolume"]
        assert volume["mountPath"] == STORAGE_CREDENTIALS_MOUNT_PATH
        assert _parameter(volume["secretNameParameter"]) == STORAGE_SECRET_PARAMETER
        env = spec["deploymentSpec"]["executors"][executor]["container"]["env"]
        assert {"name": GOOGLE_CREDENTIALS_ENV, "value": GOOGLE_CREDENTIALS_FILE} in env


@pytest.mark.parametrize("name", sorted(pipeline_functions()))
def test_the_kinds_differ_only_in_how_a_task_reaches_the_root(name: str) -> None:
    """Same tasks, order and containers in every package; the gs one adds only the key file's
    environment variable (a condition's sub-DAG passes on the claim or the Secret name)."""

    def shape(kind: str) -> Any:
        spec = checked_in(name, kind)
        dags = {
            component: {
                task: (body["componentRef"], sorted(body.get("dependentTasks", [])))
                for task, body in definition.get("dag", {}).get("tasks", {}).items()
            }
            for component, definition in [("root", spec["root"]), *spec["components"].items()]
        }
        executors = spec["deploymentSpec"]["executors"]
        for executor in executors.values():
            executor["container"].pop("env", None)
        return dags, executors, spec["root"]["inputDefinitions"]

    assert shape("s3") == shape("pvc") == shape("gs")
    inputs = checked_in(name)["root"]["inputDefinitions"]["parameters"]
    assert {STORAGE_PVC_PARAMETER, STORAGE_SECRET_PARAMETER} <= set(inputs)


def test_s3_runs_use_the_s3_packages_and_carry_the_secret() -> None:
    client = RecordingClient()
    backend = KfpClusterBackend(client, host="http://kfp", storage_kind="s3", storage_secret=SECRET)
    assert backend.packages["feature_backfill"] == package_path("feature_backfill", "s3")
    backend.submit("feature_backfill", "fv-1", {**BACKFILL_PARAMS, "offline_path": "s3://b/o"})
    assert client.params is not None
    assert client.params[STORAGE_SECRET_PARAMETER] == SECRET
    assert client.params.get(STORAGE_PVC_PARAMETER, "") == ""
    without = KfpClusterBackend(RecordingClient(), host="http://kfp", storage_kind="gs")
    with pytest.raises(
        PipelineRunError, match=f"gs:// credentials: name their Secret.*{STORAGE_SECRET_ENV}"
    ):
        without.submit("feature_backfill", "fv-1", BACKFILL_PARAMS)


@pytest.mark.parametrize("root", ["s3://bucket/kubeloop", "gs://bucket/kubeloop"])
def test_kfp_takes_an_object_storage_root_with_its_secret(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kfp

    from operators.backends.pipelines import pipeline_backend_from_config

    # kfp.Client calls the server when it is made; none runs here.
    monkeypatch.setattr(kfp, "Client", lambda host: RecordingClient())

    env = {"KUBELOOP_PIPELINE_BACKEND": "kfp", "KUBELOOP_KFP_HOST": "http://kfp:8888"}
    env["KUBELOOP_STORAGE"] = root
    registry = {"KUBELOOP_FEAST_REGISTRY": "postgresql+psycopg://feast@postgres/feast"}
    # Feast needs a local repo: a scratch directory per process on an object root, so the
    # registry must be shared.
    with pytest.raises(PipelineRunError, match="needs a shared Feast registry"):
        pipeline_backend_from_config(OperatorConfig.from_env({**env, STORAGE_SECRET_ENV: SECRET}))
    env.update(registry)
    assert not OperatorConfig.from_env(env).feast_repo.startswith(root.split("://")[0])
    with pytest.raises(
        PipelineRunError, match=f"needs the credentials Secret.*{STORAGE_SECRET_ENV}"
    ):
        pipeline_backend_from_config(OperatorConfig.from_env(env))
    backend = pipeline_backend_from_config(
        OperatorConfig.from_env({**env, STORAGE_SECRET_ENV: SECRET})
    )
    assert isinstance(backend, KfpClusterBackend)
    kind = root.split("://")[0]
    assert (backend.storage_kind, backend.storage_secret) == (kind, SECRET)
    assert backend.packages["training"] == package_path("training", kind)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def _secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    return {
        e["name"]: (
            e["valueFrom"]["secretKeyRef"]["name"],
            e["valueFrom"]["secretKeyRef"]["key"],
            bool(e["valueFrom"]["secretKeyRef"].get("optional", False)),
        )
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _expected_s3_env() -> dict[str, tuple[str, str, bool]]:
    required = {k: (SECRET, k, False) for k in S3_REQUIRED_KEYS}
    return {**required, **{k: (SECRET, k, True) for k in S3_OPTIONAL_KEYS}}


def _config_of(documents: list[dict[str, Any]]) -> OperatorConfig:
    (configmap,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("kubeloop-operator-config")
    ]
    return OperatorConfig.from_env({k: str(v) for k, v in configmap["data"].items()})


def _monitor_settings(container: dict[str, Any], config: OperatorConfig) -> MonitorSettings:
    """The monitor's settings as its container starts: its flags and its environment (the
    storage root from the operator's config)."""
    from services.monitor.__main__ import parse_args

    env = {e["name"] for e in container.get("env", [])}
    argv = [*container["command"][3:], *container.get("args", [])]
    settings = parse_args([a for a in argv if a != "--insecure-no-auth"])
    storage = config.storage if STORAGE_ENV in env else None
    return settings.model_copy(update={"storage": storage})


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_s3_credentials_reach_the_operator_and_the_monitor(source: str) -> None:
    documents = render(S3_VALUES) if source == "helm" else kustomize("object-storage")
    config = _config_of(documents)
    assert (config.storage_root.scheme, config.storage_secret) == ("s3", SECRET)
    for name in ("kubeloop-operator", "kubeloop-monitor"):
        container = _container(find(documents, "Deployment", name))
        assert _secret_env(container) == _expected_s3_env(), name
    monitor = _container(find(documents, "Deployment", "kubeloop-monitor"))
    location = _monitor_settings(monitor, config).prediction_log_location
    assert location == f"{config.storage}/{PREDICTION_LOG_DIR}"


def test_gs_credentials_are_a_mounted_key_file() -> None:
    documents = render(GS_VALUES)
    for name in ("kubeloop-operator", "kubeloop-monitor"):
        deployment = find(documents, "Deployment", name)
        container = _container(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[GOOGLE_CREDENTIALS_ENV] == GOOGLE_CREDENTIALS_FILE
        (mount,) = [
            m for m in container["volumeMounts"] if m["mountPath"] == STORAGE_CREDENTIALS_MOUNT_PATH
        ]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes[mount["name"]]["secret"]["secretName"] == SECRET
        assert GOOGLE_CREDENTIALS_FILE.startswith(mount["mountPath"] + "/")


def test_no_credentials_without_a_secret_or_on_a_claim() -> None:
    for values in ({}, {"storage": {"uri": "s3://bucket/kubeloop"}}):
        documents = render(values)
        for name in ("kubeloop-operator", "kubeloop-monitor"):
            assert _secret_env(_container(find(documents, "Deployment", name))) == {}


def _monitor_claim(deployment: dict[str, Any]) -> str | None:
    container = _container(deployment)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    if STORAGE_MOUNT_PATH not in mounts:
        return None
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    return str(volumes[mounts[STORAGE_MOUNT_PATH]]["persistentVolumeClaim"]["claimName"])


def test_the_monitor_logs_predictions_on_the_claim_the_tasks_mount() -> None:
    """In the claim's namespace the monitor mounts the root's claim, and its prediction log is
    the location the operator hands the tasks; elsewhere it needs a claim of its namespace."""
    from helm_python import Chart

    from tests.deploy.test_helm_chart import CHART_DIR, RELEASE

    with Chart.load(CHART_DIR) as chart:
        rendered = chart.render({}, name=RELEASE, namespace="kubeflow")
    import yaml

    documents = [
        d
        for path, t in rendered.items()
        if path.endswith(".yaml")
        for d in yaml.safe_load_all(t)
        if d
    ]
    monitor = find(documents, "Deployment", "kubeloop-monitor")
    assert _monitor_claim(monitor) == "kubeloop-storage"
    config = _config_of(documents)
    location = _monitor_settings(_container(monitor), config).prediction_log_location
    assert location == config.storage_root.data_uri(PREDICTION_LOG_DIR)
    assert location == f"file://{STORAGE_MOUNT_PATH}/kubeloop/{PREDICTION_LOG_DIR}"

    # Another namespace: no claim of that name there, so no mount and no root unless named.
    default = find(render(), "Deployment", "kubeloop-monitor")
    assert _monitor_claim(default) is None
    assert _monitor_settings(_container(default), config).prediction_log_location == (
        "/data/predictions"
    )
    named = find(
        render({"monitor": {"storageClaim": "shared-rwx"}}), "Deployment", "kubeloop-monitor"
    )
    assert _monitor_claim(named) == "shared-rwx"
    (overlay,) = [
        d
        for d in kustomize("monitor-claim")
        if d["kind"] == "Deployment" and "monitor" in d["metadata"]["name"]
    ]
    assert _monitor_claim(overlay) == "kubeloop-storage"
    assert STORAGE_ENV in {e["name"] for e in _container(overlay)["env"]}


def test_the_configmap_names_the_secret_under_the_contract_name() -> None:
    configmap = find(render(S3_VALUES), "ConfigMap", "kubeloop-operator-config")
    assert configmap["data"][STORAGE_SECRET_ENV] == SECRET
    assert STORAGE_SECRET_ENV not in find(render(), "ConfigMap", "kubeloop-operator-config")["data"]


def test_a_pvc_shared_dir_on_the_storage_claim_is_its_mounted_path() -> None:
    root = "pvc://kubeloop-storage/kubeloop"
    config = OperatorConfig(storage=root, shared_dir="pvc://kubeloop-storage/shared")
    assert config.shared_dir_path == f"{STORAGE_MOUNT_PATH}/shared"
    assert OperatorConfig(storage=root, shared_dir="/mnt/nfs/x").shared_dir_path == "/mnt/nfs/x"
    with pytest.raises(ValueError, match="shared_dir 'pvc://other/x'.*only the storage root's"):
        OperatorConfig(storage=root, shared_dir="pvc://other/x")
    with pytest.raises(ValueError, match="not a pvc:// root"):
        OperatorConfig(storage="s3://b/k", shared_dir="pvc://kubeloop-storage/shared")
    configmap = find(
        render({"training": {"sharedDir": "pvc://kubeloop-storage/shared"}}),
        "ConfigMap",
        "kubeloop-operator-config",
    )
    cluster = OperatorConfig.from_env({k: str(v) for k, v in configmap["data"].items()})
    assert cluster.shared_dir_path == f"{STORAGE_MOUNT_PATH}/shared"


def _pyspark_hadoop_version() -> str:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    (found,) = [
        m.group(1)
        for p in jars.glob("hadoop-client-api-*.jar")
        if (m := re.fullmatch(r"hadoop-client-api-(.+)\.jar", p.name))
    ]
    return found


def test_the_image_adds_the_hadoop_connectors_of_the_locked_pysparks_hadoop() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, flags=re.MULTILINE))
    assert args["HADOOP_VERSION"] == _pyspark_hadoop_version()
    assert int(args["GCS_CONNECTOR_VERSION"].split(".")[0]) >= 4  # built for Hadoop 3.4.2+
    for jar in (
        "hadoop-aws-{hadoop}.jar",
        "bundle-{sdk}.jar",
        "gcs-connector-{gcs}-shaded.jar",
        "aws-java-sdk-v2.version",
    ):
        assert jar in dockerfile, jar


def test_compiled_kinds_are_the_storage_kinds() -> None:
    from pipelines.storage import STORAGE_KINDS as PIPELINE_KINDS

    assert STORAGE_KINDS == PIPELINE_KINDS
