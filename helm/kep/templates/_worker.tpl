{{/*
The pod template of a consumer group's workload, shared by its Deployment and its StatefulSet.
Argument: dict "root" $ "worker" W (from kep.worker) "name" OBJECT_NAME.
*/}}
{{- define "kep.workerPodTemplate" -}}
{{- $root := .root }}
{{- $w := .worker }}
{{- $selector := include "kep.componentSelectorLabels" (dict "root" $root "component" "worker" "group" $w.name) | fromYaml }}
{{- $persistent := and $w.staticMembership.enabled $w.staticMembership.persistence.enabled -}}
metadata:
  labels:
    {{- include "kep.componentLabels" (dict "root" $root "component" "worker" "group" $w.name) | nindent 4 }}
    {{- with $w.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "kep.workerChecksum" (dict "root" $root "worker" $w) }}
    {{- with $w.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kep.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
  # Above the drain deadline (KEP_DRAIN_TIMEOUT_S): in-flight messages finish and offsets are committed
  # before Kubernetes would SIGKILL the worker.
  terminationGracePeriodSeconds: {{ int $w.terminationGracePeriodSeconds }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: worker
      image: {{ include "kep.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        - run
        - {{ $w.handler | quote }}
        - --config
        - /etc/kep/worker/config.yaml
        - --metrics-port
        - {{ include "kep.workerPort" $root | quote }}
      ports:
        - name: metrics
          containerPort: {{ include "kep.workerPort" $root }}
          protocol: TCP
      env:
        {{- include "kep.env" (dict "chart" (include "kep.workerEnv" .) "user" $w.env) | nindent 8 }}
      {{- with $w.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        {{- toYaml $w.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        {{- toYaml $w.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml $w.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "kep.commonVolumeMounts" $root | nindent 8 }}
        - name: data
          mountPath: /var/lib/kep
        {{- if not $root.Values.topology.file }}
        - name: topology
          mountPath: /etc/kep/topology
          readOnly: true
        {{- end }}
        - name: config
          mountPath: /etc/kep/worker
          readOnly: true
  volumes:
    {{- include "kep.commonVolumes" $root | nindent 4 }}
    {{- if not $persistent }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- if not $root.Values.topology.file }}
    - name: topology
      configMap:
        name: {{ include "kep.topologyName" $root }}
    {{- end }}
    - name: config
      configMap:
        name: {{ printf "%s-config" .name | trunc 63 | trimSuffix "-" }}
  {{- with $w.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- include "kep.topologySpread" (dict "constraints" . "selector" $selector) | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The chart's env entries of a worker (YAML list): connection, topology, processes, drain deadline, idempotency store, the
outbox relay, static membership. Argument: dict "root" $ "worker" W.
*/}}
{{- define "kep.workerEnv" -}}
{{- $root := .root }}
{{- $w := .worker }}
{{- include "kep.kafkaEnv" $root }}
- name: KEP_TOPOLOGY
  value: {{ include "kep.topologyPath" $root }}
- name: KEP_DRAIN_TIMEOUT_S
  value: {{ $w.drainTimeoutSeconds | quote }}
- name: KEP_PROCESSES
  value: {{ $w.processes | toString | quote }}
- name: KEP_IDEMPOTENCY_STORE
  value: {{ $w.idempotencyStore | quote }}
- name: KEP_LOG_FORMAT
  value: {{ $w.logFormat | quote }}
{{- with $w.outbox }}
- name: KEP_OUTBOX_RELAY
  value: {{ .relay | toString | quote }}
- name: KEP_OUTBOX_TABLE
  value: {{ .table | quote }}
- name: KEP_OUTBOX_DELIVERY
  value: {{ .delivery | quote }}
- name: KEP_OUTBOX_BATCH_SIZE
  value: {{ .batchSize | int | toString | quote }}
{{- end }}
{{- with $root.Values.schemaRegistry.url }}
- name: KEP_SCHEMA_REGISTRY_URL
  value: {{ . | quote }}
{{- end }}
{{- if ne $w.groupId $w.name }}
- name: KEP_GROUP
  value: {{ $w.groupId | quote }}
{{- end }}
{{- if $w.staticMembership.enabled }}
- name: KEP_GROUP_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: KEP_SESSION_TIMEOUT_MS
  value: {{ int $w.staticMembership.sessionTimeoutMs | quote }}
{{- end }}
{{- end }}
