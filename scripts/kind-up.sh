#!/usr/bin/env bash
# Create the `kubeloop` kind cluster and install what kubeloop needs there, then kubeloop itself.
# Step by step, with the why of each step: docs/kind.md. Re-running is safe: each step is an
# idempotent apply/upgrade, and an existing cluster is reused.
#
#   make kind-up                     # everything
#   WITH_TRAINER=1 make kind-up      # also Kubeflow Trainer (multi-node TrainJobs)
#   SKIP_BUILD=1 make kind-up        # use an already-built/pulled kubeloop image
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- pinned versions (change here, and in docs/kind.md) -----------------------------------
CLUSTER_NAME="${CLUSTER_NAME:-kubeloop}"
CERT_MANAGER_VERSION="v1.17.0"   # KServe needs >= 1.15 (webhook certificates)
ISTIO_VERSION="1.27.1"           # the version KServe 0.20 is tested with
KSERVE_VERSION="v0.20.0"         # same as the kserve Python SDK in requirements.lock
KFP_VERSION="2.16.1"             # same as the kfp SDK in requirements.lock
TRAINER_VERSION="v2.1.0"         # only with WITH_TRAINER=1
KUBELOOP_IMAGE="ghcr.io/kubeloop/kubeloop:0.1.0"   # the chart's appVersion
TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kubeloop/kind-tools"

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind-up: %s\n' "$*" >&2; exit 1; }

require_tools() {
  # Doc: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (docs/kind.md, Prerequisites)
  local missing=()
  for tool in docker kind kubectl helm curl jq; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (see docs/kind.md, Prerequisites)"
  docker info >/dev/null 2>&1 || die "docker is not running"
}

wait_deployments() {  # wait_deployments <namespace> <timeout>
  kubectl wait --for=condition=Available deployment --all -n "$1" --timeout="$2"
}

# Every step names the upstream document it follows on a `# Doc:` line (tests/deploy/
# test_kind_scripts.py checks that each step has one).

create_cluster() {
  # Doc: https://kind.sigs.k8s.io/docs/user/quick-start/#creating-a-cluster (kind v0.29)
  if kind get clusters | grep -qx "$CLUSTER_NAME"; then
    log "kind cluster '$CLUSTER_NAME' exists; reusing it"
  else
    log "Creating kind cluster '$CLUSTER_NAME'"
    kind create cluster --name "$CLUSTER_NAME" --config kind-config.yaml --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null
}

build_image() {
  # Doc: https://kind.sigs.k8s.io/docs/user/quick-start/#loading-an-image-into-your-cluster
  if [ "${SKIP_BUILD:-0}" = "1" ]; then
    log "SKIP_BUILD=1: not building $KUBELOOP_IMAGE"
  else
    log "Building $KUBELOOP_IMAGE"
    docker build -t "$KUBELOOP_IMAGE" .
  fi
  # Load it into the node so no registry is needed (pods use imagePullPolicy IfNotPresent).
  kind load docker-image "$KUBELOOP_IMAGE" --name "$CLUSTER_NAME"
}

install_cert_manager() {
  # Doc: https://cert-manager.io/docs/installation/kubectl/ (v1.17)
  log "cert-manager $CERT_MANAGER_VERSION"
  kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
  wait_deployments cert-manager 300s
}

