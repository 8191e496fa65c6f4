"""The work on an EKS-orchestrated HyperPod node (issue 23), read from the cluster's Kubernetes API.

For one node: its node object (HyperPod's health label, taints, readiness) in a line; the pods scheduled on it,
less DaemonSet pods (every node has them) and finished pods; each pod's controller walked up its
ownerReferences to the job (Pod -> PyTorchJob, HyperPodPyTorchJob, batch Job, ReplicaSet -> Deployment, ...),
each owner read once per call. Per job: namespace, Kueue queue (label `kueue.x-k8s.io/queue-name` on the job or
pod), priority class, whether HyperPod resumes it by itself, and its pods on this node against its replicas.

The job's size comes from its spec (sum of the replica specs), not from listing its pods: one GET fewer per
job, no reliance on which label each operator puts on its pods, and it counts the pods the job wants (pending
ones too), which is what "how much of this job does the node hit" asks.

Only the node and the pod list are essential: a failure there (`KubeUnavailable`) makes the workload unknown
(`workload_of`). An owner that cannot be read (403: the view access entry does not cover that CRD; 404: gone
since the pod was listed) is reported from the pod's ownerReference, its size and auto-resume unknown.

`KubeApi` is a small stdlib client (no `kubernetes` package in the Lambda): https with the cluster's CA, a
bearer token (`eks_token.eks_token`), and one time budget for all its requests so the alert is never held
longer than that.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperpod_guard.workload.model import Job, Workload

#: HyperPod's health-monitoring label on the node (Schedulable, Unschedulable, UnschedulablePendingReboot, ...)
HEALTH_LABEL = "sagemaker.amazonaws.com/node-health-status"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
#: the HyperPod training operator's auto-resume switch on a Kubeflow job (value "true")
AUTO_RESUME_ANNOTATION = "sagemaker.amazonaws.com/enable-job-auto-resume"
FORBIDDEN = "forbidden: grant the view access entry"
#: the owner kinds walked up (read), by the path segment their API serves them under; an owner of another
#: kind (a CRD we do not know) is reported from the reference, unread
PLURALS: Mapping[str, str] = {
    "PyTorchJob": "pytorchjobs",
    "HyperPodPyTorchJob": "hyperpodpytorchjobs",
    "MPIJob": "mpijobs",
    "TFJob": "tfjobs",
    "Job": "jobs",
    "JobSet": "jobsets",
    "Workload": "workloads",
    "ReplicaSet": "replicasets",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
}
#: owner chains are short (Pod -> ReplicaSet -> Deployment); this bounds a malformed or cyclic one
_MAX_DEPTH = 4
_LOCAL_HOSTS = frozenset({"127.0.0.1"})


class KubeUnavailable(Exception):
    """The Kubernetes API could not answer; `why` is short and says what to do when something can be done."""

    def __init__(self, why: str, status: int | None = None) -> None:
        super().__init__(why)
        self.why = why
        #: the HTTP status when the API answered (401, 403, 404, 5xx); None for transport failures
        self.status = status


class KubeApi:
    """GETs against one cluster's API server, over one kept-alive connection (a node's reads are several GETs:
    one TLS handshake, not one each). `timeout` is the total seconds for all requests of this client,
    counted from its first request: each request gets what is left of it as its socket timeout (which bounds
    each connect and each read, so a server trickling bytes could stretch it; one hanging is cut off). One
    client per thread; `close()` when done."""

    def __init__(self, endpoint: str, token: str, *, ca_data: str | None = None, timeout: float = 3.0) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme == "https":
            self._context: ssl.SSLContext | None = _ssl_context(ca_data)
        elif url.scheme == "http" and url.hostname in _LOCAL_HOSTS:  # the local stand-in in tests only
            self._context = None
        else:
            raise ValueError(f"the Kubernetes endpoint must be https (got {endpoint!r})")
        self.host = url.hostname or ""
        self.port = url.port
        self._token = token
        self.timeout = timeout
        self._deadline: float | None = None
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, left: float) -> http.client.HTTPConnection:
        """The open connection with `left` seconds as its timeout, or a new one."""
        connection = self._connection
        if connection is None:
            connection = (http.client.HTTPSConnection(self.host, self.port, timeout=left, context=self._context)
                          if self._context else http.client.HTTPConnection(self.host, self.port, timeout=left))
            self._connection = connection
        connection.timeout = left
        if connection.sock is not None:
            connection.sock.settimeout(left)
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON object at `path`; `KubeUnavailable` for anything but a 200 with a JSON object."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise KubeUnavailable(f"timeout: no answer within {self.timeout:g}s")
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            connection = self._connect(left)
            connection.request("GET", target, headers={"Authorization": f"Bearer {self._token}",
                                                       "Accept": "application/json"})
            response = connection.getresponse()
            status, body = response.status, response.read()
            if response.will_close:
                self.close()
        except ConnectionRefusedError as exc:
            raise self._failed(f"connection refused by {self.host}") from exc
        except TimeoutError as exc:  # socket.timeout too (an alias)
            raise self._failed(f"timeout: no answer within {self.timeout:g}s") from exc
        except ssl.SSLError as exc:  # before OSError: it is one
            raise self._failed(f"TLS failure: {exc.reason or exc}") from exc
        except (OSError, http.client.HTTPException) as exc:  # unreachable, reset, DNS, malformed HTTP
            raise self._failed(f"unreachable: {exc or type(exc).__name__}") from exc
        if status == 401:
            raise KubeUnavailable("unauthorized: the cluster refused the token; grant the view access entry", status)
        if status == 403:
            raise KubeUnavailable(FORBIDDEN, status)
        if status == 404:
            raise KubeUnavailable(f"not found: {path}", status)
        if status != 200:
            raise KubeUnavailable(f"HTTP {status} for {path}", status)
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise KubeUnavailable(f"bad JSON for {path}") from exc
        if not isinstance(answer, dict):
            raise KubeUnavailable(f"bad JSON for {path}: not an object")
        return answer

    def _failed(self, why: str) -> KubeUnavailable:
        """A transport failure: the connection is dropped (its state is unknown), the next GET opens another."""
        self.close()
        return KubeUnavailable(why)


def _ssl_context(ca_data: str | None) -> ssl.SSLContext:
    """Verify the API server against the cluster's own CA (eks:DescribeCluster certificateAuthority.data, the
    base64 of a PEM bundle), not the system's: the EKS endpoint's certificate is signed by the cluster's CA."""
    if not ca_data:
        raise KubeUnavailable("no certificate authority for the cluster")
    try:
        return ssl.create_default_context(cadata=base64.b64decode(ca_data).decode())
    except (ValueError, ssl.SSLError) as exc:
        raise KubeUnavailable("bad certificate authority data for the cluster") from exc


