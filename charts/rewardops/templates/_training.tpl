{{/* The pod template every TrainJob node runs: (dict "root" $ "sshd" true|false) */}}
{{- define "rewardops.trainingPodTemplate" -}}
{{- $root := .root -}}
{{- $t := $root.Values.trainingRuntimes -}}
metadata:
  labels:
    rewardops.io/role: training
    app.kubernetes.io/part-of: rewardops
    app.kubernetes.io/instance: {{ $root.Release.Name }}
    {{- include "rewardops.externalEgressLabel" $root | nindent 4 }}
spec:
  {{- with $t.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  automountServiceAccountToken: false
  {{- with include "rewardops.imagePullSecrets" $root | trim }}{{ . | nindent 2 }}{{ end }}
  securityContext:
    {{- include "rewardops.podSecurityContext" $t.runAsUser | nindent 4 }}
  {{- with $t.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $t.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: node
      image: {{ include "rewardops.image" (dict "root" $root "name" "training") }}
      imagePullPolicy: {{ $root.Values.images.pullPolicy }}
      {{- if .sshd }}
      # MPI worker: an unprivileged sshd on 2222 the launcher's mpirun connects to.
      command: [/usr/sbin/sshd]
      args: [-De, -f, /etc/ssh/rewardops_sshd_config]
      ports:
        - name: ssh
          containerPort: 2222
      readinessProbe:
        tcpSocket:
          port: 2222
        initialDelaySeconds: 5
        periodSeconds: 5
      {{- end }}
      env:
        - name: HOME
          value: /home/mpiuser
        - name: HF_HOME
          value: /home/mpiuser/.cache/huggingface
        - name: TRITON_CACHE_DIR
          value: /home/mpiuser/.cache/triton
        - name: TORCH_EXTENSIONS_DIR
          value: /home/mpiuser/.cache/torch_extensions
        - name: TMPDIR
          value: /tmp
        {{- if $root.Values.mlflow.enabled }}
        - name: MLFLOW_TRACKING_URI
          value: {{ include "rewardops.mlflowUrl" $root | quote }}
        {{- end }}
        - name: REWARDOPS_CHECKPOINT_URI
          value: {{ printf "s3://%s/checkpoints" $root.Values.objectStore.buckets.checkpoints | quote }}
        {{- include "rewardops.s3Env" $root | trim | nindent 8 }}
        {{- with include "rewardops.mlflowClientEnv" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $t.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        requests:
          {{- toYaml $t.resources.requests | nindent 10 }}
          {{- if gt (int $t.gpusPerNode) 0 }}
          {{ $t.gpuResource }}: {{ $t.gpusPerNode }}
          {{- end }}
        limits:
          {{- toYaml $t.resources.limits | nindent 10 }}
          {{- if gt (int $t.gpusPerNode) 0 }}
          {{ $t.gpuResource }}: {{ $t.gpusPerNode }}
          {{- end }}
      securityContext:
        {{- include "rewardops.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        # HOME: caches, ~/.cache/torch_extensions, anything mpirun/DeepSpeed write there; Trainer
        # mounts the SSH key at ~/.ssh on top of it.
        - name: home
          mountPath: /home/mpiuser
        - name: dshm
          mountPath: /dev/shm
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $t.scratchSize }}
    - name: home
      emptyDir:
        sizeLimit: {{ $t.scratchSize }}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $t.shmSize }}
{{- end -}}