istioctl_bin() {
  local dir="$TOOLS_DIR/istio-$ISTIO_VERSION"
  if [ ! -x "$dir/bin/istioctl" ]; then
    mkdir -p "$TOOLS_DIR"
    # Istio's documented download script, pinned to one version; unpacks istio-<version>/.
    (cd "$TOOLS_DIR" && curl -fsSL https://istio.io/downloadIstio | ISTIO_VERSION="$ISTIO_VERSION" sh -) >&2
  fi
  echo "$dir/bin/istioctl"
}

install_istio() {
  # Doc: https://istio.io/v1.27/docs/setup/install/istioctl/ (download:
  # https://istio.io/v1.27/docs/setup/additional-setup/download-istio-release/); the IngressClass:
  # https://kserve.github.io/website/docs/admin-guide/kubernetes-deployment (Ingress controller)
  log "Istio $ISTIO_VERSION (minimal profile + ingress gateway)"
  local istioctl
  istioctl="$(istioctl_bin)"
  "$istioctl" install -y -f manifests/dev-deps/istio-operator.yaml
  wait_deployments istio-system 300s
  # KServe's Standard mode creates Ingresses of class `istio` for each InferenceService.
  kubectl apply -f - <<'YAML'
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: istio
spec:
  controller: istio.io/ingress-controller
YAML
  kubectl apply -f manifests/dev-deps/gateway.yaml
  # Model pods in `default` get sidecars, so in-mesh callers see the VirtualService routes too.
  kubectl label namespace default istio-injection=enabled --overwrite
}

install_kserve() {
  # Doc: https://kserve.github.io/website/docs/install/kserve-install (Method 2: Helm) and
  # https://kserve.github.io/website/docs/admin-guide/kubernetes-deployment (Standard mode)
  log "KServe $KSERVE_VERSION (Standard deployment mode, no Knative)"
  helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
    --version "$KSERVE_VERSION" --namespace kserve --create-namespace --wait
  helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve-resources \
    --version "$KSERVE_VERSION" --namespace kserve --create-namespace --wait
  # Since 0.15 the ClusterServingRuntimes ship in their own chart (KServe install guide, Helm:
  # https://kserve.github.io/website/docs/install/kserve-install). kubeloop's own runtime,
  # kubeloop-mlflow (v1+v2, torch, the MLflow pyfunc loader), comes with its chart below.
  helm upgrade --install kserve-runtime-configs oci://ghcr.io/kserve/charts/kserve-runtime-configs \
    --version "$KSERVE_VERSION" --namespace kserve --wait
  # Standard (formerly RawDeployment): each InferenceService is a Deployment + Service. The
  # rollout's traffic split lives in kubeloop's own VirtualService, not in Knative revisions.
  local deploy
  deploy="$(kubectl get configmap inferenceservice-config -n kserve -o jsonpath='{.data.deploy}')"
  [ -n "$deploy" ] || deploy='{}'
  deploy="$(jq -c '.defaultDeploymentMode = "Standard"' <<<"$deploy")"
  kubectl patch configmap inferenceservice-config -n kserve --type merge \
    -p "$(jq -cn --arg v "$deploy" '{data: {deploy: $v}}')"
  kubectl rollout restart deployment kserve-controller-manager -n kserve
  kubectl rollout status deployment kserve-controller-manager -n kserve --timeout=300s
}

install_kfp() {
  # Doc: https://www.kubeflow.org/docs/components/pipelines/operator-guides/installation/
  # (standalone; platform-agnostic, as that page suggests outside a cloud)
  log "Kubeflow Pipelines $KFP_VERSION (standalone)"
  kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
  kubectl wait --for condition=established --timeout=60s crd/applications.app.k8s.io
  kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"
  # First start pulls many images; give it time.
  wait_deployments kubeflow 900s
}

install_trainer() {
  # Doc: https://www.kubeflow.org/docs/components/trainer/operator-guides/installation/
  [ "${WITH_TRAINER:-0}" = "1" ] || return 0
  log "Kubeflow Trainer $TRAINER_VERSION"
  kubectl apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=$TRAINER_VERSION"
  wait_deployments kubeflow-system 300s
  kubectl apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=$TRAINER_VERSION"
}

install_dev_deps() {
  # Doc: https://kubernetes.io/docs/tasks/manage-kubernetes-objects/kustomization/ (kubectl
  # apply -k of kubeloop's own manifests/dev-deps)
  log "PostgreSQL, Redis, MLflow (manifests/dev-deps)"
  kubectl apply -k manifests/dev-deps
  wait_deployments kubeloop-deps 600s
}

install_storage() {
  # Doc: https://kubernetes.io/docs/concepts/storage/persistent-volumes/#reserving-a-persistentvolume
  # (two PersistentVolumes on one hostPath directory of kind's single node, each pre-bound to a
  # claim: https://kubernetes.io/docs/concepts/storage/volumes/#hostpath).
  log "Storage root: claims kubeflow/kubeloop-storage and kubeloop-system/kubeloop-storage (manifests/kind-e2e/storage)"
  # Every KFP task mounts kubeflow's (KUBELOOP_STORAGE=pvc://kubeloop-storage/kubeloop), the
  # monitor kubeloop-system's: one directory, so the monitor's prediction log is where an
  # Experiment's labels.predictionLog.path and the tasks read it. Created here, not by the chart
  # (a pod mounts only claims of its own namespace; a claim binds one volume).
  kubectl apply -k manifests/kind-e2e/storage
}

install_kubeloop() {
  # Doc: https://helm.sh/docs/helm/helm_upgrade/ (upgrade --install of a local chart)
  log "kubeloop (helm/kubeloop)"
  helm upgrade --install kubeloop helm/kubeloop \
    --namespace kubeloop-system --create-namespace --wait --timeout 10m \
    --set storage.claim.create=false --set monitor.storageClaim=kubeloop-storage
  kubectl label namespace kubeloop-system pod-security.kubernetes.io/enforce=restricted --overwrite
}

main() {
  require_tools
  create_cluster
  build_image
  install_cert_manager
  install_istio
  install_kserve
  install_kfp
  install_trainer
  install_dev_deps
  install_storage
  install_kubeloop
  cat <<MSG

kubeloop is running on kind cluster '$CLUSTER_NAME' (context kind-$CLUSTER_NAME).
  bash scripts/kind-e2e.sh   # the loop on the demo's data (make kind-e2e: kind-up, then this)
  kubectl get featureviews,experiments,mlmodels
  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8081:80        # KFP UI: http://localhost:8081
  kubectl -n kubeloop-deps port-forward svc/mlflow 5000:5000         # MLflow: http://localhost:5000
  model traffic through Istio: http://localhost:8080
Delete everything: kind delete cluster --name $CLUSTER_NAME
MSG
}

main "$@"
