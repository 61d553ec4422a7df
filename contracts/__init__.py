"""Wire contracts shared by kubeloop's deployables: defined here once, imported everywhere.

The operators, the monitor (``services/monitor``), the pipeline components and the embedded
control plane (``localcluster``) run as separate processes and talk to each other through
strings: CloudEvent types and attributes, HTTP headers, Kubernetes labels and annotations,
MLflow tags, and the monitor's per-model config. Each such string is defined in exactly one
module below; every other module imports it (``contracts/tests`` checks this by grepping the
source tree).

Modules, one per concern:

- :mod:`contracts.cloudevents` — inference CloudEvents (KServe logger + kubeloop extensions)
- :mod:`contracts.headers` — HTTP request headers and the role values they carry
- :mod:`contracts.kube` — API group/version, labels, annotations, finalizer, KServe/Istio kinds
- :mod:`contracts.mlflow_tags` — model-version lineage tags and the reference artifact path
- :mod:`contracts.drift` — detector names and window sample-size bounds
- :mod:`contracts.monitor_config` — the per-model config the operator PUTs to the monitor
- :mod:`contracts.quality` — model quality per version and the label gate's comparison

Dependencies: the standard library and pydantic only, so any deployable can import it.
"""
