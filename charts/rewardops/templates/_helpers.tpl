{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "rewardops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rewardops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rewardops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "mlflow") */}}
{{- define "rewardops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rewardops.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rewardops.labels" -}}
{{ include "rewardops.selectorLabels" . }}
helm.sh/chart: {{ include "rewardops.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: rewardops
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Images ----------------------------------------------------------------------------- */}}

{{/* A RewardOps image: (dict "root" $ "name" "mlflow") */}}
{{- define "rewardops.image" -}}
{{- $images := .root.Values.images -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $images.registry) (get $images .name) (default .root.Chart.AppVersion $images.tag) -}}
{{- end -}}

{{/* A third-party image: {repository, tag} */}}
{{- define "rewardops.thirdPartyImage" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{- define "rewardops.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod security: the restricted Pod Security Standard, for every pod template -------- */}}

{{/* Pod-level: call with the UID (also used as GID and fsGroup). */}}
{{- define "rewardops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "rewardops.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Endpoints ---------------------------------------------------------------------------- */}}

{{- define "rewardops.serviceHost" -}}
{{- printf "%s-%s.%s.svc" (include "rewardops.fullname" .root) .component .root.Release.Namespace -}}
{{- end -}}

{{- define "rewardops.s3Endpoint" -}}
{{- if .Values.objectStore.endpoint -}}
{{- .Values.objectStore.endpoint -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s:9000" (include "rewardops.serviceHost" (dict "root" . "component" "minio")) -}}
{{- end -}}
{{- end -}}

{{- define "rewardops.mlflowUrl" -}}
{{- printf "http://%s:%v" (include "rewardops.serviceHost" (dict "root" . "component" "mlflow")) .Values.mlflow.port -}}
{{- end -}}

{{- define "rewardops.judgeUrl" -}}
{{- printf "http://%s:8000/v1" (include "rewardops.serviceHost" (dict "root" . "component" "judge")) -}}
{{- end -}}

{{/* S3 client environment (endpoint, region, key pair from the Secret). */}}
{{- define "rewardops.s3Env" -}}
{{- $endpoint := include "rewardops.s3Endpoint" . -}}
{{- if $endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ $endpoint | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ $endpoint | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.objectStore.region | quote }}
{{- if not .Values.objectStore.useWorkloadIdentity }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.existingSecret }}
      key: {{ .Values.objectStore.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.existingSecret }}
      key: {{ .Values.objectStore.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{- define "rewardops.serviceAccountName" -}}
{{- default (include "rewardops.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The service account pipeline steps run as (release namespace and clientNamespaces). */}}
{{- define "rewardops.pipelineServiceAccountName" -}}
{{- default (printf "%s-pipeline" (include "rewardops.fullname" .)) .Values.pipelines.serviceAccount.name -}}
{{- end -}}

{{/* The TrainJob launcher's own service account (release namespace and clientNamespaces): the
launcher Role's only subject; its token Secret is mounted into the launch step alone. */}}
{{- define "rewardops.launcherServiceAccountName" -}}
{{- printf "%s-trainjob-launcher" (include "rewardops.fullname" .) -}}
{{- end -}}

{{/* Cluster-scoped names are release-scoped: two releases never collide. */}}
{{- define "rewardops.deepspeedRuntimeName" -}}
{{- printf "%s-deepspeed" (include "rewardops.fullname" .) -}}
{{- end -}}

{{- define "rewardops.torchRuntimeName" -}}
{{- printf "%s-torch" (include "rewardops.fullname" .) -}}
{{- end -}}

{{/* MLflow client credentials (MLflow's client reads these two variables itself). */}}
{{- define "rewardops.mlflowClientEnv" -}}
{{- if and .Values.mlflow.enabled (eq .Values.mlflow.auth.mode "oauth2-proxy") }}
- name: MLFLOW_TRACKING_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.auth.clientCredentialsSecret }}
      key: MLFLOW_TRACKING_TOKEN
{{- else if and .Values.mlflow.enabled (eq .Values.mlflow.auth.mode "basic-auth") }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.auth.clientCredentialsSecret }}
      key: MLFLOW_TRACKING_USERNAME
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.auth.clientCredentialsSecret }}
      key: MLFLOW_TRACKING_PASSWORD
{{- end }}
{{- end -}}

{{/* MLflow's database URL as env (MLFLOW_BACKEND_STORE_URI), never in the manifest. */}}
{{- define "rewardops.mlflowDatabaseEnv" -}}
{{- if .Values.postgresql.enabled }}
- name: MLFLOW_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.auth.existingSecret }}
      key: {{ .Values.postgresql.auth.passwordKey }}
# $(MLFLOW_DB_PASSWORD) is expanded by the kubelet; the password never enters the manifest.
- name: MLFLOW_BACKEND_STORE_URI
  value: {{ printf "postgresql+psycopg2://%s:$(MLFLOW_DB_PASSWORD)@%s-postgresql:5432/%s" .Values.postgresql.username (include "rewardops.fullname" .) .Values.postgresql.database | quote }}
{{- else }}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.backendStore.external.existingSecret }}
      key: {{ .Values.mlflow.backendStore.external.dsnKey }}
{{- end }}
{{- end -}}

