"""Where pipeline data lives: the `storage` root (issue #13 item 2).

Every pipeline input and output (offline store, training sets, Feast repo) is a location under
one configured root, the same for the operator that names it and the KFP task pods that read and
write it. On a cluster whose root is a PersistentVolumeClaim (``pvc://<claim>/<dir>``), every
task mounts the claim at ``STORAGE_MOUNT_PATH``; the chart, the compiled pipelines and the
operator all use this one constant. On an object-storage root (``s3://``, ``gs://``) every task,
the operator and the monitor get the credentials of one Secret, under the names below.
"""

from __future__ import annotations

from typing import Final

# Where a pvc:// storage root's claim is mounted in every KFP task pod.
STORAGE_MOUNT_PATH: Final = "/mnt/kubeloop-storage"
# The pipeline parameter that names the claim (the compiled IR's pvcMount reads it).
STORAGE_PVC_PARAMETER: Final = "storage_pvc"
# URI schemes a storage root may have.
STORAGE_SCHEMES: Final = ("file", "pvc", "s3", "gs")
# The pipeline parameter that names the credentials Secret on an object-storage root (the
# compiled IR's secretAsEnv / secretAsVolume read it; pipelines/storage.py).
STORAGE_SECRET_PARAMETER: Final = "storage_secret"
# The operator's setting that names that Secret (OperatorConfig.storage_secret), set by the
# chart and kustomize from `storage.credentialsSecret`.
STORAGE_SECRET_ENV: Final = "KUBELOOP_STORAGE_SECRET"
# The monitor's storage root (the same value as the operator's): its prediction log defaults
# to PREDICTION_LOG_DIR under it, where an Experiment's labels.predictionLog.path finds it.
STORAGE_ENV: Final = "KUBELOOP_STORAGE"
PREDICTION_LOG_DIR: Final = "prediction-log"

# --- Object-storage credentials: one Secret, the same keys everywhere (issue #13 item 2) ---
# The operator, the monitor and every KFP task get them; the names are the ones the clients
# read from the environment themselves (botocore for s3fs, the AWS SDK for Spark's s3a through
# components/uris.py spark_storage_conf, google-auth for gcsfs).
#
# s3://: the Secret's keys ARE these environment variable names. The key pair is required; the
# endpoint (MinIO, Ceph RGW, any S3-compatible store) and the region are optional.
AWS_ACCESS_KEY_ID_ENV: Final = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY_ENV: Final = "AWS_SECRET_ACCESS_KEY"
AWS_ENDPOINT_URL_ENV: Final = "AWS_ENDPOINT_URL"
# botocore prefers the service-specific name over the global one (AWS SDKs' "service-specific
# endpoints"); both are read, the S3 one first.
AWS_ENDPOINT_URL_S3_ENV: Final = "AWS_ENDPOINT_URL_S3"
AWS_REGION_ENV: Final = "AWS_REGION"
S3_REQUIRED_KEYS: Final = (AWS_ACCESS_KEY_ID_ENV, AWS_SECRET_ACCESS_KEY_ENV)
S3_OPTIONAL_KEYS: Final = (AWS_ENDPOINT_URL_ENV, AWS_ENDPOINT_URL_S3_ENV, AWS_REGION_ENV)
# gs://: the Secret holds a service-account key file under GCS_KEY_FILE; it is mounted at
# STORAGE_CREDENTIALS_MOUNT_PATH and GOOGLE_APPLICATION_CREDENTIALS names the file.
GOOGLE_CREDENTIALS_ENV: Final = "GOOGLE_APPLICATION_CREDENTIALS"
GCS_KEY_FILE: Final = "key.json"
STORAGE_CREDENTIALS_MOUNT_PATH: Final = "/var/run/secrets/kubeloop/storage"
GOOGLE_CREDENTIALS_FILE: Final = f"{STORAGE_CREDENTIALS_MOUNT_PATH}/{GCS_KEY_FILE}"
