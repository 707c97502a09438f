{{/* The objects' names; the namespace they live in. */}}
{{- define "pause.installer" -}}containerd-shim-pause-v2-installer{{- end }}
{{- define "pause.uninstaller" -}}containerd-shim-pause-v2-uninstaller{{- end }}
{{- define "pause.namespace" -}}{{ required "namespace.name is required" .Values.namespace.name }}{{- end }}

{{/* The label's key and value, checked. */}}
{{- define "pause.labelKey" -}}
{{- $kv := splitList "=" .Values.label -}}
{{- if or (ne (len $kv) 2) (not (first $kv)) (not (last $kv)) -}}
{{- fail (printf "label %q: want key=value" .Values.label) -}}
{{- end -}}
{{- first $kv -}}
{{- end }}
{{- define "pause.labelValue" -}}{{- last (splitList "=" .Values.label) -}}{{- end }}

{{/* The handlers' names, comma separated, as the installer takes them. */}}
{{- define "pause.handlers" -}}
{{- $names := list -}}
{{- range .Values.handlers }}{{ $names = append $names (required "each handler needs a name" .name) }}{{- end -}}
{{- if not $names }}{{ fail "handlers: at least one" }}{{ end -}}
{{- join "," $names -}}
{{- end }}

{{/* The image reference. */}}
{{- define "pause.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The installer's settings, as env: the probe, run in the same container,
     reads them too, and the uninstaller must find what the install wrote. */}}
{{- define "pause.env" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: PAUSE_HOST_ROOT
  value: /host
- name: PAUSE_CONFIG
  value: {{ .Values.containerd.config | quote }}
- name: PAUSE_DROP_IN_DIR
  value: {{ .Values.containerd.dropInDir | quote }}
- name: PAUSE_BIN_DIR
  value: {{ .Values.binDir | quote }}
- name: PAUSE_CONTAINERD_ADDRESS
  value: {{ .Values.containerd.address | quote }}
- name: PAUSE_CONTAINERD_UNIT
  value: {{ .Values.containerd.unit | quote }}
- name: PAUSE_HANDLERS
  value: {{ include "pause.handlers" . | quote }}
- name: PAUSE_DENSE_PODS_PER_SHIM
  value: {{ .Values.densePodsPerShim | toString | quote }}
- name: PAUSE_LABEL
  value: {{ printf "%s=%s" (include "pause.labelKey" .) (include "pause.labelValue" .) | quote }}
- name: PAUSE_RESTART_TIMEOUT
  value: {{ .Values.containerd.restartTimeout | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What every container running the installer has beyond its command. */}}
{{- define "pause.container" -}}
image: {{ include "pause.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  privileged: true
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: host-root
    mountPath: /host
{{- end }}

{{/* The pod spec both DaemonSets share, but their containers. */}}
{{- define "pause.podSpec" -}}
serviceAccountName: {{ include "pause.installer" . }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
hostNetwork: true
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: host-root
    hostPath:
      path: /
      type: Directory
{{- end }}

{{/* containerd.restartTimeout in seconds: a Go duration of whole hours,
     minutes and seconds (2m, 90s, 1m30s). */}}
{{- define "pause.restartSeconds" -}}
{{- $t := toString .Values.containerd.restartTimeout -}}
{{- if or (not $t) (not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $t)) -}}
{{- fail (printf "containerd.restartTimeout %q: want a duration in whole hours, minutes and seconds, e.g. 2m or 90s" $t) -}}
{{- end -}}
{{- $s := 0 -}}
{{- with regexFind "[0-9]+h" $t }}{{ $s = add $s (mul (trimSuffix "h" . | atoi) 3600) }}{{ end -}}
{{- with regexFind "[0-9]+m" $t }}{{ $s = add $s (mul (trimSuffix "m" . | atoi) 60) }}{{ end -}}
{{- with regexFind "[0-9]+s" $t }}{{ $s = add $s (trimSuffix "s" . | atoi) }}{{ end -}}
{{- if not $s }}{{ fail (printf "containerd.restartTimeout %q: want a duration in whole hours, minutes and seconds, e.g. 2m or 90s" $t) }}{{ end -}}
{{- $s -}}
{{- end }}

{{/* The installer pod's termination grace period: a SIGTERM in the middle
     of an install lets the restart under way end (one restart timeout),
     then rolls back (installer.RollbackTimeout: two restart timeouts and
     15 s): three restart timeouts and a minute. */}}
{{- define "pause.gracePeriod" -}}
{{- add (mul 3 (include "pause.restartSeconds" . | atoi)) 60 -}}
{{- end }}
