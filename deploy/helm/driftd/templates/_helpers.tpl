{{/* Chart name, overridable with nameOverride. */}}
{{- define "driftd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's resources: <release>-<chart>, or fullnameOverride. */}}
{{- define "driftd.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "driftd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Kubernetes recommended labels. */}}
{{- define "driftd.labels" -}}
helm.sh/chart: {{ include "driftd.chart" . }}
{{ include "driftd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: drift-monitor
app.kubernetes.io/part-of: driftd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the release's pods (never change them on upgrade). */}}
{{- define "driftd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount to use. */}}
{{- define "driftd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "driftd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* driftd.yaml: the configured values, with the metrics address the chart serves. */}}
{{- define "driftd.config" -}}
{{- $metrics := dict "metrics" (dict "host" "0.0.0.0" "port" (int .Values.metrics.port)) }}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $metrics) }}
{{- end }}
