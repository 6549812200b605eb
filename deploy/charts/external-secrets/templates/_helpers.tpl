{{/*
Names as upstream's chart computes them, so a release keeps its object names (and its
Deployment's immutable selector) when it moves to this chart.
*/}}
{{- define "external-secrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* fullnameOverride; else the release name when it already contains the name; else
"<release>-<name>". */}}
{{- define "external-secrets.fullname" -}}
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

{{/* "<fullname><suffix>", the full name shortened so that the whole fits in 63 characters. */}}
{{- define "external-secrets.withSuffix" -}}
{{- $ctx := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s%s" (include "external-secrets.fullname" $ctx | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "external-secrets.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "external-secrets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Deployment's selector (immutable): upstream's two labels. */}}
{{- define "external-secrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "external-secrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "external-secrets.labels" -}}
{{- $out := dict
  "helm.sh/chart" (include "external-secrets.chart" .)
  "app.kubernetes.io/version" (.Chart.AppVersion | toString)
  "app.kubernetes.io/managed-by" .Release.Service -}}
{{- $_ := mergeOverwrite $out (include "external-secrets.selectorLabels" . | fromYaml) (.Values.commonLabels | default dict) -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "external-secrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "external-secrets.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* [global.repository | image.repository]:[image.tag | appVersion]. */}}
{{- define "external-secrets.image" -}}
{{- $repo := default .Values.image.repository .Values.global.repository -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion (.Values.image.tag | toString)) -}}
{{- end -}}

{{/* "true" when the cluster-scoped kinds are off because RBAC is a Role in scopedNamespace. */}}
{{- define "external-secrets.scopedRBAC" -}}
{{- if and .Values.scopedNamespace .Values.scopedRBAC -}}
true
{{- end -}}
{{- end -}}

{{/*
Whether each reconciler runs, as a dict of reconciler -> bool: its process* value, its CRD
(crds.create*), and scopedRBAC (a Role cannot grant cluster-scoped kinds). The flags and the
permissions both follow from it.
*/}}
{{- define "external-secrets.reconcilers" -}}
{{- $v := .Values -}}
{{- $scoped := include "external-secrets.scopedRBAC" . -}}
{{- $out := dict
  "cluster-store" (and $v.processClusterStore $v.crds.createClusterSecretStore (not $scoped))
  "secret-store" (and $v.processSecretStore $v.crds.createSecretStore)
  "cluster-external-secret" (and $v.processClusterExternalSecret $v.crds.createClusterExternalSecret (not $scoped))
  "push-secret" (and $v.processPushSecret $v.crds.createPushSecret)
  "cluster-push-secret" (and $v.processClusterPushSecret $v.crds.createClusterPushSecret $v.processPushSecret (not $scoped))
  "cluster-generator" (and $v.processClusterGenerator $v.crds.createClusterGenerator (not $scoped)) -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The leader election Lease's name: extraArgs' leader-election-id, else the binary's default. */}}
{{- define "external-secrets.leaseName" -}}
{{- default "external-secrets-controller" (get (.Values.extraArgs | default dict) "leader-election-id" | toString | trimAll "\"") -}}
{{- end -}}

{{/* "true" when leader election is on: leaderElect, or extraArgs' enable-leader-election. */}}
{{- define "external-secrets.leaderElect" -}}
{{- $extra := .Values.extraArgs | default dict -}}
{{- if hasKey $extra "enable-leader-election" -}}
{{- $e := index $extra "enable-leader-election" | toString -}}
{{- if or (eq $e "") (eq $e "<nil>") (eq $e "true") -}}
true
{{- end -}}
{{- else if .Values.leaderElect -}}
true
{{- end -}}
{{- end -}}

{{/* A securityContext value without upstream's "enabled" key, adapted for OpenShift. */}}
{{- define "external-secrets.securityContext" -}}
{{- $sc := omit .securityContext "enabled" -}}
{{- $mode := "disabled" -}}
{{- with .context.Values.global.compatibility -}}
{{- with .openshift -}}
{{- $mode = .adaptSecurityContext | default "disabled" -}}
{{- end -}}
{{- end -}}
{{- if or (eq $mode "force") (and (eq $mode "auto") (.context.Capabilities.APIVersions.Has "security.openshift.io/v1")) -}}
{{- $sc = omit $sc "runAsUser" "runAsGroup" "fsGroup" -}}
{{- end -}}
{{- toYaml $sc -}}
{{- end -}}

{{/* "true" when the ServiceMonitor is rendered (serviceMonitor.renderMode, as upstream). */}}
{{- define "external-secrets.serviceMonitor" -}}
{{- if .Values.serviceMonitor.enabled -}}
{{- $mode := .Values.serviceMonitor.renderMode | default "skipIfMissing" -}}
{{- $served := .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" -}}
{{- if eq $mode "alwaysRender" -}}
true
{{- else if eq $mode "failIfMissing" -}}
{{- if not $served -}}
{{- fail "serviceMonitor.renderMode=failIfMissing: monitoring.coreos.com/v1 ServiceMonitor is not served by this cluster. Install the Prometheus operator's CRDs, or use skipIfMissing or alwaysRender." -}}
{{- end -}}
true
{{- else if $served -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Values this controller cannot honour, each failing with the reason instead of rendering a
pod that would not start or do what the value says. Included once, from validate.yaml.
*/}}
{{- define "external-secrets.validate" -}}
{{- $v := .Values -}}
{{- if and (not $v.processPushSecret) $v.processClusterPushSecret -}}
{{- fail "processPushSecret is false but processClusterPushSecret is true: ClusterPushSecrets work through PushSecrets. Set processClusterPushSecret: false too, or processPushSecret: true." -}}
{{- end -}}
{{- if $v.image.flavour -}}
{{- fail (printf "image.flavour=%q: Strongroom's image has no flavours (one static, distroless image). Leave image.flavour empty." (toString $v.image.flavour)) -}}
{{- end -}}
{{- range $repo := list $v.image.repository $v.global.repository -}}
{{- if regexMatch "(^|/)external-secrets/external-secrets(:|@|$)" (toString $repo) -}}
{{- fail (printf "%q is upstream's image. This chart runs Strongroom's external-secrets controller: use ghcr.io/strongroom/external-secrets or your mirror of it, or drop the image keys from your values." $repo) -}}
{{- end -}}
{{- end -}}
{{- if and $v.genericTargets.resources (not $v.genericTargets.enabled) -}}
{{- fail "genericTargets.resources grants RBAC for generic targets, which are off: set genericTargets.enabled=true too, or drop the resources." -}}
{{- end -}}
{{- if $v.crds.conversion.enabled -}}
{{- fail "crds.conversion.enabled: there is no conversion webhook (the CRDs serve their versions without conversion). Set it to false." -}}
{{- end -}}
{{- if (index $v "bitwarden-sdk-server" | default dict).enabled -}}
{{- fail "bitwarden-sdk-server.enabled: the Bitwarden SDK server subchart is not shipped (this controller has no Bitwarden provider). Set it to false." -}}
{{- end -}}
{{- $mode := ($v.global.compatibility.openshift | default dict).adaptSecurityContext | default "auto" -}}
{{- if not (has $mode (list "auto" "force" "disabled")) -}}
{{- fail (printf "global.compatibility.openshift.adaptSecurityContext=%q: use auto, force or disabled." $mode) -}}
{{- end -}}
{{- if not (has ($v.serviceMonitor.renderMode | default "skipIfMissing") (list "skipIfMissing" "failIfMissing" "alwaysRender")) -}}
{{- fail (printf "serviceMonitor.renderMode=%q: use skipIfMissing, failIfMissing or alwaysRender." $v.serviceMonitor.renderMode) -}}
{{- end -}}
{{- end -}}

{{/* The generators.external-secrets.io kinds (plural) the controller reads, as JSON: upstream's
namespaced generators, and ClusterGenerators unless that reconciler is off. */}}
{{- define "external-secrets.generators" -}}
{{- $out := list "acraccesstokens" "beyondtrustworkloadcredentialsdynamicsecrets" "cloudsmithaccesstokens" "codeartifactauthorizationtokens" "ecrauthorizationtokens" "fakes" "gcraccesstokens" "githubaccesstokens" "gitlabdeploytokens" "grafanas" "mfas" "passwords" "quayaccesstokens" "sshkeys" "stsassumeroletokens" "stssessiontokens" "uuids" "vaultdynamicsecrets" "webhooks" -}}
{{- if get (include "external-secrets.reconcilers" . | fromYaml) "cluster-generator" -}}
{{- $out = append $out "clustergenerators" -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}
