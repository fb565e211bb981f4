{{/*
The pod template, shared by the Deployment and the StatefulSet (see "regbridge.workloadKind"):
only the outbox's storage differs between them, and that is decided here and in the workload's
claim template.
*/}}
{{- define "regbridge.podTemplate" -}}
{{- include "regbridge.validateTls" . -}}
metadata:
  annotations:
    {{- if or .Values.routes .Values.endpoints }}
    # Roll the pods when the routing rules or the endpoints change: regbridge reads its files
    # only at start.
    checksum/routes: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "regbridge.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "regbridge.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # preStop wait + REGBRIDGE_SHUTDOWN_TIMEOUT + flush margin (see _helpers.tpl).
  terminationGracePeriodSeconds: {{ include "regbridge.terminationGracePeriodSeconds" . }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: regbridge
      image: {{ include "regbridge.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: {{ include "regbridge.scheme" . }}
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      env:
        - name: REGBRIDGE_LISTEN
          value: {{ printf "0.0.0.0:%v" .Values.containerPort | quote }}
        - name: REGBRIDGE_SHUTDOWN_TIMEOUT
          value: {{ printf "%ds" (int .Values.config.shutdownTimeoutSeconds) | quote }}
        - name: REGBRIDGE_PUBLISH_TIMEOUT
          value: {{ .Values.config.publishTimeout | quote }}
        - name: REGBRIDGE_LOG_FORMAT
          value: {{ .Values.config.logFormat | quote }}
        - name: RUST_LOG
          value: {{ .Values.config.logLevel | quote }}
        # Set even when off: an empty value overrides the image's default path, and regbridge
        # treats an empty variable as unset.
        - name: REGBRIDGE_FILE_SINK
          value: {{ ternary .Values.config.fileSink.path "" .Values.config.fileSink.enabled | quote }}
        # Set either way: regbridge's own default (on whenever a broker is configured) must not
        # decide against the storage this chart laid out from outbox.enabled.
        - name: REGBRIDGE_OUTBOX
          value: {{ ternary "on" "off" .Values.outbox.enabled | quote }}
        {{- if .Values.outbox.enabled }}
        - name: REGBRIDGE_OUTBOX_DIR
          value: {{ include "regbridge.outboxDir" . }}
        - name: REGBRIDGE_OUTBOX_MAX_BYTES
          value: {{ include "regbridge.size" .Values.outbox.maxBytes | quote }}
        - name: REGBRIDGE_OUTBOX_MAX_ATTEMPTS
          value: {{ .Values.outbox.maxAttempts | int | toString | quote }}
        {{- end }}
        {{- with .Values.config.kafka.brokers }}
        - name: REGBRIDGE_KAFKA_BROKERS
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.config.nats.url }}
        - name: REGBRIDGE_NATS_URL
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.config.otel.endpoint }}
        - name: OTEL_EXPORTER_OTLP_ENDPOINT
          value: {{ . | quote }}
        - name: OTEL_SERVICE_NAME
          value: {{ $.Values.config.otel.serviceName | quote }}
        {{- end }}
        {{- if .Values.routes }}
        - name: REGBRIDGE_ROUTES
          value: /etc/regbridge/routes.yaml
        {{- end }}
        {{- if .Values.endpoints }}
        - name: REGBRIDGE_CONFIG
          value: /etc/regbridge-config/regbridge.yaml
        {{- end }}
        {{- if .Values.tls.secretName }}
        # TLS: the mounted Secret's files, re-read by regbridge when the kubelet swaps in a renewal.
        - name: REGBRIDGE_TLS_CERT
          value: /etc/regbridge-tls/tls.crt
        - name: REGBRIDGE_TLS_KEY
          value: /etc/regbridge-tls/tls.key
        {{- if include "regbridge.clientCa" . }}
        - name: REGBRIDGE_TLS_CLIENT_CA
          value: {{ printf "/etc/regbridge-client-ca/%s" .Values.tls.clientCa.key | quote }}
        {{- end }}
        {{- end }}
        {{- with .Values.existingSecret }}
        {{- $secret := . }}
        {{- $keys := $.Values.secretKeys }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_ROOT_SECRETS" "secret" $secret "key" $keys.rootSecrets) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_HARBOR_AUTH" "secret" $secret "key" $keys.harborAuth) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_MSR_TOKENS" "secret" $secret "key" $keys.msrTokens) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_AMQP_URL" "secret" $secret "key" $keys.amqpUrl) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_DISTRIBUTION_AUTH" "secret" $secret "key" $keys.distributionAuth) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_DOCKERHUB_TOKENS" "secret" $secret "key" $keys.dockerhubTokens) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_QUAY_TOKENS" "secret" $secret "key" $keys.quayTokens) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_GITHUB_SECRETS" "secret" $secret "key" $keys.githubSecrets) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_JFROG_SECRETS" "secret" $secret "key" $keys.jfrogSecrets) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_NEXUS_SECRETS" "secret" $secret "key" $keys.nexusSecrets) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_ACR_AUTH" "secret" $secret "key" $keys.acrAuth) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_GAR_TOKENS" "secret" $secret "key" $keys.garTokens) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_ECR_AUTH" "secret" $secret "key" $keys.ecrAuth) | nindent 8 }}
        {{- include "regbridge.secretEnv" (dict "name" "REGBRIDGE_CLOUDEVENTS_AUTH" "secret" $secret "key" $keys.cloudeventsAuth) | nindent 8 }}
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: {{ include "regbridge.scheme" . }}
          scheme: {{ include "regbridge.scheme" . | upper }}
        {{- toYaml .Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: {{ include "regbridge.scheme" . }}
          scheme: {{ include "regbridge.scheme" . | upper }}
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: {{ include "regbridge.scheme" . }}
          scheme: {{ include "regbridge.scheme" . | upper }}
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            # coreutils' sleep from the Debian base image (no shell needed).
            command: ["sleep", {{ .Values.preStopSleepSeconds | toString | quote }}]
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        # The file sink's directory (and the working directory): writable on a read-only root.
        - name: data
          mountPath: /var/lib/regbridge
        {{- if .Values.outbox.enabled }}
        # Inside the data directory, on storage of its own (values outbox.persistence): a claim
        # per replica, one existing claim, or an emptyDir.
        - name: outbox
          mountPath: {{ include "regbridge.outboxDir" . }}
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- if .Values.routes }}
        - name: routes
          mountPath: /etc/regbridge
          readOnly: true
        {{- end }}
        {{- if .Values.endpoints }}
        - name: config
          mountPath: /etc/regbridge-config
          readOnly: true
        {{- end }}
        {{- if .Values.tls.secretName }}
        # Whole directories, never subPath: a subPath mount is not updated when the Secret is, and
        # the renewed certificate would never reach regbridge.
        - name: tls
          mountPath: /etc/regbridge-tls
          readOnly: true
        {{- if include "regbridge.clientCa" . }}
        - name: client-ca
          mountPath: /etc/regbridge-client-ca
          readOnly: true
        {{- end }}
        {{- end }}
  volumes:
    - name: data
      emptyDir:
        sizeLimit: {{ .Values.config.fileSink.sizeLimit }}
    {{- $storage := include "regbridge.outboxStorage" . }}
    {{- if eq $storage "existingClaim" }}
    - name: outbox
      persistentVolumeClaim:
        claimName: {{ .Values.outbox.persistence.existingClaim }}
    {{- else if eq $storage "emptyDir" }}
    # outbox.persistence.enabled is false: the outbox dies with the pod (trials only).
    - name: outbox
      emptyDir:
        sizeLimit: {{ include "regbridge.size" .Values.outbox.persistence.size }}
    {{- end }}
    {{- /* volumeClaimTemplate: the StatefulSet adds the volume `outbox` from its claim template. */}}
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 16Mi
    {{- if .Values.routes }}
    - name: routes
      configMap:
        name: {{ include "regbridge.fullname" . }}-routes
    {{- end }}
    {{- if .Values.endpoints }}
    - name: config
      configMap:
        name: {{ include "regbridge.fullname" . }}-config
    {{- end }}
    {{- if .Values.tls.secretName }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.secretName }}
    {{- with .Values.tls.clientCa }}
    {{- if .secretName }}
    - name: client-ca
      secret:
        secretName: {{ .secretName }}
    {{- else if .configMapName }}
    - name: client-ca
      configMap:
        name: {{ .configMapName }}
    {{- end }}
    {{- end }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    {{- /* A constraint without labelSelector counts this release's pods. */}}
    {{- $constraint := deepCopy . }}
    {{- if not $constraint.labelSelector }}
    {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "regbridge.selectorLabels" $ | fromYaml)) }}
    {{- end }}
    - {{- toYaml $constraint | nindent 6 }}
    {{- end }}
  {{- end }}
{{- end }}
