{{/* Labels of every object: the component's name, the chart's, and global.commonLabels. Args: [$, name]. */}}
{{- define "portcullis.labels" -}}
{{- $ := index . 0 -}}
{{- $l := dict "app.kubernetes.io/part-of" "portcullis" "app.kubernetes.io/instance" $.Release.Name "app.kubernetes.io/managed-by" $.Release.Service "helm.sh/chart" (printf "%s-%s" $.Chart.Name $.Chart.Version) -}}
{{- with index . 1 }}{{ $_ := set $l "app.kubernetes.io/name" . }}{{ end -}}
{{- $l = merge $l (fromYaml (tpl (toYaml $.Values.global.commonLabels) $)) -}}
{{- toYaml $l -}}
{{- end -}}

{{/* global.commonAnnotations as an `annotations:` block (nothing when empty); extra annotations merged in. */}}
{{- define "portcullis.annotations" -}}
{{- $ := index . 0 -}}
{{- $extra := index . 1 -}}
{{- $all := merge (dict) $extra (fromYaml (tpl (toYaml $.Values.global.commonAnnotations) $)) -}}
{{- with $all }}
annotations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Metadata of a namespaced object: name, namespace, labels, annotations. Args: [$, name, component]. */}}
{{- define "portcullis.meta" -}}
{{- $ := index . 0 -}}
name: {{ index . 1 }}
namespace: {{ $.Release.Namespace }}
labels:
{{- include "portcullis.labels" (list $ (index . 2)) | nindent 2 }}
{{- include "portcullis.annotations" (list $ dict) }}
{{- end -}}

{{/* Metadata of a cluster-scoped object. Args: [$, name, component, (extra annotations)]. */}}
{{- define "portcullis.clusterMeta" -}}
{{- $ := index . 0 -}}
name: {{ index . 1 }}
labels:
{{- include "portcullis.labels" (list $ (index . 2)) | nindent 2 }}
{{- $extra := dict -}}
{{- if gt (len .) 3 }}{{ $extra = index . 3 }}{{ end -}}
{{- include "portcullis.annotations" (list $ $extra) }}
{{- end -}}

{{/* Image reference of portcullis.images.<name>. Args: [$, name]. */}}
{{- define "portcullis.image" -}}
{{- $ := index . 0 -}}
{{- $img := index $.Values.portcullis.images (index . 1) -}}
{{- $registry := $.Values.global.imageRegistry | default $img.registry -}}
{{- $ref := printf "%s:%s" $img.repository ($img.tag | default $.Chart.AppVersion) -}}
{{- if $registry }}{{ printf "%s/%s" $registry $ref }}{{ else }}{{ $ref }}{{ end -}}
{{- end -}}

{{- define "portcullis.pullPolicy" -}}
{{- .Values.global.imagePullPolicy | default .Values.portcullis.images.pullPolicy -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec, from global.imagePullSecrets (names or {name: …}). */}}
{{- define "portcullis.pullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod security context every Portcullis pod runs with (restricted Pod Security Standard). */}}
{{- define "portcullis.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "portcullis.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Preferred spreading over nodes, plus the scheduling values. Args: [$, name, scheduling values, required]. */}}
{{- define "portcullis.scheduling" -}}
{{- $name := index . 1 -}}
{{- $s := index . 2 -}}
affinity:
  podAntiAffinity:
    {{- if index . 3 }}
    # Two webhooks on one node's network would clash on the port.
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: {{ $name }}
    {{- end }}
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: {{ $name }}
{{- with $s.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.topologySpreadConstraints }}
topologySpreadConstraints:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Webhook Service port: what the webhook configurations and converting CRDs call. */}}
{{- define "portcullis.servicePort" -}}
{{- .Values.portcullis.webhook.service.port | int -}}
{{- end -}}

{{/* Port the webhook listens on in its pod. */}}
{{- define "portcullis.listenPort" -}}
{{- if .Values.portcullis.webhook.hostNetwork }}{{ .Values.portcullis.webhook.hostNetworkPort | int }}{{ else }}{{ .Values.portcullis.webhook.port | int }}{{ end -}}
{{- end -}}

{{/* CA injection annotations of the webhook configurations and converting CRDs (cert-manager.io only), as a dict in YAML. */}}
{{- define "portcullis.caInjection" -}}
{{- if not .Values.global.certManagerEnabled -}}
{{- if .Values.global.caInjectionAnnotations -}}
{{- toYaml .Values.global.caInjectionAnnotations -}}
{{- else -}}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/portcullis-webhook-tls
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The namespaceSelector of the pod and workload webhooks (A3, B §1.1). */}}
{{- define "portcullis.namespaceSelector" -}}
{{- $lo := .Values.lifecycleOperator -}}
{{- $out := list .Release.Namespace "kube-system" "kube-public" "kube-node-lease" -}}
{{- if not $lo.allowedNamespaces -}}
{{- $out = concat $out ($lo.deniedNamespaces | default list) | uniq -}}
{{- end -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ toJson $out }}
    {{- with $lo.allowedNamespaces }}
    - key: kubernetes.io/metadata.name
      operator: In
      values: {{ toJson . }}
    {{- end }}
{{- end -}}

{{/* The 8 lifecycle CRDs whose conversion is the webhook's (the webhook's ClusterRole names them). */}}
{{- define "portcullis.convertingCrds" -}}
{{- $names := list -}}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" -}}
{{- $crd := fromYaml ($.Files.Get $path) -}}
{{- if eq (dig "spec" "conversion" "strategy" "None" $crd) "Webhook" -}}
{{- $names = append $names $crd.metadata.name -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}
