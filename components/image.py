"""The one container image every kubeloop component runs in (kubeloop and its locked deps installed).

A fixed tag, not read from the environment, so the compiled pipeline YAML is reproducible;
a deployment that builds its own image re-tags it or overrides the image in KFP.
"""

COMPONENT_IMAGE = "ghcr.io/kubeloop/kubeloop:0.1.0"
