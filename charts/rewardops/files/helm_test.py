# The chart's `helm test` check (templates/tests/test-services.yaml), with the clients' credentials.
import base64
import json
import os
import urllib.error
import urllib.request
import uuid

import boto3


def mlflow_get(path, auth=True):
    request = urllib.request.Request(os.environ["MLFLOW_URL"] + path)
    if auth and os.environ.get("MLFLOW_TRACKING_USERNAME"):
        pair = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    if auth and os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"])
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


if os.environ.get("MLFLOW_URL"):
    status, _ = mlflow_get("/health", auth=False)
    assert status == 200, f"MLflow /health answered {status}"
    print("mlflow: ok")
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    if os.environ.get("MLFLOW_AUTH_MODE", "none") != "none":
        status, _ = mlflow_get(search, auth=False)
        assert status in (401, 403) or 300 <= status < 400, f"MLflow served a request without credentials ({status})"
        print(f"mlflow auth: a request without credentials is refused ({status})")
    status, body = mlflow_get(search)
    assert status == 200, f"MLflow experiment search with the clients' credentials answered {status}: {body[:300]!r}"
    json.loads(body)
    print("database (through MLflow): ok")
s3 = boto3.client("s3")
for location in os.environ["BUCKETS"].split():
    bucket, _, prefix = location.partition("/")
    s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/", MaxKeys=1)
    key = f"{prefix}/helm-test-{uuid.uuid4().hex}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"rewardops")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"rewardops"
    s3.delete_object(Bucket=bucket, Key=key)
    print(f"s3://{bucket}/{prefix}/: list, write, read, delete ok")
