"""The embedded default: `launcher` supervises child processes in one state directory;
`services` is the process list `kubeloop up` starts (control plane, monitor, serving
controller, operators) and `up()`, which starts them."""
