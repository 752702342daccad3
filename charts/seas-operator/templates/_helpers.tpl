{{/* Chart name. */}}
{{- define "seas-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "seas-operator.fullname" -}}
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

{{- define "seas-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "seas-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seas-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "seas-operator.labels" -}}
helm.sh/chart: {{ include "seas-operator.chart" . }}
{{ include "seas-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: seas-operator
{{- end }}

{{- define "seas-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "seas-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "seas-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "seas-operator.runtimeImage" -}}
{{- printf "%s:%s" .Values.runtime.image.repository (default .Chart.AppVersion .Values.runtime.image.tag) }}
{{- end }}

{{/* Namespaces watched in namespaced mode: the release namespace first, then watchNamespaces, without duplicates. */}}
{{- define "seas-operator.watchedNamespaces" -}}
{{- $all := prepend .Values.watchNamespaces .Release.Namespace | uniq }}
{{- toJson $all }}
{{- end }}

{{/*
Rules for the namespaced API calls of the operator (seas_operator.rbac.API_CALLS,
scope "namespaced"). tests/test_chart.py checks these against that list.
*/}}
{{- define "seas-operator.namespacedRules" -}}
- apiGroups: ["seas.dev"]
  resources: ["safetyevolutions"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["seas.dev"]
  resources: ["safetyevolutions/status"]
  verbs: ["patch"]
- apiGroups: ["seas.dev"]
  resources: ["safetyevolutions/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["kubeflow.org"]
  resources: ["pytorchjobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["trainer.kubeflow.org"]
  resources: ["trainjobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["jobset.x-k8s.io"]
  resources: ["jobsets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Cluster-scoped reads kopf needs in every mode. */}}
{{- define "seas-operator.crdReadRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
