# Create the MLflow basic-auth user of the clients' Secret, or set its password to the Secret's.
# Run by the chart's <fullname>-mlflow-users hook Job with the admin account in
# MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD. Idempotent. Waits (bounded) for MLflow.
import os
import sys
import time
import urllib.request

from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

url = os.environ["MLFLOW_URL"].rstrip("/")
user, password = os.environ["CLIENT_USERNAME"], os.environ["CLIENT_PASSWORD"]
if user == os.environ.get("MLFLOW_TRACKING_USERNAME"):
    sys.exit("the clients' MLflow user must not be the admin account: give mlflow.auth.clientCredentialsSecret its own username")
for attempt in range(60):
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            if response.status == 200:
                break
    except OSError as exc:
        print(f"waiting for MLflow at {url}: {exc}", flush=True)
    time.sleep(5)
else:
    sys.exit(f"MLflow at {url} did not answer /health")
client = AuthServiceClient(url)
try:
    client.create_user(user, password)
    print(f"created MLflow user {user}")
except MlflowException as exc:
    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
        raise
    client.update_user_password(user, password)
    print(f"MLflow user {user} exists; password set from the Secret")
