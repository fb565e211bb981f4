{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, overridable; 63 characters is the DNS label limit names must fit in. */}}
{{- define "regbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name alone when it already contains the
chart name (helm install regbridge ...), else "<release>-<chart>".
*/}}
{{- define "regbridge.fullname" -}}
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

{{- define "regbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (a Deployment's selector is immutable). */}}
{{- define "regbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "regbridge.labels" -}}
helm.sh/chart: {{ include "regbridge.chart" . }}
{{ include "regbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "regbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "regbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "regbridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop wait, then regbridge's own drain
(REGBRIDGE_SHUTDOWN_TIMEOUT), then a margin for the producers' final flush. Refuses values that
would let the kubelet SIGKILL regbridge before its drain can end.
*/}}
{{- define "regbridge.terminationGracePeriodSeconds" -}}
{{- $shutdown := int .Values.config.shutdownTimeoutSeconds }}
{{- $margin := int .Values.terminationGraceMarginSeconds }}
{{- if lt $shutdown 1 }}
{{- fail "config.shutdownTimeoutSeconds must be at least 1" }}
{{- end }}
{{- if lt $margin 1 }}
{{- fail "terminationGraceMarginSeconds must be at least 1: the grace period has to exceed config.shutdownTimeoutSeconds" }}
{{- end }}
{{- add (int .Values.preStopSleepSeconds) $shutdown $margin }}
{{- end }}

{{/* One credential variable from the existing Secret; optional, so a missing key just leaves it unset. */}}
{{- define "regbridge.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      optional: true
{{- end }}

{{/*
Refuses routing rules that name a sink this release does not configure: regbridge would stop at
start-up with the same complaint, and a failed render is found sooner than a crash-looping pod.
With no broker at all regbridge falls back to the file sink, so `file` is then always valid.
*/}}
{{- define "regbridge.validateRoutes" -}}
{{- $v := .Values }}
{{- $anyBroker := or $v.config.kafka.brokers $v.config.nats.url $v.existingSecret }}
{{- range $rule := $v.routes }}
{{- if not $rule.name }}
{{- fail "routes: every rule needs a name" }}
{{- end }}
{{- if not $rule.to }}
{{- fail (printf "routes: rule %q has no targets (`to`)" $rule.name) }}
{{- end }}
{{- range $target := $rule.to }}
{{- $sink := $target.sink | default "" }}
{{- if and (eq $sink "kafka") (not $v.config.kafka.brokers) }}
{{- fail (printf "routes: rule %q sends to kafka, but config.kafka.brokers is empty" $rule.name) }}
{{- else if and (eq $sink "nats") (not $v.config.nats.url) }}
{{- fail (printf "routes: rule %q sends to nats, but config.nats.url is empty" $rule.name) }}
{{- else if and (eq $sink "amqp") (not $v.existingSecret) }}
{{- fail (printf "routes: rule %q sends to amqp, but the AMQP URL comes from existingSecret, which is empty" $rule.name) }}
{{- else if and (eq $sink "file") (not $v.config.fileSink.enabled) $anyBroker }}
{{- fail (printf "routes: rule %q sends to file, but config.fileSink.enabled is false" $rule.name) }}
{{- else if not (has $sink (list "kafka" "nats" "amqp" "file")) }}
{{- fail (printf "routes: rule %q names sink %q; valid sinks are kafka, nats, amqp, file" $rule.name $sink) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
