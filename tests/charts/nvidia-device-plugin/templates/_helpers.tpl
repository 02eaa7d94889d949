{{/*
Helpers of the stand-in chart.  Names follow nvidia-device-plugin 0.20.0: the fullname is
<release>-<chart name>, or the release name alone when it already contains the chart name, and
fullnameOverride wins over both.
*/}}
{{- define "nvidia-device-plugin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nvidia-device-plugin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $chartName := default .Chart.Name .Values.nameOverride -}}
{{- if contains $chartName .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $chartName | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nvidia-device-plugin.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "nvidia-device-plugin.chart" -}}
{{- printf "%s-%s" (default .Chart.Name .Values.nameOverride) .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nvidia-device-plugin.templateLabels" -}}
app.kubernetes.io/name: {{ include "nvidia-device-plugin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- with .Values.selectorLabelsOverride }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "nvidia-device-plugin.selectorLabels" -}}
{{- if .Values.selectorLabelsOverride -}}
{{ toYaml .Values.selectorLabelsOverride }}
{{- else -}}
{{ include "nvidia-device-plugin.templateLabels" . }}
{{- end -}}
{{- end -}}

{{- define "nvidia-device-plugin.labels" -}}
helm.sh/chart: {{ include "nvidia-device-plugin.chart" . }}
{{ include "nvidia-device-plugin.templateLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nvidia-device-plugin.fullimage" -}}
{{- .Values.image.repository -}}:{{- .Values.image.tag | default (printf "v%s" .Chart.AppVersion) -}}
{{- end -}}

{{/* "true" when the configuration names an external ConfigMap or embeds config files. */}}
{{- define "nvidia-device-plugin.configMapName" -}}
{{- if .Values.config.name -}}
{{- .Values.config.name -}}
{{- else if .Values.config.map -}}
{{- printf "%s-configs" (include "nvidia-device-plugin.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "nvidia-device-plugin.hasConfigMap" -}}
{{- if (include "nvidia-device-plugin.configMapName" .) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* "true" unless some configured strategy is not none: then the pods need
NVIDIA_MIG_MONITOR_DEVICES=all and CAP_SYS_ADMIN to see MIG devices. */}}
{{- define "nvidia-device-plugin.strategiesAllNone" -}}
{{- $allNone := true -}}
{{- if .Values.migStrategy -}}
{{- if ne .Values.migStrategy "none" -}}{{- $allNone = false -}}{{- end -}}
{{- else if .Values.config.name -}}
{{- $allNone = false -}}
{{- else -}}
{{- range $name, $contents := .Values.config.map -}}
{{- $parsed := $contents | fromYaml -}}
{{- if and $parsed.flags (ne (default "none" $parsed.flags.migStrategy) "none") -}}{{- $allNone = false -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $allNone -}}
{{- end -}}

{{- define "nvidia-device-plugin.containerSecurityContext" -}}
{{- if .Values.securityContext -}}
{{ toYaml .Values.securityContext }}
{{- else if .Values.compatWithCPUManager -}}
privileged: true
{{- else if eq (include "nvidia-device-plugin.strategiesAllNone" .) "false" -}}
capabilities:
  add: ["SYS_ADMIN"]
{{- else -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}
{{- end -}}

{{- define "gpu-feature-discovery.containerSecurityContext" -}}
{{- if .Values.gfd.securityContext -}}
{{ toYaml .Values.gfd.securityContext }}
{{- else if eq (include "nvidia-device-plugin.strategiesAllNone" .) "false" -}}
capabilities:
  add: ["SYS_ADMIN"]
{{- else -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}
{{- end -}}

{{/* Pod spec parts both DaemonSets share: placement, priority, pull secrets. */}}
{{- define "nvidia-device-plugin.podPlacement" -}}
{{- if .Values.priorityClassName }}
priorityClassName: {{ .Values.priorityClassName }}
{{- end }}
{{- if .Values.runtimeClassName }}
runtimeClassName: {{ .Values.runtimeClassName }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{ toYaml . }}
{{- end }}
{{- end -}}
