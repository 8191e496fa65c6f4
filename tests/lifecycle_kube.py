"""The Kubernetes API behind the lifecycle model's cluster (issue 23's blast radius), for the cases that turn the
rules' `workload` on (tests/integration/test_lifecycle_model.py, I13).

The model's cluster is EKS-orchestrated (`Orchestrator.Eks.ClusterArn`, ClusterState.describe_cluster): its EKS
cluster `batch-infer-eks` is served by moto's eks:DescribeCluster with the endpoint and CA of a local Kubernetes
API stand-in (local/kube_standin.py) over TLS with a self-signed certificate, which accepts only a token made as
`aws eks get-token` makes one. Nothing of the reader is mocked: DescribeCluster, the CA, the token, TLS and the
Kubernetes reads all run, as in tests/integration/test_blast_radius.py.

What the stand-in serves is written here, not taken from a fixture file: each node runs one of JOB_SETS (one pod
per job, each owned by its job, which the API serves too), so the model knows which jobs a read must find. The
API breaks and recovers:
- `forbidden`: it answers 403 to everything (the view access entry was taken away);
- `down`: DescribeCluster gives a closed port (connection refused). The reader keeps an endpoint per process for an
  hour; a closed port behind the same endpoint would need a proxy, so the model makes the endpoint change and
  forgets what the process kept, as a new container would (a warm one would keep reading the old endpoint);
- `ok`: answers again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3

from hyperpod_guard.fleet import Location
from hyperpod_guard.local.kube_standin import EKS_TOKEN, KubeStandin, down_url, self_signed, serve_as_eks
from hyperpod_guard.local.kube_standin import _key as answer_key  # how the stand-in files an answer
from hyperpod_guard.workload import reader

#: the EKS cluster the model's HyperPod cluster is orchestrated by (its name in the scenario's Orchestrator)
EKS_CLUSTER = "batch-infer-eks"
#: a job as the model names it: (kind, namespace, name), as a message's workload item says it
JobKey = tuple[str, str, str]
LLAMA: JobKey = ("PyTorchJob", "team-a", "llama-70b")
MISTRAL: JobKey = ("HyperPodPyTorchJob", "team-b", "mistral-pt")
#: what may run on a node; the owner route takes alerts about a node with a job in OWNER_NAMESPACE
JOB_SETS: dict[str, tuple[JobKey, ...]] = {
    "team-a": (LLAMA,),
    "team-b": (MISTRAL,),
    "shared": (LLAMA, MISTRAL),
    "idle": (),
}
OWNER_NAMESPACE, OWNER_RECEIVER = "team-a", "team-a"
#: the API's states, and words the message's "workload unknown: <why>" must contain in each broken one
API_STATES = ("ok", "forbidden", "down")
WHY: dict[str, tuple[str, ...]] = {"forbidden": ("forbidden",), "down": ("connection refused", "unreachable")}
_API_VERSIONS = {"PyTorchJob": "kubeflow.org/v1", "HyperPodPyTorchJob": "sagemaker.amazonaws.com/v1"}
_PLURALS = {"PyTorchJob": "pytorchjobs", "HyperPodPyTorchJob": "hyperpodpytorchjobs"}


def kube_node(instance: str) -> str:
    """HyperPod's Kubernetes node name of an instance (written out: not taken from the reader it checks)."""
    return f"hyperpod-{instance}"


def eks_arn(where: Location) -> str:
    return f"arn:aws:eks:{where.region}:{where.account}:cluster/{EKS_CLUSTER}"


def _job_object(job: JobKey) -> dict[str, Any]:
    kind, namespace, name = job
    spec: dict[str, Any] = (
        {"pytorchReplicaSpecs": {"Worker": {"replicas": 4}}} if kind == "PyTorchJob"
        else {"replicaSpecs": [{"name": "pods", "replicas": 2}], "runPolicy": {"jobMaxRetryCount": 3}})
    return {"apiVersion": _API_VERSIONS[kind], "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "uid": f"u-{name}", "labels": {"team": namespace}},
            "spec": spec}


def _pod(job: JobKey, node: str) -> dict[str, Any]:
    kind, namespace, name = job
    return {"metadata": {"name": f"{name}-{node[-6:]}-0", "namespace": namespace, "uid": f"p-{name}-{node}",
                         "labels": {"team": namespace},
                         "ownerReferences": [{"apiVersion": _API_VERSIONS[kind], "kind": kind, "name": name,
                                              "uid": f"u-{name}", "controller": True}]},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}}


class KubeCluster:
    """The stand-in, what each node runs, and the API's state; `reset` after each moto reset (it forgets EKS)."""

    def __init__(self, nodes: Mapping[str, str], jobs: Mapping[str, str]) -> None:
        """`nodes`: model name -> instance id; `jobs`: the job set each node runs after a reset."""
        self.nodes, self.initial = dict(nodes), dict(jobs)
        self.tls, self.ca_data = self_signed()
        self.standin = KubeStandin(token=EKS_TOKEN, tls=self.tls)
        for job in {job for jobs_ in JOB_SETS.values() for job in jobs_}:
            kind, namespace, name = job
            path = f"/apis/{_API_VERSIONS[kind]}/namespaces/{namespace}/{_PLURALS[kind]}/{name}"
            self._answer(path, _job_object(job))
        self.jobs: dict[str, str] = {}
        self.api = "ok"
        self.where = Location("", "")

    def __enter__(self) -> KubeCluster:
        self.standin.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.standin.stop()
        reader.forget_endpoints()

    def _answer(self, target: str, answer: Any) -> None:
        self.standin.answers[answer_key(target)] = answer

    def reset(self, where: Location) -> None:
        """A new account: the EKS cluster served again, the API answering, each node its first job set."""
        self.where = where
        for name, jobs in self.initial.items():
            self.run(name, jobs)
        self.set_api("ok")
        # moto serves its first EKS request slowly (half a second: it builds its EKS handlers); made here, not
        # within the reader's 1s timeout, where it would say "timeout" for a cause no deployment has
        boto3.client("eks", region_name=where.region).describe_cluster(name=EKS_CLUSTER)

    def run(self, name: str, jobs: str) -> None:
        """Node `name` runs the job set `jobs` from now on."""
        node = kube_node(self.nodes[name])
        self.jobs[name] = jobs
        self._answer(f"/api/v1/nodes/{node}", {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": node, "labels": {"sagemaker.amazonaws.com/node-health-status": "Schedulable"}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        self._answer(f"/api/v1/pods?fieldSelector=spec.nodeName={node}",
                     {"kind": "PodList", "apiVersion": "v1", "items": [_pod(job, node) for job in JOB_SETS[jobs]]})

    def set_api(self, state: str) -> None:
        """`ok`, `forbidden` (403 to everything) or `down` (DescribeCluster gives a closed port)."""
        assert state in API_STATES, state
        self.api = state
        self.standin.status = 403 if state == "forbidden" else None
        endpoint = down_url().replace("http:", "https:") if state == "down" else self.standin.url
        served = serve_as_eks(endpoint, self.ca_data, name=EKS_CLUSTER, account=self.where.account,
                              region=self.where.region)
        assert served == eks_arn(self.where), f"harness: moto's EKS cluster is {served}, not {eks_arn(self.where)}"
        reader.forget_endpoints()  # a new endpoint: what the process kept is gone (see the module's docstring)

    def expected(self, instance: str) -> tuple[JobKey, ...]:
        """The jobs a read of this node finds now."""
        name = next(n for n, i in self.nodes.items() if i == instance)
        return JOB_SETS[self.jobs[name]]

