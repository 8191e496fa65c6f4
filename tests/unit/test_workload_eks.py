"""The EKS workload reader's pure parts (issue 23, workload/eks.py): the node's line, owner paths, a job's
size and auto-resume, and the client's refusal of a plain-http endpoint. The reads themselves are tested
against a local API server in tests/integration/test_workload_eks.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hyperpod_guard.workload.eks import KubeApi, KubeUnavailable, auto_resume, node_state, owner_path, replicas


@pytest.mark.parametrize("node, line", [
    ({}, "Ready"),
    ({"metadata": {"labels": {"sagemaker.amazonaws.com/node-health-status": "Schedulable"}},
      "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "health Schedulable"),
    ({"metadata": {"labels": {"sagemaker.amazonaws.com/node-health-status": "Unhealthy"}},
      "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}},
     "health Unhealthy · taints: node.kubernetes.io/unreachable:NoExecute"),
    ({"spec": {"unschedulable": True, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}, {"key": "x"}]},
      "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
     "NotReady · cordoned · taints: k=v:NoSchedule, x:?"),
    ({"metadata": None, "spec": {"taints": "garbage"},  # malformed parts are skipped, not raised on
      "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
     "Ready Unknown"),
])
def test_node_state(node: dict[str, Any], line: str) -> None:
    assert node_state(node) == line


@pytest.mark.parametrize("reference, path", [
    ({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "llama-ft"},
     "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/llama-ft"),
    ({"apiVersion": "sagemaker.amazonaws.com/v1", "kind": "HyperPodPyTorchJob", "name": "m"},
     "/apis/sagemaker.amazonaws.com/v1/namespaces/team-a/hyperpodpytorchjobs/m"),
    ({"apiVersion": "batch/v1", "kind": "Job", "name": "j"}, "/apis/batch/v1/namespaces/team-a/jobs/j"),
    ({"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload", "name": "w"},
     "/apis/kueue.x-k8s.io/v1beta1/namespaces/team-a/workloads/w"),
    ({"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "r"}, None),  # not walked: reported as named
    ({"apiVersion": "batch/v1", "kind": "Job"}, None),
])
def test_owner_path(reference: dict[str, Any], path: str | None) -> None:
    assert owner_path(reference, "team-a") == path


@pytest.mark.parametrize("job, size, resumes", [
    ({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1}, "Worker": {"replicas": 3}}}},
     4, False),
    ({"kind": "PyTorchJob", "metadata": {"annotations": {"sagemaker.amazonaws.com/enable-job-auto-resume": "true"}},
      "spec": {"pytorchReplicaSpecs": {"Worker": {}}}}, 1, True),  # replicas defaults to 1
    ({"kind": "HyperPodPyTorchJob", "spec": {"runPolicy": {"jobMaxRetryCount": 3},
                                             "replicaSpecs": [{"name": "pods", "replicas": 8}]}}, 8, True),
    ({"kind": "HyperPodPyTorchJob", "spec": {"runPolicy": {"jobMaxRetryCount": 0},
                                             "replicaSpecs": [{"name": "pods", "replicas": 2}]}}, 2, False),
    ({"kind": "Job", "spec": {"parallelism": 5, "completions": 50}}, 5, False),
    ({"kind": "Job", "spec": {}}, 1, False),
    ({"kind": "Deployment", "spec": {"replicas": 3}}, 3, False),
])
def test_size_and_auto_resume(job: dict[str, Any], size: int, resumes: bool) -> None:
    assert (replicas(job), auto_resume(job)) == (size, resumes)


def test_plain_http_only_to_the_local_standin() -> None:
    with pytest.raises(ValueError, match="must be https"):
        KubeApi("http://ABCD.gr7.us-west-2.eks.amazonaws.com", "t")
    assert KubeApi("http://127.0.0.1:8080", "t").port == 8080


@pytest.mark.parametrize("ca_data, why", [
    (None, "no certificate authority for the cluster"),
    (base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n").decode(),
     "bad certificate authority data for the cluster"),
    ("%%% not base64", "bad certificate authority data for the cluster"),
])
def test_bad_certificate_authority(ca_data: str | None, why: str) -> None:
    with pytest.raises(KubeUnavailable, match=why):
        KubeApi("https://ABCD.gr7.us-west-2.eks.amazonaws.com", "t", ca_data=ca_data)
