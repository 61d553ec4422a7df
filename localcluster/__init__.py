"""localcluster: an embedded Kubernetes API server (HTTPS + bearer token, SQLite storage).

Public API
----------
- ``python -m localcluster --data-dir DIR --port N [--host 127.0.0.1]``: serve until SIGTERM or
  SIGINT; writes ``DIR/kubeconfig`` (server URL, bearer token, the self-signed serving cert as
  CA), ``DIR/token`` and ``DIR/state.db``.
- ``localcluster.server.LocalCluster(data_dir, host="127.0.0.1", port=0)``: ``await start()`` /
  ``await stop()`` on the running event loop; ``.url``, ``.token``, ``.kubeconfig`` (path),
  ``.ca_path``, ``write_kubeconfig(path=None)``, ``compact()`` (drop watch history so watches
  from older resourceVersions get 410).
- ``localcluster.server.BackgroundCluster(data_dir, host, port)``: the same on its own loop in a
  daemon thread for synchronous callers: ``start()`` (returns self), ``stop()``, ``compact()``,
  usable as a context manager.
- ``LocalCluster.signer`` (``reviews.TokenSigner``) signs and verifies ServiceAccount tokens.
- ``LocalCluster(..., audit=True)`` (or ``set_audit(True)``) records every request in RBAC terms
  (``localcluster.audit.AuditRecord``: user, verb, apiGroup, resource, subresource, namespace,
  name); read with ``audit_records()``, reset with ``clear_audit()``. ``add_user(name)`` mints
  another bearer token (kept in memory only) and writes ``DIR/kubeconfig-<name>`` so one
  client's requests can be told from another's. Off by default.
- ``tests/support/localcluster.py`` (test support, not shipped): pytest fixtures ``localcluster``, ``localcluster_audited``,
  ``localcluster_module``, ``localcluster_session``, ``kube_env``, ``kube_env_module``.

CEL: ``x-kubernetes-validations`` rules are compiled when a CRD is written (a rule that does
not compile rejects it with 422) and evaluated on every custom-resource write with the
Kubernetes list library (``localcluster/cel.py``); no CEL cost limits, and no ``url``,
``quantity``, ``ip``, ``cidr`` or ``format`` libraries.

Security: HTTPS only (client-go will not send a bearer token over plain HTTP) with a
self-signed certificate per data dir; every path but /version and the health checks needs the
token written into the kubeconfig.

Reviews (``localcluster/reviews.py``, ``localcluster/rbac.py``): ``TokenReview``
(authentication.k8s.io/v1), ``SubjectAccessReview`` (authorization.k8s.io/v1) and
TokenRequest (``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token``) as
kube-apiserver serves them: the kubeconfig tokens (the admin is in ``system:masters``) and
HMAC-signed ServiceAccount tokens for any audience (key ``DIR/token-signing-key``, 0600;
refused once the ServiceAccount is gone), RBAC decided from the stored Role, ClusterRole,
RoleBinding and ClusterRoleBinding objects (no aggregated ClusterRoles, no non-resource
rules). Calling them needs ``create`` on them by the same rules. The API server itself still
enforces no RBAC on its own requests, and takes only the kubeconfig tokens.

Durability: every acknowledged write is fsynced (SQLite WAL, synchronous=FULL, group commit);
after a restart the same objects and resourceVersions are served and watches resume from any
resourceVersion still in the watch history (the last 20,000 changes by default; older ones get
410 Expired, as after an etcd compaction).

Known gaps: protobuf request bodies only for Namespace, ConfigMap, Secret and ServiceAccount
(what ``kubectl create namespace|configmap|secret|serviceaccount`` send; other ``kubectl
create <kind>`` subcommands get a clean 415, use ``kubectl apply``); no server-side apply
(415); no admission or conversion webhooks (all served versions of a CRD share one stored
form); no controllers for built-in kinds (Deployments are stored, not run); strict field
validation only for custom resources (built-ins have no schemas here).
"""

from typing import Any

__all__ = ["BackgroundCluster", "LocalCluster"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m localcluster.serving.*` processes do not pay for the API server.
    if name in __all__:
        from localcluster import server

        return getattr(server, name)
    raise AttributeError(name)