def workload_of(api: KubeApi, node_name: str) -> Workload:
    """`read_eks_workload`, or a Workload that says why it is unknown: the alert goes out either way. Closes
    `api`'s connection."""
    try:
        return read_eks_workload(api, node_name)
    except KubeUnavailable as exc:
        return Workload(node_name, unknown=exc.why)
    finally:
        api.close()


def read_eks_workload(api: KubeApi, node_name: str) -> Workload:
    """The jobs on `node_name`, the node's state; raises only `KubeUnavailable` (node or pods unreadable)."""
    quoted = urllib.parse.quote(node_name, safe="")
    try:
        node = api.get(f"/api/v1/nodes/{quoted}")
    except KubeUnavailable as exc:
        if exc.status == 404:
            raise KubeUnavailable(f"node {node_name} not found", 404) from exc
        raise
    pods = api.get("/api/v1/pods", {"fieldSelector": f"spec.nodeName={node_name}"})
    owners = _Owners(api)
    found: dict[tuple[str, str, str], _Found] = {}
    for pod in _dicts(pods.get("items")):
        if not _counts(pod):
            continue
        top = owners.top(pod)
        entry = found.setdefault((top.namespace, top.kind, top.name), _Found(top, pod))
        entry.on_node += 1
    jobs = tuple(sorted((entry.job() for entry in found.values()), key=lambda j: (j.namespace or "", j.name, j.kind)))
    return Workload(node_name, jobs, node_state=node_state(node))


def node_state(node: Mapping[str, Any]) -> str:
    """The node in a line: HyperPod's health label, readiness, cordon, taints, e.g.
    "health Unhealthy · taints: node.kubernetes.io/unreachable:NoExecute"."""
    metadata, spec = _dict(node.get("metadata")), _dict(node.get("spec"))
    parts: list[str] = []
    health = _dict(metadata.get("labels")).get(HEALTH_LABEL)
    if health:
        parts.append(f"health {health}")
    ready = next((c.get("status") for c in _dicts(_dict(node.get("status")).get("conditions"))
                  if c.get("type") == "Ready"), None)
    if ready is not None and ready != "True":
        parts.append("NotReady" if ready == "False" else f"Ready {ready}")
    if spec.get("unschedulable"):
        parts.append("cordoned")
    taints = [_taint(t) for t in _dicts(spec.get("taints"))]
    if taints:
        parts.append("taints: " + ", ".join(taints))
    return " · ".join(parts) or "Ready"


def _taint(taint: Mapping[str, Any]) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key', '?')}{value}:{taint.get('effect', '?')}"


