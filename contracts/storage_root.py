"""The storage root (``KUBELOOP_STORAGE``): one URI under which every pipeline input and output
lives, and the location a KFP task reads and writes for it (issue #13 item 2).

- ``file:///abs/dir``: the embedded default (``file://<state_dir>``); tasks run on this machine.
- ``pvc://<claim>/<dir>``: a PersistentVolumeClaim in the namespace KFP runs its task pods in;
  every task of the compiled pipelines mounts it at ``STORAGE_MOUNT_PATH``
  (``pipelines/storage.py``), so the location handed to a task is
  ``STORAGE_MOUNT_PATH/<dir>/...``, the same in every task pod and never the operator's disk.
- ``s3://`` and ``gs://``: object storage, handed to tasks as URIs; every task, the operator
  and the monitor get the credentials of one Secret (contracts/storage.py, pipelines/storage.py),
  read through s3fs/gcsfs and Spark's Hadoop S3A/GCS connectors (both in the image).

Pipeline data (offline store, training sets) is handed to tasks as URIs (``Storage.data_uri``:
``file://`` on a local root or the mounted claim), read and written through fsspec in the
components (``components/uris.py``).

Pure: parsing and joining only, no filesystem access. In the contracts package because the
operator, the KFP tasks and the monitor must all name the same locations under the root.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from contracts.storage import STORAGE_MOUNT_PATH, STORAGE_SCHEMES

# A claim name is a DNS-1123 subdomain (Kubernetes object names).
_MAX_CLAIM = 253
_CLAIM = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class StorageError(ValueError):
    """A storage URI that names no usable root; the message names the value."""


@dataclass(frozen=True)
class Storage:
    uri: str
    scheme: str
    # pvc://: the claim's name; empty otherwise.
    claim: str
    # Where tasks find the root: a path (file, pvc) or the URI itself (s3, gs).
    task_root: str

    @property
    def is_pvc(self) -> bool:
        return self.scheme == "pvc"

    def location(self, *parts: str) -> str:
        """``parts`` under the root, as a task's filesystem path (file, pvc) or URI (s3, gs).

        Pipeline data is handed to tasks as ``data_uri``; this form is for what must be a local
        directory (the Feast repo)."""
        clean = [p.strip("/") for p in parts if p.strip("/")]
        for part in clean:
            if ".." in part.split("/"):
                raise StorageError(f"storage location part {part!r} leaves the storage root")
        if self.scheme in ("file", "pvc"):
            return posixpath.join(self.task_root, *clean)
        return "/".join([self.task_root.rstrip("/"), *clean])

    def data_uri(self, *parts: str) -> str:
        """``parts`` under the root as the URI a task reads and writes through fsspec (and
        Spark's filesystem layer): ``file://`` on the embedded default and on the mounted
        claim, the object-storage URI otherwise (components/uris.py)."""
        location = self.location(*parts)
        return "file://" + location if self.scheme in ("file", "pvc") else location


def default_storage_uri(state_dir: Path) -> str:
    """The embedded default: a file:// root at the state directory."""
    return Path(state_dir).resolve().as_uri()


def parse_storage(uri: str) -> Storage:
    """A storage root from its URI; a clear error naming the value otherwise."""
    parsed = urlparse(uri)
    scheme = parsed.scheme
    if scheme not in STORAGE_SCHEMES:
        raise StorageError(
            f"storage {uri!r}: scheme {scheme or '(none)'!r} is not one of "
            f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}"
        )
    if parsed.query or parsed.fragment:
        raise StorageError(f"storage {uri!r}: a root has no query or fragment")
    if scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise StorageError(f"storage {uri!r}: a file:// root is an absolute path (file:///dir)")
        return Storage(uri=uri, scheme=scheme, claim="", task_root=parsed.path.rstrip("/") or "/")
    if not parsed.netloc:
        raise StorageError(f"storage {uri!r}: {scheme}:// needs a {_host_word(scheme)}")
    if scheme == "pvc":
        claim = parsed.netloc
        if len(claim) > _MAX_CLAIM or not _CLAIM.fullmatch(claim):
            raise StorageError(
                f"storage {uri!r}: claim {claim!r} is not a valid PersistentVolumeClaim name"
            )
        sub = parsed.path.strip("/")
        if ".." in sub.split("/"):
            raise StorageError(f"storage {uri!r}: the directory may not contain '..'")
        task_root = posixpath.join(STORAGE_MOUNT_PATH, sub) if sub else STORAGE_MOUNT_PATH
        return Storage(uri=uri, scheme=scheme, claim=claim, task_root=task_root)
    return Storage(uri=uri, scheme=scheme, claim="", task_root=uri.rstrip("/"))


def _host_word(scheme: str) -> str:
    return "claim name (pvc://<claim>/<dir>)" if scheme == "pvc" else "bucket"


def shared_dir_location(shared_dir: str, storage: Storage) -> str:
    """The TrainJob shared directory (``shared_dir``) as the KFP training step sees it.

    A path is taken as is (a volume the step and the TrainJob runtime both mount). A
    ``pvc://<claim>/<dir>`` URI must name the storage root's own claim, the one every task
    already mounts at ``STORAGE_MOUNT_PATH``: it becomes ``<dir>`` under the mount. Another
    claim is refused, as no task mounts it."""
    if not shared_dir.startswith("pvc://"):
        return shared_dir
    shared = parse_storage(shared_dir)
    if not storage.is_pvc or shared.claim != storage.claim:
        mounted = f"claim {storage.claim!r}" if storage.is_pvc else "no claim (not a pvc:// root)"
        raise StorageError(
            f"shared_dir {shared_dir!r}: the training step mounts only the storage root's "
            f"claim, and the root {storage.uri!r} has {mounted}"
        )
    return shared.task_root
