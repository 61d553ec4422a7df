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
