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