{{/*
The object-store policy of the clients' key pair: read/write on the MLflow artifact prefix, the
DVC prefix and the checkpoint bucket, list on those buckets, nothing else. The MinIO bootstrap
applies it as a MinIO policy; for AWS it is the IAM policy the README shows.
*/}}
{{- define "rewardops.s3Policy" -}}
{{- $b := .Values.objectStore.buckets -}}
{{- $objects := list (printf "arn:aws:s3:::%s/%s/*" $b.artifacts .Values.mlflow.artifactsPrefix) (printf "arn:aws:s3:::%s/dvc/*" $b.dvc) (printf "arn:aws:s3:::%s/*" $b.checkpoints) -}}
{{- $buckets := list (printf "arn:aws:s3:::%s" $b.artifacts) (printf "arn:aws:s3:::%s" $b.dvc) (printf "arn:aws:s3:::%s" $b.checkpoints) -}}
{{- $policy := dict "Version" "2012-10-17" "Statement" (list
  (dict "Sid" "ListRewardOpsBuckets" "Effect" "Allow" "Action" (list "s3:ListBucket" "s3:GetBucketLocation" "s3:ListBucketMultipartUploads") "Resource" $buckets)
  (dict "Sid" "ReadWriteRewardOpsPrefixes" "Effect" "Allow" "Action" (list "s3:GetObject" "s3:PutObject" "s3:DeleteObject" "s3:AbortMultipartUpload" "s3:ListMultipartUploadParts") "Resource" $objects)) -}}
{{- toPrettyJson $policy -}}
{{- end -}}

{{/* Pods labelled so may reach networkPolicy.externalEgress. */}}
{{- define "rewardops.externalEgressLabel" -}}
rewardops.io/external-egress: "true"
{{- end -}}

{{/* Checks on values the schema cannot express with a useful message ----------------- */}}

{{/*
Secret-looking keys with an inline value, anywhere in the values tree: (dict "path" "" "value" .Values).
Keys that name a Secret or a key inside one (existingSecret, passwordKey, ...) do not match.
*/}}
{{- define "rewardops.scanInlineSecrets" -}}
{{- $secretKey := "(?i)^(.*password|passwd|secret|client_?secret|secret_?key|secret_?access_?key|access_?key|access_?key_?id|.*token|api_?key|dsn|credentials?|root_?user|private_?key)$" -}}
{{- $secretEnv := "(?i)(^|_)(password|passwd|secret|token|api_?key|access_?key|credentials?|private_?key)(_|$)" -}}
{{- $urlWithPassword := "^[A-Za-z][A-Za-z0-9+.-]*://[^/@\\s:]+:[^/@\\s]+@" -}}
{{- $path := .path -}}
{{- if kindIs "map" .value -}}
  {{- if and (hasKey .value "name") (hasKey .value "value") (kindIs "string" .value.name) -}}
    {{- if and (regexMatch $secretEnv .value.name) .value.value -}}
      {{- fail (printf "\n%s: environment variable %s has an inline value that looks like a secret. Put it in a Secret and use valueFrom.secretKeyRef (kubectl create secret generic NAME --from-literal=%s=...)." $path .value.name .value.name) -}}
    {{- end -}}
  {{- end -}}
  {{- range $key, $val := .value -}}
    {{- $sub := ternary $key (printf "%s.%s" $path $key) (eq $path "") -}}
    {{- if and (regexMatch $secretKey $key) (kindIs "string" $val) $val -}}
      {{- fail (printf "\n%s: inline secrets are not accepted. Create a Secret (kubectl create secret generic ...) and reference it with the matching existingSecret value; see values.yaml." $sub) -}}
    {{- end -}}
    {{- include "rewardops.scanInlineSecrets" (dict "path" $sub "value" $val) -}}
  {{- end -}}
{{- else if kindIs "slice" .value -}}
  {{- range $i, $item := .value -}}
    {{- include "rewardops.scanInlineSecrets" (dict "path" (printf "%s[%d]" $path $i) "value" $item) -}}
  {{- end -}}
{{- else if kindIs "string" .value -}}
  {{- if regexMatch $urlWithPassword .value -}}
    {{- fail (printf "\n%s: the URL carries a password. Keep credentials out of values: put the URL in a Secret (e.g. mlflow.backendStore.external.existingSecret) or the key pair in objectStore.existingSecret." $path) -}}
  {{- end -}}
{{- end -}}
{{- end -}}

