{{/*
Names, as upstream's chart computes them, so a release keeps its object names (and its
Deployment's immutable selector) when it moves to this chart.
*/}}
{{- define "reloader.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" | lower -}}
{{- end -}}

{{/* fullnameOverride, else "<release>-<name>" (upstream does not shorten it). */}}
{{- define "reloader.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (default .Chart.Name .Values.nameOverride) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "reloader.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "reloader.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reloader.serviceAccountName" -}}
{{- if .Values.reloader.serviceAccount.create -}}
{{- default (include "reloader.fullname" .) .Values.reloader.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.reloader.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: upstream's (the Deployment's selector is immutable), plus matchLabels. */}}
{{- define "reloader.matchLabels" -}}
{{- $out := dict "app" (include "reloader.fullname" .) "release" .Release.Name -}}
{{- with .Values.reloader.matchLabels -}}
{{- $_ := mergeOverwrite $out . -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Labels of every object: upstream's chart labels, then the selector's. */}}
{{- define "reloader.labels" -}}
{{- $out := dict
  "app.kubernetes.io/name" (include "reloader.name" .)
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/version" (.Chart.AppVersion | toString)
  "app.kubernetes.io/managed-by" .Release.Service
  "helm.sh/chart" (include "reloader.chart" .)
  "chart" (include "reloader.chart" .)
  "heritage" .Release.Service -}}
{{- $_ := mergeOverwrite $out (include "reloader.matchLabels" . | fromYaml) -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The image: reloader.deployment.image.name:tag (older upstream charts), else
[global.imageRegistry/]image.repository with the digest or the tag (default appVersion). */}}
{{- define "reloader.image" -}}
{{- $old := .Values.reloader.deployment.image -}}
{{- if $old.name -}}
{{- printf "%s:%s" $old.name (default .Chart.AppVersion ($old.tag | toString)) -}}
{{- else -}}
{{- $repo := .Values.image.repository -}}
{{- with .Values.global.imageRegistry -}}
{{- $repo = printf "%s/%s" . $repo -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion (.Values.image.tag | toString)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The watched namespaces of scoped mode (reloader.namespaces, a list or a comma separated
string), cleaned, de-duplicated and sorted, as JSON. */}}
{{- define "reloader.watchNamespaces" -}}
{{- $ns := .Values.reloader.namespaces | default list -}}
{{- if kindIs "string" $ns -}}
{{- $ns = splitList "," $ns -}}
{{- end -}}
{{- $clean := list -}}
{{- range $ns -}}
{{- $t := . | toString | trim -}}
{{- if $t -}}
{{- $clean = append $clean $t -}}
{{- end -}}
{{- end -}}
{{- $clean | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* The namespaces for --namespaces and the Roles: the scoped list; the release namespace
with watchGlobally false; none (every namespace, a ClusterRole) otherwise. As JSON. */}}
{{- define "reloader.effectiveNamespaces" -}}
{{- $watch := include "reloader.watchNamespaces" . | fromJsonArray -}}
{{- if $watch -}}
{{- $watch | toJson -}}
{{- else if not .Values.reloader.watchGlobally -}}
{{- list (include "reloader.namespace" .) | toJson -}}
{{- else -}}
{{- list | toJson -}}
{{- end -}}
{{- end -}}

{{/* "true" when leader election is on: enableHA, or more than one replica. */}}
{{- define "reloader.ha" -}}
{{- if or .Values.reloader.enableHA (gt (int .Values.reloader.deployment.replicas) 1) -}}
true
{{- end -}}
{{- end -}}

{{/*
Values this reloader cannot honour (yet), each failing with the reason, instead of rendering a
flag the binary refuses at start (a crash-looping pod). Included once, from validate.yaml.
*/}}
{{- define "reloader.validate" -}}
{{- $r := .Values.reloader -}}
{{- if $r.isOpenshift -}}
{{- fail "reloader.isOpenshift: DeploymentConfigs are not reloaded (upstream removed them in v1.4.5 too). Set it to false." -}}
{{- end -}}
{{- if $r.legacy.rbac -}}
{{- fail "reloader.legacy.rbac: the v1beta1 RBAC API was removed in Kubernetes 1.22. Set it to false." -}}
{{- end -}}
{{- if and $r.ignoreSecrets $r.ignoreConfigMaps -}}
{{- fail "reloader.ignoreSecrets and reloader.ignoreConfigMaps are both true: nothing would be watched (the reloader refuses to start). Set one of them to false." -}}
{{- end -}}
{{- if and $r.watchGlobally (include "reloader.watchNamespaces" . | fromJsonArray) -}}
{{- fail "reloader.namespaces is set but reloader.watchGlobally is true; set reloader.watchGlobally=false to use scoped namespace mode." -}}
{{- end -}}
{{- if $r.netpol.enabled -}}
{{- fail "reloader.netpol.enabled: this chart does not render a NetworkPolicy yet. Set it to false and add your own." -}}
{{- end -}}
{{- if $r.verticalPodAutoscaler.enabled -}}
{{- fail "reloader.verticalPodAutoscaler.enabled: this chart does not render a VerticalPodAutoscaler yet. Set it to false and add your own." -}}
{{- end -}}
{{- if and $r.serviceMonitor.enabled (not $r.service) -}}
{{- fail "reloader.serviceMonitor.enabled needs reloader.service (the ServiceMonitor scrapes the Service's endpoints): set reloader.service.port: 9090, or use reloader.podMonitor." -}}
{{- end -}}
{{- range $old := list $r.deployment.image.name .Values.image.repository .Values.image.name -}}
{{- if regexMatch "(^|/)stakater/reloader(:|@|$)" (toString $old) -}}
{{- fail (printf "%q is upstream's image. This chart runs Strongroom's reloader (its probes use /readyz, which upstream's does not serve): use ghcr.io/strongroom/reloader or your mirror of it, or drop the image keys from your values." $old) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A PodDisruptionBudget bound: a number or a percentage; empty otherwise. */}}
{{- define "reloader.pdbValue" -}}
{{- if or (kindIs "int" .) (kindIs "int64" .) (kindIs "float64" .) -}}
{{- . | int -}}
{{- else if and (kindIs "string" .) (regexMatch "^[0-9]+%?$" .) -}}
{{- if hasSuffix "%" . }}{{ . | quote }}{{ else }}{{ . }}{{ end -}}
{{- end -}}
{{- end -}}
