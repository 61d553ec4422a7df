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
- ``localcluster.testing``: pytest fixtures ``localcluster``, ``localcluster_module``,
  ``localcluster_session``, ``kube_env``, ``kube_env_module``.

Known gaps: no protobuf request bodies (``kubectl create configmap|secret|namespace|deployment``
send protobuf; ``kubectl apply``/``create -f``/``patch``/``label`` use JSON and work), no
server-side apply (415), no admission webhooks or CRD conversion webhooks, no controllers for
built-in kinds (Deployments are stored, not run).
"""

from .server import BackgroundCluster, LocalCluster

__all__ = ["BackgroundCluster", "LocalCluster"]
