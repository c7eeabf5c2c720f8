{{/*
Names, labels and the certificate material shared by the templates.
*/}}

{{- define "pullguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; DNS-label safe (Service name, Secret names). */}}
{{- define "pullguard.fullname" -}}
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

{{- define "pullguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pullguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pullguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "pullguard.labels" -}}
helm.sh/chart: {{ include "pullguard.chart" . }}
{{ include "pullguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pullguard
{{- end -}}

{{- define "pullguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pullguard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pullguard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt, tls.key and ca.crt, in both certificate modes. */}}
{{- define "pullguard.tlsSecretName" -}}
{{- printf "%s-tls" (include "pullguard.fullname" .) -}}
{{- end -}}

{{/* Every DNS name the API server may use for the Service (it calls <svc>.<ns>.svc). */}}
{{- define "pullguard.dnsNames" -}}
{{- $svc := include "pullguard.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}

{{/*
The namespaces the API server never sends to the webhook: kube-system and the release's own
namespace always (so pullguard can never block its own pods or the control plane's, even when it
is down), then config.exemptNamespaces and webhook.excludeNamespaces.
*/}}
{{- define "pullguard.excludedNamespaces" -}}
{{- $all := list "kube-system" .Release.Namespace -}}
{{- range (concat (.Values.config.exemptNamespaces | default list) .Values.webhook.excludeNamespaces) -}}
{{- $all = append $all . -}}
{{- end -}}
{{- toJson ($all | uniq) -}}
{{- end -}}

{{/*
Self-managed certificates: a CA and a serving certificate, generated once per render and reused
from the existing Secret when there is one, so `helm upgrade` keeps the certificate the pods serve
and the caBundle the API server trusts. `lookup` returns nothing under `helm template` and
`--dry-run=client` (no cluster), so those always show fresh material.

The result is memoised in the values tree: the Secret and the webhook configuration are rendered
by different templates and must see the same CA.
*/}}
{{- define "pullguard.selfManagedTLS" -}}
{{- if not (hasKey .Values "pullguardGeneratedTLS") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "pullguard.tlsSecretName" .) -}}
{{- $data := dict -}}
{{- if and $existing $existing.data (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") (hasKey $existing.data "ca.crt") -}}
{{- $data = dict "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") "ca" (index $existing.data "ca.crt") "reused" true -}}
{{- else -}}
{{- $days := int .Values.certificates.selfManaged.validityDays -}}
{{- $names := include "pullguard.dnsNames" . | fromJsonArray -}}
{{- $ca := genCA (printf "%s-ca" (include "pullguard.fullname" .)) $days -}}
{{- $cert := genSignedCert (index $names 2) nil $names $days $ca -}}
{{- $data = dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($ca.Cert | b64enc) "reused" false -}}
{{- end -}}
{{- $_ := set .Values "pullguardGeneratedTLS" $data -}}
{{- end -}}
{{- toJson (get .Values "pullguardGeneratedTLS") -}}
{{- end -}}

{{/*
Checks that JSON Schema cannot express (cross-field), with the key path in the message.
*/}}
{{- define "pullguard.validate" -}}
{{- $deadline := dig "timeouts" "deadlineSeconds" 8 .Values.config | float64 -}}
{{- $request := dig "timeouts" "requestSeconds" 2 .Values.config | float64 -}}
{{- if ge $deadline (float64 .Values.webhook.timeoutSeconds) -}}
{{- fail (printf "config.timeouts.deadlineSeconds (%v) must be below webhook.timeoutSeconds (%v): the verdict has to reach the API server before it gives up and applies failurePolicy" $deadline .Values.webhook.timeoutSeconds) -}}
{{- end -}}
{{- if gt $request $deadline -}}
{{- fail (printf "config.timeouts.requestSeconds (%v) must not exceed config.timeouts.deadlineSeconds (%v)" $request $deadline) -}}
{{- end -}}
{{- if and (eq .Values.certificates.mode "certManager") .Values.certificates.certManager.issuerRef (not .Values.certificates.certManager.issuerRef.name) -}}
{{- fail "certificates.certManager.issuerRef.name is required when issuerRef is set" -}}
{{- end -}}
{{- end -}}
