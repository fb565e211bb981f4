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

{{/* The outbox directory: its own mount inside the data directory (the working directory). */}}
{{- define "regbridge.outboxDir" -}}
/var/lib/regbridge/outbox
{{- end }}

{{/*
Where the outbox lives, from outbox.*: "volumeClaimTemplate" (a claim per replica, made by a
StatefulSet), "existingClaim" (one claim, so one replica), "emptyDir" (lost with the pod), or
empty when the outbox is off.
*/}}
{{- define "regbridge.outboxStorage" -}}
{{- $o := .Values.outbox }}
{{- if not $o.enabled }}
{{- else if not $o.persistence.enabled }}emptyDir
{{- else if $o.persistence.existingClaim }}existingClaim
{{- else }}volumeClaimTemplate
{{- end }}
{{- end }}

{{/*
StatefulSet only when each replica needs a claim of its own: a Deployment's pods all share one
pod template and so one claim, and the outbox directory is locked by one process.
*/}}
{{- define "regbridge.workloadKind" -}}
{{- ternary "StatefulSet" "Deployment" (eq (include "regbridge.outboxStorage" .) "volumeClaimTemplate") }}
{{- end }}

{{/*
A size as a string: YAML reads an unquoted 1073741824 as a float, which would print as
1.073741824e+09 and mean nothing to regbridge or Kubernetes.
*/}}
{{- define "regbridge.size" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}{{ int64 . }}{{ else }}{{ toString . | trim }}{{ end }}
{{- end }}

{{/*
Bytes in a size, in regbridge's units (512MiB, 1GB) or an integer Kubernetes quantity (2Gi, 500M);
empty when it is neither (a fractional or exponent quantity), and then the caller skips its check.
*/}}
{{- define "regbridge.bytes" -}}
{{- $v := include "regbridge.size" . }}
{{- $units := dict "" 1 "B" 1 "KB" 1000 "MB" 1000000 "GB" 1000000000 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824
  "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if regexMatch "^[0-9]+ *[A-Za-z]*$" $v }}
{{- $n := regexReplaceAll "^([0-9]+) *([A-Za-z]*)$" $v "${1}" }}
{{- $unit := regexReplaceAll "^([0-9]+) *([A-Za-z]*)$" $v "${2}" }}
{{- if hasKey $units $unit }}{{ mul (atoi $n) (get $units $unit) }}{{ end }}
{{- end }}
{{- end }}

{{/*
Refuses outbox settings regbridge would stop on at start-up, or that would lose its point: two
processes cannot share one directory, and a volume no bigger than outbox.maxBytes fills up with
ENOSPC (writes failing) before regbridge's own limit answers a clean 503 outbox_full.
*/}}
{{- define "regbridge.validateOutbox" -}}
{{- $o := .Values.outbox }}
{{- if $o.enabled }}
{{- $max := include "regbridge.size" $o.maxBytes }}
{{- if not (regexMatch "^[0-9]+ *(B|KB|MB|GB|KiB|MiB|GiB)?$" $max) }}
{{- fail (printf "outbox.maxBytes %q: use bytes or B, KiB, MiB, GiB, KB, MB, GB (regbridge's units; Kubernetes' Gi is not one)" $max) }}
{{- end }}
{{- if lt (int $o.maxAttempts) 1 }}
{{- fail "outbox.maxAttempts must be at least 1" }}
{{- end }}
{{- $storage := include "regbridge.outboxStorage" . }}
{{- if eq $storage "existingClaim" }}
{{- if .Values.autoscaling.enabled }}
{{- fail "outbox.persistence.existingClaim is one directory, which only one regbridge process can hold: set autoscaling.enabled=false and replicaCount=1 (or leave existingClaim empty for a claim per replica)" }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "outbox.persistence.existingClaim is one directory, which only one regbridge process can hold, but replicaCount is %d: set it to 1 (or leave existingClaim empty for a claim per replica)" (int .Values.replicaCount)) }}
{{- end }}
{{- else }}
{{- $size := include "regbridge.bytes" $o.persistence.size }}
{{- if and $size (le (atoi $size) (atoi (include "regbridge.bytes" $max))) }}
{{- fail (printf "outbox.persistence.size %s must exceed outbox.maxBytes %s: the file system needs room of its own" (include "regbridge.size" $o.persistence.size) $max) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The listener's scheme, which also names the ports: https with tls.secretName, else http.
*/}}
{{- define "regbridge.scheme" -}}
{{- ternary "https" "http" (not (empty .Values.tls.secretName)) }}
{{- end }}

{{/* Whether a client CA is configured (tls.clientCa from a Secret or a ConfigMap). */}}
{{- define "regbridge.clientCa" -}}
{{- with .Values.tls.clientCa }}{{ if or .secretName .configMapName }}true{{ end }}{{ end }}
{{- end }}

{{/*
Refuses TLS settings regbridge would stop on at start-up: a client CA without TLS of its own, or
two sources for the one CA file.
*/}}
{{- define "regbridge.validateTls" -}}
{{- $ca := .Values.tls.clientCa }}
{{- if and $ca.secretName $ca.configMapName }}
{{- fail "tls.clientCa: set secretName or configMapName, not both" }}
{{- end }}
{{- if and (include "regbridge.clientCa" .) (not .Values.tls.secretName) }}
{{- fail "tls.clientCa needs tls.secretName: client certificates are checked by regbridge's own TLS" }}
{{- end }}
{{- if and (include "regbridge.clientCa" .) (not $ca.key) }}
{{- fail "tls.clientCa.key must name the CA file's key" }}
{{- end }}
{{- end }}
