"""The MLMODEL operator. `kopf run -m operators.mlmodel` runs it alone."""

from operators.mlmodel import handlers  # noqa: F401  (registers the Kopf handlers)