def owner_path(reference: Mapping[str, Any], namespace: str) -> str | None:
    """The GET path of an owner from its reference (apiVersion, kind, name); None for a kind not walked."""
    plural = PLURALS.get(str(reference.get("kind")))
    api_version, name = str(reference.get("apiVersion", "")), reference.get("name")
    if plural is None or not name or not api_version:
        return None
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    quote = urllib.parse.quote
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}/{quote(str(name), safe='')}"


def _counts(pod: Mapping[str, Any]) -> bool:
    """A pod that is work on the node: not a DaemonSet's (every node has those), not finished."""
    if _dict(pod.get("status")).get("phase") in ("Succeeded", "Failed"):
        return False
    return not any(ref.get("kind") == "DaemonSet" for ref in _dicts(_dict(pod.get("metadata")).get("ownerReferences")))


@dataclass
class _Top:
    """The top of a pod's owner chain: the object itself when it was read, else what the reference says."""

    kind: str
    name: str
    namespace: str
    obj: Mapping[str, Any] | None


@dataclass
class _Found:
    top: _Top
    #: the first pod seen of the job: its labels and priority class stand in for the job's missing ones
    pod: Mapping[str, Any]
    on_node: int = field(default=0)

    def job(self) -> Job:
        pod_meta, pod_spec = _dict(self.pod.get("metadata")), _dict(self.pod.get("spec"))
        pod_labels = _strings(pod_meta.get("labels"))
        obj = self.top.obj
        labels = _strings(_dict(obj.get("metadata")).get("labels")) if obj is not None else {}
        bare = self.top.kind == "Pod"
        return Job(
            name=self.top.name, kind=self.top.kind, namespace=self.top.namespace,
            queue=labels.get(QUEUE_LABEL) or pod_labels.get(QUEUE_LABEL),
            priority_class=(pod_spec.get("priorityClassName") or labels.get(KUEUE_PRIORITY_LABEL)
                            or pod_labels.get(KUEUE_PRIORITY_LABEL)),
            on_node=self.on_node,
            total=self.on_node if bare else (replicas(obj) if obj is not None else None),
            auto_resume=False if bare else (auto_resume(obj) if obj is not None else None),
            labels=pod_labels if bare else labels,
        )


class _Owners:
    """Walks pods up their controllers; each owner is read at most once per call (many pods, one job)."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._read: dict[str, Mapping[str, Any] | None] = {}

    def top(self, pod: Mapping[str, Any]) -> _Top:
        metadata = _dict(pod.get("metadata"))
        namespace = str(metadata.get("namespace", ""))
        top = _Top("Pod", str(metadata.get("name", "?")), namespace, pod)
        current: Mapping[str, Any] = pod
        for _ in range(_MAX_DEPTH):
            reference = _controller(current)
            if reference is None:
                break
            top = _Top(str(reference.get("kind", "?")), str(reference.get("name", "?")), namespace, None)
            path = owner_path(reference, namespace)
            owner = self._get(path) if path else None
            if owner is None:  # a kind we do not walk, or unreadable: report it as the reference names it
                break
            top.obj = current = owner
        return top

    def _get(self, path: str) -> Mapping[str, Any] | None:
        if path not in self._read:
            try:
                self._read[path] = self._api.get(path)
            except KubeUnavailable as exc:
                if exc.status not in (403, 404):  # the API itself failed (timeout, down): the whole read fails
                    raise
                self._read[path] = None
        return self._read[path]


def _controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The managing owner (controller: true), else the only owner."""
    references = _dicts(_dict(obj.get("metadata")).get("ownerReferences"))
    return next((r for r in references if r.get("controller")), references[0] if len(references) == 1 else None)


def replicas(job: Mapping[str, Any]) -> int:
    """The pods a job runs at once, from its spec: Kubeflow's `*ReplicaSpecs` maps (Master + Worker),
    HyperPodPyTorchJob's `replicaSpecs` list, a batch Job's parallelism, a ReplicaSet/Deployment's replicas."""
    spec = _dict(job.get("spec"))
    total = 0
    for key, value in spec.items():
        if key.endswith("ReplicaSpecs") or key == "replicaSpecs":
            groups = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
            total += sum(_int(_dict(group).get("replicas"), 1) for group in groups)
    if total:
        return total
    if job.get("kind") == "Job":
        return _int(spec.get("parallelism"), 1)
    return _int(spec.get("replicas"), 0)


def auto_resume(job: Mapping[str, Any]) -> bool:
    """Whether HyperPod restarts the job by itself: HyperPodPyTorchJob's spec.runPolicy.jobMaxRetryCount > 0,
    or the training operator's annotation on a Kubeflow job."""
    if _int(_dict(_dict(job.get("spec")).get("runPolicy")).get("jobMaxRetryCount"), 0) > 0:
        return True
    return str(_dict(_dict(job.get("metadata")).get("annotations")).get(AUTO_RESUME_ANNOTATION, "")).lower() == "true"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
