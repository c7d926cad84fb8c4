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

{{/* The state volume's mount path: the image's working directory. */}}
{{- define "driftd.stateDir" -}}
/var/lib/driftd
{{- end }}

{{/* Where referenceConfigMap is mounted. */}}
{{- define "driftd.referenceDir" -}}
/etc/driftd-reference
{{- end }}

{{/* The PersistentVolumeClaim holding the state (persistence.enabled). */}}
{{- define "driftd.claimName" -}}
{{- default (include "driftd.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/*
driftd.yaml: the configured values, with the metrics address the chart serves. A
reference profile (referenceConfigMap, or config.reference.path) replaces the default
warm-up, which Helm would otherwise merge in beside the path.
*/}}
{{- define "driftd.config" -}}
{{- $config := mergeOverwrite (deepCopy .Values.config) (dict "metrics" (dict "host" "0.0.0.0" "port" (int .Values.metrics.port))) }}
{{- $reference := $config.reference | default dict }}
{{- if .Values.referenceConfigMap.name }}
{{- $_ := set $config "reference" (dict "path" (printf "%s/%s" (include "driftd.referenceDir" .) .Values.referenceConfigMap.key)) }}
{{- else if $reference.path }}
{{- $_ := set $config "reference" (dict "path" $reference.path) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* "true" when the reference is a warm-up (driftd's default when none is given). */}}
{{- define "driftd.warmup" -}}
{{- $reference := .Values.config.reference | default dict }}
{{- if not (or .Values.referenceConfigMap.name $reference.path) }}true{{ end }}
{{- end }}

{{/* The checkpoint store (driftd's default, file, when none is given). */}}
{{- define "driftd.store" -}}
{{- $checkpoint := .Values.config.checkpoint | default dict }}
{{- $checkpoint.store | default "file" }}
{{- end }}

{{/* Refuse value sets whose state would not survive the pod, or be shared by replicas. */}}
{{- define "driftd.validate" -}}
{{- $store := include "driftd.store" . }}
{{- $replicas := int .Values.replicaCount }}
{{- if and .Values.persistence.enabled (gt $replicas 1) }}
{{- fail (printf "persistence.enabled=true with replicaCount %d: the replicas would share one claim and write one checkpoint. With several replicas use config.checkpoint.store=kafka and persistence.enabled=false." $replicas) }}
{{- end }}
{{- if and (eq $store "file") (gt $replicas 1) }}
{{- fail (printf "config.checkpoint.store=file with replicaCount %d: the file store holds one replica's state, and partitions would move between replicas without it. Use config.checkpoint.store=kafka, which hands partitions over." $replicas) }}
{{- end }}
{{- if and (include "driftd.warmup" .) (not .Values.allowEphemeralState) }}
{{- if eq $store "none" }}
{{- fail "config.checkpoint.store=none with a warm-up reference (config.reference.warmup_events): the reference is never saved, so every restart learns a new one from current, possibly drifted, traffic. Use config.checkpoint.store=kafka, or a reference profile (referenceConfigMap.name or config.reference.path); set allowEphemeralState=true to accept it." }}
{{- else if and (eq $store "file") (not .Values.persistence.enabled) }}
{{- fail "config.checkpoint.store=file with a warm-up reference (config.reference.warmup_events) and persistence.enabled=false is unsafe: the state directory is an emptyDir, lost when the pod is rescheduled, and driftd then refuses to start (exit 3) rather than learn a new reference from possibly drifted traffic. Use config.checkpoint.store=kafka, a reference profile (referenceConfigMap.name or config.reference.path), or persistence.enabled=true; set allowEphemeralState=true to accept it." }}
{{- end }}
{{- end }}
{{- end }}
