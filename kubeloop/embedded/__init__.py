"""The embedded default: `launcher` starts and stops processes in one state directory;
`services` is the process list `kubeloop up` starts (control plane, monitor, serving
controller, operators) and `up()`, which starts `supervisor`: one process that runs that list
and restarts what exits, with the backoff of `backoff` (a pure policy)."""
