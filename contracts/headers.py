"""HTTP headers kubeloop's serving path sets and reads, and the role values they carry.

Writers and readers:

- ``REQUEST_ID_HEADER`` (``x-request-id``): the local predictor and router
  (``localcluster/serving``) make one up when a request has none and pass it on; the router
  mirrors the same id to a shadow, and the inference logger sends it as the CloudEvent ``id``
  and inside ``ce-metadata``. The monitor pairs a stable response with its shadow's by it.
  Spelled as Istio/Envoy spell their tracing id, so a real mesh keeps it across hops.
- ``ROLE_HEADER`` (``x-kubeloop-role``): set per route by the MLModel operator's Istio
  VirtualService (``operators/backends/serving.py``) and by the local router; the predictor
  copies it into the ``kubelooprole`` CloudEvent extension and ``ce-metadata``; the monitor
  reads either to count the event under the right role. ``x-`` + our name: a private header.
- ``ROLE_*``: the values of that header and extension (``stable`` | ``candidate`` |
  ``shadow``), the rollout roles of ``MLModel.status``.

- ``BUCKET_HEADER`` (``x-kubeloop-bucket``): the sticky-assignment bucket of a request,
  ``0``..``BUCKETS - 1`` in decimal, :func:`assignment_bucket` of the configured header or
  entity key. The MLModel operator's VirtualService matches it with regexes (buckets below
  the candidate's weight go to the candidate); the local router sets it when a request has
  none. Anything that sets it (a client SDK, an ingress filter) must use the same hash.

Header names are lowercase (HTTP/2 and ASGI deliver them so); :func:`canonical` gives the
``Title-Case`` spelling Go's ``http.Header`` uses, which KServe's logger writes into
``ce-metadata``.
"""

from __future__ import annotations

import hashlib
from typing import Final

REQUEST_ID_HEADER: Final = "x-request-id"
ROLE_HEADER: Final = "x-kubeloop-role"

ROLE_STABLE: Final = "stable"
ROLE_CANDIDATE: Final = "candidate"
ROLE_SHADOW: Final = "shadow"
ROLES: Final = (ROLE_STABLE, ROLE_CANDIDATE, ROLE_SHADOW)

BUCKET_HEADER: Final = "x-kubeloop-bucket"
BUCKETS: Final = 100  # one bucket per percent of traffic


def assignment_bucket(value: str) -> int:
    """The bucket of a key value: the first 8 bytes of SHA-256 of its UTF-8, big-endian,
    modulo ``BUCKETS``. Stable across processes and languages (unlike Python's ``hash``);
    one user's bucket never changes, so raising the candidate's weight only adds users."""
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def canonical(header: str) -> str:
    """``x-request-id`` -> ``X-Request-Id`` (Go's canonical MIME header key)."""
    return "-".join(part.capitalize() for part in header.split("-"))
