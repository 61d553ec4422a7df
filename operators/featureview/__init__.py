"""The FEATUREVIEW operator. `kopf run -m operators.featureview` runs it alone."""

from operators.featureview import handlers  # noqa: F401  (registers the Kopf handlers)
