"""The EXPERIMENT operator. `kopf run -m operators.experiment` runs it alone."""

from operators.experiment import handlers  # noqa: F401  (registers the Kopf handlers)
