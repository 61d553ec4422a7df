"""The embedded token's file: made once, 32 random bytes, mode 0600 (standard library only, so
``kubeloop up`` can write it without loading the monitor)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure_token(path: Path) -> str:
    """The token in ``path``, made (file mode 0600 from creation) when there is none."""
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def read_token(path: str | Path | None) -> str | None:
    """A client's bearer token from its file (re-read per use: projected tokens rotate)."""
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None
