#!/usr/bin/env bash
# Run the kubeloop loop on the demo's data on the kind cluster `make kind-up` made: the demo
# data onto the storage root, the sample FeatureView → Experiment → MLModel, then wait for each
# stage. `make kind-e2e` runs kind-up first. What was and was not run: docs/kind.md.
#
#   make kind-e2e                      # cluster, installs, then this
#   bash scripts/kind-e2e.sh           # on a cluster kind-up already made
# -E: the ERR trap (on_failure) also fires for a command failing inside a function.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

CLUSTER_NAME="${CLUSTER_NAME:-kubeloop}"
# The namespace manifests/samples puts the resources in.
NAMESPACE="default"
# The first backfill and the first trials pull images and start Spark: generous limits.
DATA_TIMEOUT="${DATA_TIMEOUT:-600s}"
FEATURES_TIMEOUT="${FEATURES_TIMEOUT:-1800s}"
TRAINING_TIMEOUT="${TRAINING_TIMEOUT:-3600s}"
SERVING_TIMEOUT="${SERVING_TIMEOUT:-1200s}"

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }

on_failure() {
  # What a failed wait leaves to read: the resources' status and the operator's last words.
  kubectl get featureviews,experiments,mlmodels -n "$NAMESPACE" -o wide || true
  kubectl -n kubeloop-system logs deploy/kubeloop-operator --tail=80 || true
}

require_cluster() {
  # Doc: https://kind.sigs.k8s.io/docs/user/quick-start/#interacting-with-your-cluster
  command -v kubectl >/dev/null 2>&1 || die "kubectl is missing (see docs/kind.md, Prerequisites)"
  kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null ||
    die "no kind cluster '$CLUSTER_NAME': run make kind-up first"
  kubectl -n kubeloop-system rollout status deployment/kubeloop-operator --timeout=120s
}

stage_data() {
  # Doc: https://kubernetes.io/docs/concepts/workloads/controllers/job/ (a Job run to completion)
  log "Demo data onto the storage root (manifests/kind-e2e/data)"
  # A Job's pod template is immutable: a rerun replaces the finished Job.
  kubectl -n kubeflow delete job kubeloop-demo-data --ignore-not-found
  kubectl apply -k manifests/kind-e2e/data
  kubectl -n kubeflow wait --for=condition=Complete job/kubeloop-demo-data --timeout="$DATA_TIMEOUT"
}

apply_demo() {
  # Doc: https://kubernetes.io/docs/tasks/manage-kubernetes-objects/kustomization/
  log "Sample FeatureView, Experiment and MLModel reading it (manifests/kind-e2e/demo)"
  # The chart's NetworkPolicy lets predictors reach the monitor's ingest port only from
  # namespaces with this label (networkPolicy.modelNamespaceLabels in helm/kubeloop/values.yaml).
  kubectl label namespace "$NAMESPACE" kubeloop.io/models=true --overwrite
  kubectl apply -k manifests/kind-e2e/demo
}

wait_loop() {
  # Doc: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_wait/ (a condition, and
  # a JSONPath value, kubectl >= 1.23)
  log "FeatureView user-activity: backfill on KFP, then Ready"
  kubectl -n "$NAMESPACE" wait --for=condition=Ready featureview/user-activity --timeout="$FEATURES_TIMEOUT"
  log "Experiment churn: trials on KFP, the best one registered in MLflow"
  kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Succeeded experiment/churn --timeout="$TRAINING_TIMEOUT"
  log "MLModel churn: the registered version served by KServe behind the VirtualService"
  kubectl -n "$NAMESPACE" wait --for=condition=Ready mlmodel/churn --timeout="$SERVING_TIMEOUT"
}

main() {
  require_cluster
  trap on_failure ERR
  stage_data
  apply_demo
  wait_loop
  trap - ERR
  kubectl get featureviews,experiments,mlmodels -n "$NAMESPACE"
  log "The loop ran on kind: features, training and serving. Model traffic: http://localhost:8080"
}

main "$@"
