# syntax=docker/dockerfile:1
# The kubeloop image: the operators (`kubeloop operator`, the entrypoint), the monitor
# (`python -m services.monitor`) and the KFP components, with Java for Spark. It is also the
# KServe model server: the `kubeloop-mlflow` ClusterServingRuntime (helm/kubeloop/templates/
# servingruntime.yaml) runs `python -m localcluster.serving.predictor` from it, with the locked
# torch (CPU build) and MLflow so pyfunc models of every flavour kubeloop trains load.
#
#   docker build -t ghcr.io/kubeloop/kubeloop:0.1.0 .
#
# The install is the locked one: every package pinned in requirements.lock, installed with
# --no-deps so nothing is resolved at build time, then kubeloop itself.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The lock pins torch's CPU build (torch==…+cpu), which lives on PyTorch's own index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-deps --extra-index-url "${TORCH_INDEX}" -r requirements.lock
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY kubeloop ./kubeloop
COPY operators ./operators
COPY components ./components
COPY pipelines ./pipelines
COPY services ./services
COPY localcluster ./localcluster
# setuptools comes from the lock, so the build needs nothing from the network.
RUN pip install --no-deps --no-build-isolation . && pip check
# After the check, on purpose: ml-metadata's protos (the operator reads KFP run outputs from
# ML Metadata over gRPC) and kserve-storage declare pins that conflict with the lock, for code
# kubeloop never imports (requirements.reference.lock says which).
COPY requirements.reference.lock ./
RUN pip install --no-deps -r requirements.reference.lock

# Spark's object-storage connectors (s3:// and gs:// storage roots, issue #13 item 2), put in
# pyspark's own jars/ directory so every session has them on its classpath; components/uris.py
# spark_storage_conf configures them from the credentials' environment.
# - hadoop-aws (S3A) must be exactly the Hadoop version the locked pyspark ships
#   (pyspark/jars/hadoop-client-api-<version>.jar: checked here and by
#   tests/deploy/test_object_storage.py), and the AWS SDK v2 bundle the one that Hadoop release
#   was built with. S3A's troubleshooting guide: "Do not attempt to drop in a newer version of
#   the AWS SDK than that which the Hadoop version was built with"
#   (https://hadoop.apache.org/docs/current/hadoop-aws/tools/hadoop-aws/troubleshooting_s3a.html);
#   the version is hadoop-project-<version>.pom's aws-java-sdk-v2.version, which hadoop-aws's
#   POM depends on, so it is read from that POM here instead of being copied by hand.
# - The GCS connector 4.0.x is built against Hadoop 3.4.2 and later (its release notes; 3.x
#   targets 3.3), and its -shaded jar carries its own Google libraries.
# Every jar is checked against Maven Central's .sha1.
ARG HADOOP_VERSION=3.5.0
ARG GCS_CONNECTOR_VERSION=4.0.2
ARG MAVEN_REPOSITORY=https://repo1.maven.org/maven2
RUN HADOOP_VERSION="${HADOOP_VERSION}" GCS_CONNECTOR_VERSION="${GCS_CONNECTOR_VERSION}" \
    MAVEN_REPOSITORY="${MAVEN_REPOSITORY}" python - <<'PY'
import hashlib, os, pathlib, re, urllib.request

import pyspark

hadoop, gcs, repo = (os.environ[k] for k in ("HADOOP_VERSION", "GCS_CONNECTOR_VERSION", "MAVEN_REPOSITORY"))
jars = pathlib.Path(pyspark.__file__).parent / "jars"
shipped = sorted(p.name for p in jars.glob("hadoop-client-api-*.jar"))
assert shipped == [f"hadoop-client-api-{hadoop}.jar"], f"pyspark ships {shipped}, not Hadoop {hadoop}"


def get(url):
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


pom = get(f"{repo}/org/apache/hadoop/hadoop-project/{hadoop}/hadoop-project-{hadoop}.pom").decode()
sdk = re.search(r"<aws-java-sdk-v2.version>([^<]+)</aws-java-sdk-v2.version>", pom).group(1)
for path in (
    f"org/apache/hadoop/hadoop-aws/{hadoop}/hadoop-aws-{hadoop}.jar",
    f"software/amazon/awssdk/bundle/{sdk}/bundle-{sdk}.jar",
    f"com/google/cloud/bigdataoss/gcs-connector/{gcs}/gcs-connector-{gcs}-shaded.jar",
):
    data = get(f"{repo}/{path}")
    expected = get(f"{repo}/{path}.sha1").decode().split()[0]
    assert hashlib.sha1(data).hexdigest() == expected, f"{path}: checksum mismatch"
    (jars / path.rsplit("/", 1)[1]).write_bytes(data)
    print(f"added {path}")
PY

FROM ${PYTHON_IMAGE}
# Java 17 for Spark (pyspark starts a JVM); procps because Spark's launch scripts call `ps`.
# (The man directory must exist: the JRE's postinst registers its man pages there.)
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /opt/java
ENV JAVA_HOME=/opt/java \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/kubeloop
COPY --from=build /opt/venv /opt/venv
# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 kubeloop \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/kubeloop --create-home kubeloop
USER 10001:10001
WORKDIR /home/kubeloop
ENTRYPOINT ["kubeloop", "operator"]
