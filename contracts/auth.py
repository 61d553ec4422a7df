"""Who may talk to the monitor: the wire names of its authentication (issue 16).

- ``MONITOR_AUDIENCE`` (``kubeloop-monitor``): the audience of the projected ServiceAccount
  token the operator presents on a cluster (the manifests' ``serviceAccountToken`` volume
  projection sets it); the monitor asks its TokenReview for this audience, so a token minted
  for the API server (or any other audience) is refused.
- ``MONITOR_TOKEN_FILE_ENV`` (``KUBELOOP_MONITOR_TOKEN_FILE``): the file a client reads its
  bearer token from, re-read on every request (projected tokens rotate). ``kubeloop up``
  writes the embedded token (0600) and sets this for the operator and the local predictors.
- ``MLMODELS`` / ``FEEDBACK_SUBRESOURCE`` / ``STATUS_SUBRESOURCE``: the RBAC resource the
  monitor's SubjectAccessReviews ask about: ``create`` on ``mlmodels/feedback`` to send
  labels, ``get`` on ``mlmodels/status`` to read figures, drift state and reports — in the
  MLModel's namespace (the RBAC verbs are ``VERB_CREATE`` and ``VERB_GET``).
"""

from __future__ import annotations

from typing import Final

MONITOR_AUDIENCE: Final = "kubeloop-monitor"
MONITOR_TOKEN_FILE_ENV: Final = "KUBELOOP_MONITOR_TOKEN_FILE"
MLMODELS: Final = "mlmodels"
FEEDBACK_SUBRESOURCE: Final = "feedback"
STATUS_SUBRESOURCE: Final = "status"
VERB_CREATE: Final = "create"
VERB_GET: Final = "get"
#: The identity a request carrying the embedded token is given.
EMBEDDED_USER: Final = "kubeloop:embedded"
