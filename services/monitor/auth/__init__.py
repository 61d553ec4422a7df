"""Authentication and authorization of the monitor's HTTP API (issue 16).

``core.py``: the pure rules (route classes, verdicts, caches, rate limiter); ``kube.py``:
TokenReview/SubjectAccessReview through the Kubernetes API; ``service.py``: the shell both
listeners ask. The monitor README's "Authentication" section is the user-facing description.
"""
