"""Where pipeline data lives: the `storage` root (issue #13 item 2).

Every pipeline input and output (offline store, training sets, Feast repo) is a location under
one configured root, the same for the operator that names it and the KFP task pods that read and
write it. On a cluster whose root is a PersistentVolumeClaim (``pvc://<claim>/<dir>``), every
task mounts the claim at ``STORAGE_MOUNT_PATH``; the chart, the compiled pipelines and the
operator all use this one constant.
"""

from __future__ import annotations

from typing import Final

# Where a pvc:// storage root's claim is mounted in every KFP task pod.
STORAGE_MOUNT_PATH: Final = "/mnt/kubeloop-storage"
# The pipeline parameter that names the claim (the compiled IR's pvcMount reads it).
STORAGE_PVC_PARAMETER: Final = "storage_pvc"
# URI schemes a storage root may have.
STORAGE_SCHEMES: Final = ("file", "pvc", "s3", "gs")