{{- define "rewardops.validate" -}}
{{- include "rewardops.scanInlineSecrets" (dict "path" "" "value" .Values) -}}
{{- range $component := list "minio" "postgresql" -}}
  {{- $c := get $.Values $component -}}
  {{- if and $c.enabled $c.persistence.enabled (not $c.persistence.storageClassName) -}}
    {{- fail (printf "\n%s.persistence.storageClassName is required when %s.persistence.enabled=true: name the StorageClass for its volume (kubectl get storageclass; kind and minikube: standard), or set %s.persistence.enabled=false for a throwaway emptyDir." $component $component $component) -}}
  {{- end -}}
{{- end -}}
{{- if and .Values.judge.enabled .Values.judge.modelCache.persistence.enabled (not .Values.judge.modelCache.persistence.storageClassName) -}}
  {{- fail "\njudge.modelCache.persistence.storageClassName is required when judge.modelCache.persistence.enabled=true (kubectl get storageclass), or disable it to cache weights in an emptyDir." -}}
{{- end -}}
{{- $cache := .Values.judge.modelCache.persistence -}}
{{- if and .Values.judge.enabled $cache.enabled (gt (int .Values.judge.replicas) 1) (not (has "ReadWriteMany" $cache.accessModes)) -}}
  {{- fail "\njudge.replicas > 1 with judge.modelCache.persistence.enabled=true shares one weight-cache volume: set judge.modelCache.persistence.accessModes to [ReadWriteMany], or disable the persistent cache." -}}
{{- end -}}
{{- if and .Values.judge.enabled (lt (int .Values.judge.gpus) 1) -}}
  {{- fail "\njudge.enabled=true needs judge.gpus >= 1: the vLLM judge server runs on GPUs (set judge.gpus, and judge.nodeSelector/tolerations for your GPU nodes). Without GPUs, leave judge.enabled=false and point the annotator at an external OpenAI-compatible endpoint." -}}
{{- end -}}
{{- if and .Values.mlflow.enabled (not .Values.postgresql.enabled) (not .Values.mlflow.backendStore.external.existingSecret) -}}
  {{- fail "\nmlflow needs a database: keep postgresql.enabled=true, or set mlflow.backendStore.external.existingSecret to a Secret whose key mlflow.backendStore.external.dsnKey holds the SQLAlchemy URL." -}}
{{- end -}}
{{- if and (not .Values.objectStore.useWorkloadIdentity) (not .Values.objectStore.existingSecret) -}}
  {{- fail "\nobjectStore.existingSecret is required (a Secret with the S3 key pair), unless objectStore.useWorkloadIdentity=true." -}}
{{- end -}}
{{- if and .Values.minio.enabled .Values.objectStore.useWorkloadIdentity -}}
  {{- fail "\nminio.enabled=true needs a key pair for its clients (a MinIO user): set objectStore.useWorkloadIdentity=false and objectStore.existingSecret." -}}
{{- end -}}
{{- if and .Values.minio.enabled (eq .Values.objectStore.existingSecret .Values.minio.auth.rootSecret) -}}
  {{- fail (printf "\nobjectStore.existingSecret=%s is MinIO's root Secret (minio.auth.rootSecret): that would hand MinIO's root credentials to every pipeline step and training pod. Create a separate Secret with a key pair for the least-privilege MinIO user (the MinIO bootstrap creates that user and its bucket-scoped policy) and set objectStore.existingSecret to it; the root Secret stays with the MinIO pod only." .Values.objectStore.existingSecret) -}}
{{- end -}}
{{- $shared := list "pipeline-runner" "default" "default-editor" "default-viewer" "ml-pipeline" "ml-pipeline-ui" "kubeflow-pipelines-profile-controller" -}}
{{- range $i, $s := .Values.launcher.extraSubjects -}}
  {{- if or (has $s.name $shared) (hasPrefix "system:" $s.name) -}}
    {{- fail (printf "\nlauncher.extraSubjects[%d]: %s/%s is a shared service account: binding the launcher Role to it lets every pod running as it create TrainJobs (and read pod logs) in %s. Run pipeline steps as the chart's dedicated account instead (pipelines.serviceAccount, created in each of clientNamespaces; submit with --service-account), or bind an account used by RewardOps alone." $i $s.namespace $s.name $.Release.Namespace) -}}
  {{- end -}}
{{- end -}}
{{- if and (eq .Values.profile "production") (eq .Values.mlflow.auth.mode "none") -}}
  {{- fail "\nmlflow.auth.mode=none with profile=production: the MLflow tracking server (runs, registry, model artifacts) would accept anyone who can reach it. Use mlflow.auth.mode=basic-auth (Secrets mlflow.auth.serverSecret and mlflow.auth.clientCredentialsSecret) or oauth2-proxy." -}}
{{- end -}}
{{- if and .Values.mlflow.enabled (eq .Values.mlflow.auth.mode "oauth2-proxy") (not .Values.mlflow.auth.oauth2Proxy.extraArgs) -}}
  {{- fail "\nmlflow.auth.mode=oauth2-proxy needs mlflow.auth.oauth2Proxy.extraArgs naming your identity provider, e.g. [--provider=oidc, --oidc-issuer-url=https://idp.example.com, --email-domain=example.com]." -}}
{{- end -}}
{{- if and (not .Values.minio.enabled) (not .Values.objectStore.endpoint) (not .Values.objectStore.useWorkloadIdentity) -}}
  {{- /* AWS S3 with a key pair: allowed, nothing to check. */ -}}
{{- end -}}
{{- if and .Values.mlflow.ingress.enabled (not .Values.mlflow.ingress.host) -}}
  {{- fail "\nmlflow.ingress.enabled=true needs mlflow.ingress.host." -}}
{{- end -}}
{{- end -}}
