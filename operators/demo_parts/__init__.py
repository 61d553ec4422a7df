"""Pieces of `kubeloop demo`: config, resource templates, the Kubernetes client, stages,
the live progress view and the final report."""
