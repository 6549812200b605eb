{{/*
Names, as upstream's chart computes them, so a release keeps its object names when it moves
to this chart.
*/}}
{{- define "sealed-secrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* fullnameOverride, else the release name if it contains the name, else "<release>-<name>". */}}
{{- define "sealed-secrets.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sealed-secrets.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "sealed-secrets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealed-secrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sealed-secrets.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: the Deployment's selector is immutable, so these are upstream's. */}}
{{- define "sealed-secrets.matchLabels" -}}
app.kubernetes.io/name: {{ include "sealed-secrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A value rendered with tpl (strings as they are, anything else through toYaml), as upstream. */}}
{{- define "sealed-secrets.render" -}}
{{- if typeIs "string" .value -}}
{{- tpl .value .context -}}
{{- else -}}
{{- tpl (.value | toYaml) .context -}}
{{- end -}}
{{- end -}}

{{/*
Labels of an object: the standard ones, then commonLabels, then the object's own ("extra");
later ones win. Merged as maps so a key set twice is written once.
Usage: include "sealed-secrets.labels" (dict "context" $ "extra" .Values.rbac.labels)
*/}}
{{- define "sealed-secrets.labels" -}}
{{- $ctx := .context -}}
{{- $out := dict
  "app.kubernetes.io/name" (include "sealed-secrets.name" $ctx)
  "app.kubernetes.io/instance" $ctx.Release.Name
  "app.kubernetes.io/version" ($ctx.Chart.AppVersion | toString)
  "app.kubernetes.io/managed-by" $ctx.Release.Service
  "app.kubernetes.io/part-of" "sealed-secrets"
  "helm.sh/chart" (include "sealed-secrets.chart" $ctx) -}}
{{- with $ctx.Values.commonLabels -}}
{{- $_ := mergeOverwrite $out (include "sealed-secrets.render" (dict "value" . "context" $ctx) | fromYaml) -}}
{{- end -}}
{{- with .extra -}}
{{- $_ := mergeOverwrite $out (include "sealed-secrets.render" (dict "value" . "context" $ctx) | fromYaml) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Annotations of an object: commonAnnotations, then the object's own ("extra"); empty when both
are. Usage:
  {{- with include "sealed-secrets.annotations" (dict "context" $ "extra" .Values.service.annotations) }}
  annotations: {{- . | nindent 4 }}
  {{- end }}
*/}}
{{- define "sealed-secrets.annotations" -}}
{{- $ctx := .context -}}
{{- $out := dict -}}
{{- with $ctx.Values.commonAnnotations -}}
{{- $_ := mergeOverwrite $out (include "sealed-secrets.render" (dict "value" . "context" $ctx) | fromYaml) -}}
{{- end -}}
{{- with .extra -}}
{{- $_ := mergeOverwrite $out (include "sealed-secrets.render" (dict "value" . "context" $ctx) | fromYaml) -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* The Kubernetes version rendered for: kubeVersion, else the cluster's (as upstream). */}}
{{- define "sealed-secrets.kubeVersion" -}}
{{- if and .Values.global .Values.global.kubeVersion -}}
{{- .Values.global.kubeVersion -}}
{{- else -}}
{{- default .Capabilities.KubeVersion.Version .Values.kubeVersion -}}
{{- end -}}
{{- end -}}

{{/* The image reference; an empty registry leaves the registry out. */}}
{{- define "sealed-secrets.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if .Values.image.registry -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
How the unsealing rights are granted: "cluster" (ClusterRole and ClusterRoleBinding),
"binding" (a ClusterRoleBinding to a ClusterRole made elsewhere) or "namespaced" (a Role and a
RoleBinding per watched namespace). rbac.clusterRole and rbac.namespacedRoles keep upstream's
meaning when set; null means "decide by additionalNamespaces".
*/}}
{{- define "sealed-secrets.rbacMode" -}}
{{- $cluster := .Values.rbac.clusterRole -}}
{{- $namespaced := .Values.rbac.namespacedRoles -}}
{{- if kindIs "invalid" $namespaced -}}
{{- $namespaced = and (not (eq $cluster true)) (not (empty .Values.additionalNamespaces)) -}}
{{- end -}}
{{- if kindIs "invalid" $cluster -}}
{{- $cluster = not $namespaced -}}
{{- end -}}
{{- if and $cluster $namespaced -}}
{{- fail "rbac.clusterRole and rbac.namespacedRoles are both true: upstream's chart then binds neither, so the controller could not unseal. Set one of them (or leave both null to decide by additionalNamespaces)." -}}
{{- else if $namespaced -}}
{{- if empty .Values.additionalNamespaces -}}
{{- fail "rbac.namespacedRoles needs additionalNamespaces: without them the controller watches every namespace, which only a ClusterRole can grant." -}}
{{- end -}}
namespaced
{{- else if $cluster -}}
cluster
{{- else -}}
binding
{{- end -}}
{{- end -}}

{{/* "true" when the arguments ask for --old-gc-behavior, which deletes Secrets. */}}
{{- define "sealed-secrets.oldGc" -}}
{{- $args := concat (kindIs "slice" .Values.args | ternary .Values.args list) .Values.extraArgs -}}
{{- range $args -}}
{{- $a := toString . -}}
{{- if or (eq $a "--old-gc-behavior") (eq $a "--old-gc-behavior=true") (eq $a "--old-gc-behavior=1") -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checks of values that cannot apply to this chart, each failing with the reason. Included once,
from validate.yaml.
*/}}
{{- define "sealed-secrets.validate" -}}
{{- if semverCompare "<1.22-0" (include "sealed-secrets.kubeVersion" .) -}}
{{- fail (printf "Kubernetes %s is not supported: the controller writes Secrets by server-side apply, which needs 1.22 or later (kubeVersion)." (include "sealed-secrets.kubeVersion" .)) -}}
{{- end -}}
{{- if .Values.rbac.pspEnabled -}}
{{- fail "rbac.pspEnabled: PodSecurityPolicy was removed in Kubernetes 1.25. The controller's pod meets the \"restricted\" Pod Security Standard; label its namespace pod-security.kubernetes.io/enforce=restricted instead." -}}
{{- end -}}
{{- if and .Values.ingress.apiVersion (ne .Values.ingress.apiVersion "networking.k8s.io/v1") -}}
{{- fail (printf "ingress.apiVersion %q: only networking.k8s.io/v1 is rendered (the older Ingress versions were removed in Kubernetes 1.22)." .Values.ingress.apiVersion) -}}
{{- end -}}
{{- if regexMatch "(^|/)bitnami/sealed-secrets-controller$|(^|/)bitnamilegacy/sealed-secrets-controller$" (toString .Values.image.repository) -}}
{{- fail (printf "image.repository %q is upstream's controller image. This chart runs Strongroom's controller (its probes use /readyz, which upstream's does not serve): use ghcr.io/strongroom/sealed-secrets-controller or your mirror of it, or drop image.registry/repository/tag from your values." .Values.image.repository) -}}
{{- end -}}
{{- if and .Values.command (eq (toString (first .Values.command)) "controller") -}}
{{- fail "command [\"controller\"] is upstream's binary; this image's is /usr/local/bin/sealed-secrets-controller (the image's entrypoint). Remove command from your values." -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .Values.pdb.minAvailable)) (ne (toString .Values.pdb.minAvailable) "") (not (kindIs "invalid" .Values.pdb.maxUnavailable)) (ne (toString .Values.pdb.maxUnavailable) "") .Values.pdb.create -}}
{{- fail "pdb.minAvailable and pdb.maxUnavailable are both set: a PodDisruptionBudget takes one of them. Set the other to \"\"." -}}
{{- end -}}
{{- range $k, $v := .Values.privateKeyLabels -}}
{{- if not (and $v (kindIs "string" $v)) -}}
{{- fail (printf "privateKeyLabels.%s: label values have to be non-empty strings" $k) -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := .Values.privateKeyAnnotations -}}
{{- if not (and $v (kindIs "string" $v)) -}}
{{- fail (printf "privateKeyAnnotations.%s: annotation values have to be non-empty strings" $k) -}}
{{- end -}}
{{- end -}}
{{- if .Values.rbac.create -}}
{{- $_ := include "sealed-secrets.rbacMode" . -}}
{{- end -}}
{{- end -}}

{{/* "k=v,k=v" of a map, sorted by key. */}}
{{- define "sealed-secrets.pairs" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* A PodDisruptionBudget bound: a number or a percentage; empty otherwise. */}}
{{- define "sealed-secrets.pdbValue" -}}
{{- if or (kindIs "int" .) (kindIs "int64" .) (kindIs "float64" .) -}}
{{- . | int -}}
{{- else if and (kindIs "string" .) (regexMatch "^[0-9]+%?$" .) -}}
{{- if hasSuffix "%" . }}{{ . | quote }}{{ else }}{{ . }}{{ end -}}
{{- end -}}
{{- end -}}
