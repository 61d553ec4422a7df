"""`kubeloop demo`: config, resource templates, the Kubernetes client, stages, the live
progress view and the final report; `run.run_demo` is the entry point."""
