"""kubeloop, the product: the `kubeloop` command line (`cli`), the embedded default it starts
(`embedded`), `kubeloop status` (`status`), `kubeloop demo` (`demo`) and the synthetic data and
traffic the demo runs on (`sampledata`). The operators never import this package."""
