{{- define "incisive-hub.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "incisive-hub.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "incisive-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incisive-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "incisive-hub.labels" -}}
{{ include "incisive-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: incisive
helm.sh/chart: {{ printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_") }}
{{- end }}

{{- define "incisive-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "incisive-hub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "incisive-hub.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- /* Cluster-scoped objects carry the namespace too: two releases of the same name in
different namespaces must not share a ClusterRole. */ -}}
{{- define "incisive-hub.clusterName" -}}
{{- printf "%s-%s" (include "incisive-hub.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* The Prometheus job label: the Prometheus Operator names a ServiceMonitor's job after
the scraped Service. */ -}}
{{- define "incisive-hub.metricsJob" -}}
{{- printf "%s-metrics" (include "incisive-hub.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* Whether the cluster serves a Prometheus Operator kind; call with (list $ "Kind"). */ -}}
{{- define "incisive-hub.servesMonitoring" -}}
{{- $root := index . 0 }}
{{- if $root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" (index . 1)) }}true{{ end }}
{{- end }}
