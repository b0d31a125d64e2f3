"""The contract checks the stand-ins run on every exchange (tests/support/contracts.py) can fail,
and the vendored upstream files are the released ones (their digests)."""

from __future__ import annotations

import hashlib
import json

import pytest
from support.contracts import KFP, KUBERNETES, UPSTREAM, vendored_sources

TRAINJOBS = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ns/trainjobs"


@pytest.mark.parametrize("source", vendored_sources(), ids=lambda s: s["file"].rsplit("/", 1)[-1])
def test_every_vendored_file_is_the_released_one(source):
    data = (UPSTREAM / source["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == source["sha256"]
    assert len(source["commit"]) == 40 and source["tag"]


def job(**trainer) -> bytes:
    return json.dumps({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "a"},
                       "spec": {"runtimeRef": {"name": "r"}, "trainer": {"image": "i", **trainer}}}).encode()


def test_kubernetes_requests_are_checked_for_path_method_query_and_body():
    assert KUBERNETES.request_errors("POST", TRAINJOBS, {"fieldValidation": ["Strict"]}, job()) == []
    assert KUBERNETES.request_errors("GET", "/api/v1/namespaces/ns/pods/p/log",
                                     {"follow": ["True"], "container": ["node"]}, b"") == []
    assert "no such operation" in KUBERNETES.request_errors("PUT", "/api/v1/nodes", {}, b"")[0]
    assert "no such operation" in KUBERNETES.request_errors("GET", "/api/v1/namespaces/ns/configmaps/x", {}, b"")[0]
    assert "'follows' is not declared" in KUBERNETES.request_errors(
        "GET", "/api/v1/namespaces/ns/pods/p/log", {"follows": ["true"]}, b"")[0]
    assert "not a boolean" in KUBERNETES.request_errors("GET", "/api/v1/namespaces/ns/pods/p/log",
                                                        {"follow": ["yes"]}, b"")[0]
    assert "not an integer" in KUBERNETES.request_errors("GET", "/api/v1/nodes", {"limit": ["ten"]}, b"")[0]
    assert "fieldValidation='Loose'" in KUBERNETES.request_errors("POST", TRAINJOBS, {"fieldValidation": ["Loose"]},
                                                                  job())[-1]
    assert any("numProcsPerNode" in e for e in KUBERNETES.request_errors("POST", TRAINJOBS, {}, job(numProcsPerNode=1)))
    assert any("propagationPolicy" in e for e in KUBERNETES.request_errors(
        "DELETE", TRAINJOBS + "/a", {}, b'{"propagationPolicy": "Now"}'))
    # a cluster-scoped kind under a namespace path is no operation at all
    assert KUBERNETES.request_errors("GET", "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ns/clustertrainingruntimes/x",
                                     {}, b"")


def test_kubernetes_answers_are_checked_against_the_response_schema():
    good = {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [
        {"metadata": {"name": "n"}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}}]}
    assert KUBERNETES.response_errors("GET", "/api/v1/nodes", 200, "application/json", json.dumps(good).encode()) == []
    bad = json.loads(json.dumps(good))
    bad["items"][0]["status"]["allocatable"]["nvidia.com/gpu"] = 8  # a quantity is always a string
    assert "is not of type 'string'" in KUBERNETES.response_errors("GET", "/api/v1/nodes", 200, "application/json",
                                                                   json.dumps(bad).encode())[0]
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 404, "reason": "NotFound"}
    assert KUBERNETES.response_errors("GET", TRAINJOBS + "/a", 404, "application/json", json.dumps(status).encode()) == []
    assert "differs from the HTTP status" in KUBERNETES.response_errors(
        "GET", TRAINJOBS + "/a", 409, "application/json", json.dumps(status).encode())[0]
    created = json.loads(job())
    created["status"] = {"conditions": [{"type": "Created", "status": "True"}]}  # no reason/message/time
    assert KUBERNETES.response_errors("POST", TRAINJOBS, 201, "application/json", json.dumps(created).encode())
    created["status"] = {"trainerStatus": {"progressPercentage": 101}}
    assert KUBERNETES.response_errors("POST", TRAINJOBS, 201, "application/json", json.dumps(created).encode())


def test_kfp_requests_and_answers_are_checked_against_the_2_17_0_api():
    assert KFP.request_errors("GET", "/apis/v2beta1/pipelines", {"namespace": ["ns"], "filter": ["{}"]}, {}, b"") == []
    assert "not declared" in KFP.request_errors("GET", "/apis/v2beta1/pipelines", {"name": ["x"]}, {}, b"")[0]
    assert "no such operation" in KFP.request_errors("DELETE", "/apis/v2beta1/healthz", {}, {}, b"")[0]
    body = json.dumps({"display_name": "e", "namespace": "ns"}).encode()
    assert KFP.request_errors("POST", "/apis/v2beta1/experiments", {}, {}, body) == []
    assert KFP.request_errors("POST", "/apis/v2beta1/experiments", {}, {}, json.dumps({"title": "e"}).encode())
    assert "missing ['uploadfile']" in KFP.request_errors(
        "POST", "/apis/v2beta1/pipelines/upload", {"name": ["p"]}, {"Content-Type": "multipart/form-data; boundary=x"},
        b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--x--\r\n")[0]
    assert KFP.response_errors("GET", "/apis/v2beta1/healthz", 200, b'{"multi_user": true}') == []
    assert KFP.response_errors("GET", "/apis/v2beta1/healthz", 200, b'{"multiUser": true}')
    assert KFP.response_errors("POST", "/apis/v2beta1/pipelines/upload", 409,
                               b'{"code": 6, "message": "exists", "details": []}') == []
    assert KFP.response_errors("POST", "/apis/v2beta1/pipelines/upload", 409, b'{"error": "exists"}')
