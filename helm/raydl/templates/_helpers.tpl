{{/* Names and labels. */}}
{{- define "raydl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "raydl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "raydl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "raydl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "raydl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "raydl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "raydl.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* Non-root, no privilege escalation, no capabilities: the `ray` user (uid 1000) of the Ray images. */}}
{{- define "raydl.securityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop:
  - ALL
runAsNonRoot: true
runAsUser: 1000
{{- end -}}

{{/* requests == limits. Arguments: (dict "cpu" .. "memory" .. "gpu" ..) */}}
{{- define "raydl.resources" -}}
{{- $amounts := dict "cpu" (toString .cpu) "memory" (toString .memory) -}}
{{- if and .gpu (gt (int .gpu) 0) -}}
{{- $_ := set $amounts "nvidia.com/gpu" (toString .gpu) -}}
{{- end -}}
limits:
{{- toYaml $amounts | nindent 2 }}
requests:
{{- toYaml $amounts | nindent 2 }}
{{- end -}}

{{/* Ray Serve's flags on every Ray container, as raydl.serve.config.RAY_ENV (read where Ray
starts; inert without Serve); see benchmarks/README.md, serve_load.py. The serve endpoint's
token (serve.auth) only where the RayService passes .serveToken, and Serve's HAProxy ingress
where it passes .serveIngress (raydl.serve.config.SERVICE_RAY_ENV), as kuberay.py's _env. */}}
{{- define "raydl.env" -}}
env:
{{- if .Values.wandb.secretName }}
- name: WANDB_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.wandb.secretName }}
      key: {{ .Values.wandb.secretKey }}
      optional: true
{{- end }}
{{- with .serveToken }}
- name: {{ .tokenEnv }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
      optional: false
{{- end }}
- name: RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD
  value: "0"
- name: RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP
  value: "0"
{{- if .serveIngress }}
- name: RAY_SERVE_ENABLE_HA_PROXY
  value: "1"
{{- end }}
{{- end -}}

{{/* The job spec's ConfigMap, mounted at /home/ray/raydl on Ray pods when a job is enabled. */}}
{{- define "raydl.specMount" -}}
{{- if .Values.job.enabled }}
volumeMounts:
- name: job-spec
  mountPath: /home/ray/raydl
  readOnly: true
{{- end }}
{{- end -}}

{{- define "raydl.specVolume" -}}
{{- if .Values.job.enabled }}
volumes:
- name: job-spec
  configMap:
    name: {{ include "raydl.fullname" . }}-spec
{{- end }}
{{- end -}}

{{/*
The RayCluster spec — the cluster contract shared with `raydl k8s render`
(raydl/cluster/kuberay.py: head_group, worker_group, cluster_spec).
*/}}
{{- define "raydl.clusterSpec" -}}
rayVersion: {{ .Values.rayVersion | quote }}
enableInTreeAutoscaling: true
authOptions:
  mode: token
autoscalerOptions:
  upscalingMode: {{ .Values.autoscaler.upscalingMode }}
  idleTimeoutSeconds: {{ .Values.autoscaler.idleTimeoutSeconds }}
  resources:
    {{- include "raydl.resources" (dict "cpu" .Values.autoscaler.cpu "memory" .Values.autoscaler.memory) | nindent 4 }}
  securityContext:
    {{- include "raydl.securityContext" . | nindent 4 }}
headGroupSpec:
  serviceType: ClusterIP
  rayStartParams:
    dashboard-host: 0.0.0.0
    num-cpus: "0"
  template:
    spec:
      serviceAccountName: {{ include "raydl.serviceAccountName" . }}
      {{- with .Values.head.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.head.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- include "raydl.specVolume" . | nindent 6 }}
      containers:
      - name: ray-head
        image: {{ include "raydl.image" . }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        ports:
        - {containerPort: 6379, name: gcs}
        - {containerPort: 8265, name: dashboard}
        - {containerPort: 10001, name: client}
        - {containerPort: 8000, name: serve}
        resources:
          {{- include "raydl.resources" (dict "cpu" .Values.head.cpu "memory" .Values.head.memory) | nindent 10 }}
        securityContext:
          {{- include "raydl.securityContext" . | nindent 10 }}
        {{- include "raydl.env" . | nindent 8 }}
        {{- include "raydl.specMount" . | nindent 8 }}
{{- with .Values.workerGroups }}
workerGroupSpecs:
{{- range . }}
- groupName: {{ .name }}
  replicas: {{ .min }}
  minReplicas: {{ .min }}
  maxReplicas: {{ .max }}
  rayStartParams: {}
  template:
    spec:
      serviceAccountName: {{ include "raydl.serviceAccountName" $ }}
      {{- with .nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- $tolerations := .tolerations | default list }}
      {{- if gt (int .gpu) 0 }}
      {{- $tolerations = prepend $tolerations (dict "key" "nvidia.com/gpu" "operator" "Exists" "effect" "NoSchedule") }}
      {{- end }}
      {{- with $tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- include "raydl.specVolume" $ | nindent 6 }}
      containers:
      - name: ray-worker
        image: {{ include "raydl.image" $ }}
        imagePullPolicy: {{ $.Values.image.pullPolicy }}
        resources:
          {{- include "raydl.resources" (dict "cpu" .cpu "memory" .memory "gpu" .gpu) | nindent 10 }}
        securityContext:
          {{- include "raydl.securityContext" $ | nindent 10 }}
        {{- include "raydl.env" $ | nindent 8 }}
        {{- include "raydl.specMount" $ | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}
