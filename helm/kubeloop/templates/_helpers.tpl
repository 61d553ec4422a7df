{{/* Chart name, overridable. */}}
{{- define "kubeloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed with the chart name unless it already has it. */}}
{{- define "kubeloop.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubeloop.operatorName" -}}
{{- printf "%s-operator" (include "kubeloop.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding): release names are unique only per
namespace, so the name carries the namespace too; two releases never share one. Up to 253
characters are allowed for these names, so nothing is cut. */}}
{{- define "kubeloop.clusterScopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "kubeloop.fullname" .) }}
{{- end }}

{{- define "kubeloop.monitorName" -}}
{{- printf "%s-monitor" (include "kubeloop.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubeloop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "kubeloop.labels" -}}
helm.sh/chart: {{ include "kubeloop.chart" . }}
app.kubernetes.io/name: {{ include "kubeloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubeloop
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: stable across upgrades (selectors are immutable). */}}
{{- define "kubeloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubeloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubeloop.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubeloop.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "kubeloop.monitorUrl" -}}
{{- printf "http://%s.%s.svc.cluster.local:%v" (include "kubeloop.monitorName" .) .Release.Namespace .Values.monitor.service.port }}
{{- end }}

{{/* The storage root's scheme: pvc, s3, gs or file. */}}
{{- define "kubeloop.storageScheme" -}}
{{- index (splitList "://" .Values.storage.uri) 0 }}
{{- end }}

{{/* The claim the monitor mounts at /mnt/kubeloop-storage (contracts/storage.py
STORAGE_MOUNT_PATH) on a pvc:// root, empty for none. A pod mounts only claims of its own
namespace: the root's claim itself when the release runs in the claim's namespace, else
monitor.storageClaim, a claim of the release namespace bound to the same (ReadWriteMany)
volume. Without either, the prediction log stays in the monitor's /data. */}}
{{- define "kubeloop.monitorStorageClaim" -}}
{{- if eq (include "kubeloop.storageScheme" .) "pvc" }}
{{- if .Values.monitor.storageClaim }}
{{- .Values.monitor.storageClaim }}
{{- else if eq .Release.Namespace .Values.storage.claim.namespace }}
{{- index (splitList "/" (trimPrefix "pvc://" .Values.storage.uri)) 0 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether a pod of the release sees the storage root (object storage, or the claim mounted
into the monitor): then the monitor keeps its prediction log under it. */}}
{{- define "kubeloop.monitorSeesStorage" -}}
{{- $scheme := include "kubeloop.storageScheme" . }}
{{- if or (include "kubeloop.monitorStorageClaim" .) (and (has $scheme (list "s3" "gs")) .Values.storage.credentialsSecret) }}true{{ end }}
{{- end }}

{{/* Object-storage credentials from storage.credentialsSecret as the environment, under the
names in contracts/storage.py (tests/deploy/test_object_storage.py checks them): s3, the key
pair (required) and the endpoint and region (optional); gs, the key file's path. */}}
{{- define "kubeloop.storageCredentialsEnv" -}}
{{- $secret := .Values.storage.credentialsSecret }}
{{- $scheme := include "kubeloop.storageScheme" . }}
{{- if and $secret (eq $scheme "s3") }}
{{- range list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- range list "AWS_ENDPOINT_URL" "AWS_ENDPOINT_URL_S3" "AWS_REGION" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
      optional: true
{{- end }}
{{- else if and $secret (eq $scheme "gs") }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/secrets/kubeloop/storage/key.json
{{- end }}
{{- end }}

{{/* gs: the Secret's key file, mounted read-only (volumeMounts entry, then volumes entry). */}}
{{- define "kubeloop.storageCredentialsMount" -}}
{{- if and .Values.storage.credentialsSecret (eq (include "kubeloop.storageScheme" .) "gs") }}
- name: storage-credentials
  mountPath: /var/run/secrets/kubeloop/storage
  readOnly: true
{{- end }}
{{- end }}

{{- define "kubeloop.storageCredentialsVolume" -}}
{{- if and .Values.storage.credentialsSecret (eq (include "kubeloop.storageScheme" .) "gs") }}
- name: storage-credentials
  secret:
    secretName: {{ .Values.storage.credentialsSecret }}
{{- end }}
{{- end }}
