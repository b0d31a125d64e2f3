"""Values that cannot work are rejected by `helm template` (and `helm install`, which runs the same
checks) with a message that names the value and says what to do: by values.schema.json for
structure and types, by templates/_helpers.tpl (`rewardops.validate`) for rules across values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.chart_support import CHART, PRODUCTION_VALUES, helm, template


def _rejected(*sets: str, strings: tuple[str, ...] = (), files: tuple[Path, ...] = ()) -> str:
    result = template(*files, set_values=sets, set_strings=strings)
    assert result.returncode != 0, f"accepted: {sets} {strings}\n{result.stdout[:500]}"
    assert not result.stdout.strip(), "nothing may be rendered when values are rejected"
    return result.stderr


# --- no storage class where one is needed ---------------------------------------------------


@pytest.mark.parametrize("component", ["minio", "postgresql"])
def test_persistent_volume_without_storage_class(component: str) -> None:
    message = _rejected(f"{component}.persistence.storageClassName=")
    assert f"{component}.persistence.storageClassName is required when {component}.persistence.enabled=true" in message
    assert "kubectl get storageclass" in message


def test_storage_class_not_needed_for_emptydir() -> None:
    result = template(set_values=("minio.persistence.enabled=false", "minio.persistence.storageClassName="))
    assert result.returncode == 0, result.stderr
    minio = next(d for d in result.documents if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("minio"))
    assert "volumeClaimTemplates" not in minio["spec"]
    assert {"name": "data", "emptyDir": {"sizeLimit": "20Gi"}} in minio["spec"]["template"]["spec"]["volumes"]


def test_judge_cache_volume_without_storage_class() -> None:
    message = _rejected("judge.enabled=true", "judge.gpus=1", "judge.modelCache.persistence.enabled=true")
    assert "judge.modelCache.persistence.storageClassName is required" in message


# --- a judge without GPUs -------------------------------------------------------------------


def test_judge_without_gpus() -> None:
    message = _rejected("judge.enabled=true")
    assert "judge.enabled=true needs judge.gpus >= 1" in message
    assert "judge.enabled=false" in message  # says how to get out of it


def test_judge_with_negative_gpus_fails_the_schema() -> None:
    message = _rejected("judge.enabled=true", "judge.gpus=-1")
    assert "/judge/gpus" in message and "minimum" in message


# --- inlined secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["minio.rootPassword", "postgresql.auth.password", "objectStore.secretAccessKey",
                                 "objectStore.accessKeyId", "judge.hfToken", "judge.apiKey",
                                 "mlflow.backendStore.external.dsn"])
def test_inline_secret_value(key: str) -> None:
    message = _rejected(strings=(f"{key}=hunter2",))
    assert f"{key}: inline secrets are not accepted" in message
    assert "existingSecret" in message


def test_inline_secret_in_extra_env() -> None:
    message = _rejected(strings=("mlflow.extraEnv[0].name=AWS_SECRET_ACCESS_KEY", "mlflow.extraEnv[0].value=hunter2"))
    assert "mlflow.extraEnv[0]: environment variable AWS_SECRET_ACCESS_KEY has an inline value" in message
    assert "valueFrom.secretKeyRef" in message


def test_secret_env_by_reference_is_fine() -> None:
    result = template(set_strings=("trainingRuntimes.extraEnv[0].name=WANDB_API_KEY",
                                   "trainingRuntimes.extraEnv[0].valueFrom.secretKeyRef.name=wandb",
                                   "trainingRuntimes.extraEnv[0].valueFrom.secretKeyRef.key=key",
                                   "mlflow.extraEnv[0].name=TOKENIZERS_PARALLELISM",
                                   "mlflow.extraEnv[0].value=false"))
    assert result.returncode == 0, result.stderr


def test_password_inside_a_url() -> None:
    message = _rejected(strings=("objectStore.endpoint=http://admin:hunter2@minio:9000",))
    assert "objectStore.endpoint: the URL carries a password" in message


def test_missing_secret_reference() -> None:
    message = _rejected(strings=("postgresql.auth.existingSecret=",))
    assert "/postgresql/auth/existingSecret" in message
    message = _rejected("objectStore.existingSecret=")
    assert "objectStore.existingSecret is required" in message
    message = _rejected("postgresql.enabled=false")
    assert "mlflow needs a database" in message and "mlflow.backendStore.external.existingSecret" in message


# --- structure ----------------------------------------------------------------------------------


def test_unknown_key_is_a_schema_error() -> None:
    message = _rejected("mlflow.replica=2")
    assert "at '/mlflow'" in message and "'replica' not allowed" in message


def test_wrong_type_is_a_schema_error() -> None:
    message = _rejected(strings=("mlflow.replicas=two",))
    assert "/mlflow/replicas" in message


def test_missing_limits_is_a_schema_error() -> None:
    message = _rejected("mlflow.resources.limits=null")
    assert "/mlflow/resources" in message and "limits" in message


def test_production_values_with_a_bad_override() -> None:
    message = _rejected("judge.gpus=0", files=(PRODUCTION_VALUES,))
    assert "judge.enabled=true needs judge.gpus >= 1" in message


def test_helm_lint_reports_schema_errors() -> None:
    """`helm lint` checks the schema; it runs templates in lint mode, where `fail` only logs, so
    the cross-value rules above are enforced by `helm template` / `helm install`."""
    result = helm("lint", str(CHART), "--set", "judge.gpus=-1")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "/judge/gpus" in output


def test_judge_replicas_cannot_share_a_read_write_once_cache() -> None:
    message = _rejected("judge.replicas=2", files=(PRODUCTION_VALUES,))
    assert "judge.replicas > 1" in message and "ReadWriteMany" in message
    result = template(PRODUCTION_VALUES, set_values=("judge.replicas=2",
                                                     "judge.modelCache.persistence.accessModes[0]=ReadWriteMany"))
    assert result.returncode == 0, result.stderr
