{{/*
Names, labels and the shared pieces of every kep pod.
*/}}

{{- define "kep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (the DNS label limit). If the release name already
contains the chart name it is used as is.
*/}}
{{- define "kep.fullname" -}}
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

{{- define "kep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kep.labels" -}}
helm.sh/chart: {{ include "kep.chart" . }}
{{ include "kep.selectorLabels" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kep
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one component. Argument: dict "root" $ "component" NAME ["group" GROUP].
*/}}
{{- define "kep.componentSelectorLabels" -}}
{{ include "kep.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .group }}
kep/consumer-group: {{ . }}
{{- end }}
{{- end }}

{{- define "kep.componentLabels" -}}
{{ include "kep.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .group }}
kep/consumer-group: {{ . }}
{{- end }}
{{- end }}

{{- define "kep.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kep.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The worker's HTTP port: /metrics, /healthz, /readyz (kep run --metrics-port, KEP_METRICS_PORT). */}}
{{- define "kep.workerPort" -}}9400{{- end }}

{{- define "kep.ingestName" -}}
{{- printf "%s-ingest" (include "kep.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kep.exporterName" -}}
{{- printf "%s-lag-exporter" (include "kep.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kep.consoleName" -}}
{{- printf "%s-console" (include "kep.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kep.topologyName" -}}
{{- printf "%s-topology" (include "kep.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a consumer group's objects. Argument: dict "root" $ "name" GROUP. */}}
{{- define "kep.workerName" -}}
{{- printf "%s-%s" (include "kep.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The topology: topology.content (YAML the chart puts in a ConfigMap), or, when topology.file is set, the path
of the topology inside the service's image (next to its schemas and handlers). The chart has no default:
it deploys the user's topology or nothing. Used as the input of checksums.
*/}}
{{- define "kep.topology" -}}
{{- $t := .Values.topology }}
{{- if and $t.file (trim $t.content) }}
{{- fail "topology: set topology.file (a path in your image) or topology.content (the YAML), not both" }}
{{- end }}
{{- if not (or $t.file (trim $t.content)) }}
{{- fail "topology: the chart needs your topology; set topology.file to its path in your service's image (with its schemas and handlers, see docs/deploy.md), or topology.content to the YAML (--set-file topology.content=topology.yaml)" }}
{{- end }}
{{- if $t.file }}file: {{ $t.file }}{{ else }}{{ $t.content }}{{ end }}
{{- end }}

{{/* The path the workers and the apply Job read the topology from (KEP_TOPOLOGY, --topology). */}}
{{- define "kep.topologyPath" -}}
{{- .Values.topology.file | default "/etc/kep/topology/topology.yaml" }}
{{- end }}

{{/*
Deep merge of two maps, returned as YAML: maps merge key by key, any other value in the second map (false,
0, "", a list) replaces the first. Written out so the rule does not depend on the merge library's notion of
"empty" values.
Argument: list BASE OVERRIDE.
*/}}
{{- define "kep.merge" -}}
{{- $out := deepCopy (index . 0) }}
{{- range $key, $value := index . 1 }}
{{- $base := index $out $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $base) }}
{{- $_ := set $out $key (include "kep.merge" (list $base $value) | fromYaml) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Fails the render when two consumer groups share a name. */}}
{{- define "kep.validateGroups" -}}
{{- $seen := dict }}
{{- range $i, $g := .Values.consumerGroups }}
{{- if hasKey $seen $g.name }}
{{- fail (printf "consumerGroups[%d]: the name %q is used twice; each consumer group gets its own workload" $i $g.name) }}
{{- end }}
{{- $_ := set $seen $g.name true }}
{{- end }}
{{- end }}

{{/*
The settings of one consumer group: the worker defaults merged with its entry, validated, with the derived
terminationGracePeriodSeconds and groupId. Returns YAML. Argument: dict "root" $ "group" ENTRY.
*/}}
{{- define "kep.worker" -}}
{{- $root := .root }}
{{- $w := include "kep.merge" (list $root.Values.worker .group) | fromYaml }}
{{- $where := printf "consumerGroups[%s]" $w.name }}
{{- $scaling := $w.autoscaling }}
{{- if and $scaling.keda.enabled $scaling.hpa.enabled }}
{{- fail (printf "%s: autoscaling.keda.enabled and autoscaling.hpa.enabled are both true; enable one of them (KEDA creates and owns its own HPA)" $where) }}
{{- end }}
{{- if and $scaling.hpa.enabled (not $scaling.hpa.lagPerReplica) (not $scaling.hpa.targetCPUUtilizationPercentage) }}
{{- fail (printf "%s: autoscaling.hpa is enabled but neither lagPerReplica nor targetCPUUtilizationPercentage is set" $where) }}
{{- end }}
{{- include "kep.validateStore" (dict "worker" $w "where" $where) }}
{{- $drain := int $w.drainTimeoutSeconds }}
{{- if kindIs "invalid" $w.terminationGracePeriodSeconds }}
{{- $_ := set $w "terminationGracePeriodSeconds" (add $drain (int $w.shutdownMarginSeconds)) }}
{{- else if le (int $w.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "%s: terminationGracePeriodSeconds (%d) must be greater than drainTimeoutSeconds (%d), or Kubernetes kills the worker before it has drained; leave it unset to derive it (drainTimeoutSeconds + shutdownMarginSeconds)" $where (int $w.terminationGracePeriodSeconds) $drain) }}
{{- end }}
{{- $_ := set $w "groupId" ($w.groupId | default $w.name) }}
{{- toYaml $w }}
{{- end }}

{{/*
Fails the render when more than one replica of a group can run on a per-pod idempotency store (SQLite on the
pod's volume, or memory://): replicas would not deduplicate each other, and a restart forgets every key.
The store is the group's idempotencyStore, or the value of a KEP_IDEMPOTENCY_STORE entry in its env (one read
from a Secret is taken as shared). Argument: dict "worker" W "where" TEXT.
*/}}
{{- define "kep.validateStore" -}}
{{- $w := .worker }}
{{- $store := $w.idempotencyStore | toString }}
{{- range ($w.env | default list) }}
{{- if eq .name "KEP_IDEMPOTENCY_STORE" }}
{{- if hasKey . "value" }}{{ $store = toString .value }}{{ else }}{{ $store = "" }}{{ end }}
{{- end }}
{{- end }}
{{- $perPod := or (hasPrefix "sqlite:" $store) (hasPrefix "memory:" $store) }}
{{- $scaling := $w.autoscaling }}
{{- $how := "" }}
{{- if $scaling.keda.enabled }}
{{- if gt (int $scaling.keda.maxReplicaCount) 1 }}{{ $how = printf "KEDA autoscaling up to %d replicas" (int $scaling.keda.maxReplicaCount) }}{{ end }}
{{- else if $scaling.hpa.enabled }}
{{- if gt (int $scaling.hpa.maxReplicas) 1 }}{{ $how = printf "HPA autoscaling up to %d replicas" (int $scaling.hpa.maxReplicas) }}{{ end }}
{{- else if gt (int $w.replicas) 1 }}
{{- $how = printf "%d replicas" (int $w.replicas) }}
{{- end }}
{{- if and $perPod $how }}
{{- fail (printf "%s: %s with the per-pod idempotency store %q: replicas would not deduplicate each other and a restart forgets every key. Set idempotencyStore (worker.idempotencyStore, or the group's) to a shared store, redis://HOST:6379/0 or postgresql://USER@HOST/DB (or KEP_IDEMPOTENCY_STORE from a Secret in env), or run 1 replica without autoscaling" .where $how $store) }}
{{- end }}
{{- end }}

{{/* PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL: explicit, or derived from sasl.enabled and tls.enabled. */}}
{{- define "kep.securityProtocol" -}}
{{- $k := .Values.kafka }}
{{- if $k.securityProtocol }}{{ $k.securityProtocol }}
{{- else if and $k.sasl.enabled $k.tls.enabled }}SASL_SSL
{{- else if $k.sasl.enabled }}SASL_PLAINTEXT
{{- else if $k.tls.enabled }}SSL
{{- else }}PLAINTEXT
{{- end }}
{{- end }}

{{/* Fails the render when SASL or TLS is enabled without the Secret it reads. */}}
{{- define "kep.validateKafka" -}}
{{- $k := .Values.kafka }}
{{- if and $k.sasl.enabled (not $k.sasl.existingSecret) }}
{{- fail "kafka.sasl.enabled is true but kafka.sasl.existingSecret is empty: name the Secret holding the SASL username and password" }}
{{- end }}
{{- if and $k.tls.enabled (not $k.tls.existingSecret) }}
{{- fail "kafka.tls.enabled is true but kafka.tls.existingSecret is empty: name the Secret holding the CA certificate" }}
{{- end }}
{{- if and (or $k.tls.certKey $k.tls.keyKey) (not (and $k.tls.certKey $k.tls.keyKey)) }}
{{- fail "kafka.tls: certKey and keyKey go together (mutual TLS needs both the certificate and the key)" }}
{{- end }}
{{- end }}

{{/* KEP_KAFKA_* environment variables: the connection, credentials from secretKeyRef, TLS file paths. */}}
{{- define "kep.kafkaEnv" -}}
{{- include "kep.validateKafka" . }}
{{- $k := .Values.kafka -}}
- name: KEP_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: KEP_KAFKA_CLIENT_ID
  value: {{ $k.clientId | quote }}
- name: KEP_KAFKA_SECURITY_PROTOCOL
  value: {{ include "kep.securityProtocol" . | quote }}
{{- if $k.sasl.enabled }}
- name: KEP_KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: KEP_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.usernameKey }}
- name: KEP_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.passwordKey }}
{{- end }}
{{- if $k.tls.enabled }}
{{- with $k.tls.caKey }}
- name: KEP_KAFKA_SSL_CA_LOCATION
  value: {{ printf "/etc/kep/kafka-tls/%s" . | quote }}
{{- end }}
{{- with $k.tls.certKey }}
- name: KEP_KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ printf "/etc/kep/kafka-tls/%s" . | quote }}
{{- end }}
{{- with $k.tls.keyKey }}
- name: KEP_KAFKA_SSL_KEY_LOCATION
  value: {{ printf "/etc/kep/kafka-tls/%s" . | quote }}
{{- end }}
{{- with $k.tls.keyPasswordKey }}
- name: KEP_KAFKA_SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.tls.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A container's env: the chart's entries (YAML list) without those the user's entries redefine, then the
user's. Argument: dict "chart" YAML "user" LIST.
*/}}
{{- define "kep.env" -}}
{{- $user := .user | default list }}
{{- $names := list }}
{{- range $user }}
{{- $names = append $names .name }}
{{- end }}
{{- $env := list }}
{{- range fromYamlArray .chart }}
{{- if not (has .name $names) }}
{{- $env = append $env . }}
{{- end }}
{{- end }}
{{- toYaml (concat $env $user) }}
{{- end }}

{{/* Volumes every kep pod has: /tmp, and the Kafka TLS Secret when TLS is on. */}}
{{- define "kep.commonVolumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "kep.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: /etc/kep/kafka-tls
  readOnly: true
{{- end }}
{{- end }}

{{/*
Rolls a group's pods when anything they read at start changes: the topology, the group's config file and
the connection settings. Argument: dict "root" $ "worker" W.
*/}}
{{- define "kep.workerChecksum" -}}
{{- $root := .root }}
{{- $inputs := list (include "kep.topology" $root) (toYaml .worker.config) (toYaml $root.Values.kafka) $root.Values.schemaRegistry.url }}
{{- join "\n---\n" $inputs | sha256sum }}
{{- end }}

{{/*
The topologySpreadConstraints of a component, each given a labelSelector for the component's pods when it
has none. Argument: dict "constraints" LIST "selector" LABELS.
*/}}
{{- define "kep.topologySpread" -}}
{{- $out := list }}
{{- range .constraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $.selector) }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
The console's env entries (YAML list): connection, topology, registry, and the operator token and signing key
from existing Secrets (never from values). Without the token Secret the console is read-only.
*/}}
{{- define "kep.consoleEnv" -}}
{{- $c := .Values.console -}}
{{ include "kep.kafkaEnv" . }}
- name: KEP_TOPOLOGY
  value: /etc/kep/topology/topology.yaml
- name: KEP_LOG_FORMAT
  value: json
{{- with .Values.schemaRegistry.url }}
- name: KEP_SCHEMA_REGISTRY_URL
  value: {{ . | quote }}
{{- end }}
- name: KEP_CONSOLE_SECURE_COOKIES
  value: {{ $c.secureCookies | toString | quote }}
{{- with $c.operatorToken.existingSecret }}
- name: KEP_CONSOLE_OPERATOR_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.operatorToken.key }}
{{- end }}
{{- with $c.secretKey.existingSecret }}
- name: KEP_CONSOLE_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.secretKey.key }}
{{- end }}
{{- end }}
