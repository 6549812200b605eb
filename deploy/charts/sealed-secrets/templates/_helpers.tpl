{{- define "sealed-secrets.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealed-secrets.labels" -}}
app.kubernetes.io/name: sealed-secrets
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sealed-secrets.selector" -}}
app.kubernetes.io/name: sealed-secrets
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
