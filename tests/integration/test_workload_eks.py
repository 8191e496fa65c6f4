"""The EKS workload reader (issue 23, workload/eks.py) against a real local HTTP server answering recorded
Kubernetes API JSON (local/kube_standin.py, local/kube/cluster.json): what a node alert hits, and
every way the read fails turned into "workload unknown: <why>"."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hyperpod_guard.workload.eks import KubeApi, KubeUnavailable, read_eks_workload, workload_of
from hyperpod_guard.workload.model import Job, Workload
from tests.kube_standin import TOKEN, KubeStandin, down_url, kube  # noqa: F401

BUSY = "hyperpod-i-0a1b2c3d4e5f60001"
QUIET = "hyperpod-i-0a1b2c3d4e5f60002"


def api(kube: KubeStandin, *, token: str = TOKEN, timeout: float = 3.0) -> KubeApi:
    return KubeApi(kube.url, token, timeout=timeout)


def test_busy_node_jobs(kube: KubeStandin) -> None:
    workload = workload_of(api(kube), BUSY)

    assert workload.unknown is None
    assert workload.node_state == ("health Unhealthy · Ready Unknown · cordoned · taints: "
                                   "node.kubernetes.io/unreachable:NoExecute, "
                                   "sagemaker.amazonaws.com/node-health-status=Unschedulable:NoSchedule")
    jobs = {job.name: job for job in workload.jobs}
    # the DaemonSet pod (aws-node) and the Succeeded pod (eval-old) are not work on the node
    assert sorted(jobs) == ["debug-shell", "gone-job", "llama-ft", "mistral-pt", "tensorboard"]
    assert jobs["llama-ft"] == Job(
        name="llama-ft", kind="PyTorchJob", namespace="team-a", queue="team-a-localqueue",
        priority_class="training-priority", on_node=2, total=4, auto_resume=True,
        labels={"kueue.x-k8s.io/queue-name": "team-a-localqueue", "kueue.x-k8s.io/priority-class": "training-priority"})
    hyperpod = jobs["mistral-pt"]
    assert (hyperpod.kind, hyperpod.namespace, hyperpod.queue, hyperpod.priority_class) == (
        "HyperPodPyTorchJob", "team-b", "hyperpod-ns-team-b-localqueue", "inference-priority")
    assert (hyperpod.on_node, hyperpod.total, hyperpod.auto_resume) == (1, 8, True)
    bare = jobs["debug-shell"]
    assert (bare.kind, bare.namespace, bare.on_node, bare.total, bare.auto_resume, bare.queue) == (
        "Pod", "default", 1, 1, False, None)
    # Pod -> ReplicaSet -> Deployment: the Deployment is the job
    tensorboard = jobs["tensorboard"]
    assert (tensorboard.kind, tensorboard.on_node, tensorboard.total, tensorboard.auto_resume) == (
        "Deployment", 1, 2, False)
    # the owner was deleted after its pod was listed (404): reported from the reference, size unknown
    gone = jobs["gone-job"]
    assert (gone.kind, gone.namespace, gone.on_node, gone.total, gone.auto_resume) == ("Job", "team-c", 1, None, None)


def test_each_owner_read_once_with_the_token(kube: KubeStandin) -> None:
    read_eks_workload(api(kube), BUSY)

    assert kube.paths == [
        f"/api/v1/nodes/{BUSY}",
        f"/api/v1/pods?fieldSelector=spec.nodeName={BUSY}",
        "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/llama-ft",  # two pods, one read
        "/apis/sagemaker.amazonaws.com/v1/namespaces/team-b/hyperpodpytorchjobs/mistral-pt",
        "/apis/apps/v1/namespaces/team-a/replicasets/tensorboard-7d9f6c5b8",
        "/apis/apps/v1/namespaces/team-a/deployments/tensorboard",
        "/apis/batch/v1/namespaces/team-c/jobs/gone-job",
    ]
    assert {r.authorization for r in kube.requests} == {f"Bearer {TOKEN}"}


def test_one_connection_for_a_node_and_a_new_one_after_a_failure(kube: KubeStandin) -> None:
    """A node's seven GETs share one kept-alive connection (one TLS handshake, not seven); after a failed
    exchange the connection is dropped and the next GET opens another."""
    client = api(kube)
    workload_of(client, BUSY)
    assert (len(kube.requests), kube.connections) == (7, 1)

    client = api(kube)
    client.get(f"/api/v1/nodes/{BUSY}")
    kube.status = 500
    with pytest.raises(KubeUnavailable):
        client.get(f"/api/v1/nodes/{BUSY}")  # an HTTP error keeps the connection: it answered in full
    kube.status = None
    client.get(f"/api/v1/nodes/{BUSY}")
    assert kube.connections == 2
    client.close()


def test_quiet_node(kube: KubeStandin) -> None:
    assert workload_of(api(kube), QUIET) == Workload(QUIET, (), node_state="health Schedulable")


def test_wrong_token_unknown(kube: KubeStandin) -> None:
    workload = workload_of(api(kube, token="k8s-aws-v1.other"), BUSY)  # noqa: S106 (a test value)

    assert workload == Workload(BUSY, unknown="unauthorized: the cluster refused the token; "
                                              "grant the view access entry")
    assert [r.status for r in kube.requests] == [401]


def test_forbidden_unknown(kube: KubeStandin) -> None:
    kube.status = 403

    assert workload_of(api(kube), BUSY) == Workload(BUSY, unknown="forbidden: grant the view access entry")


def test_node_not_found(kube: KubeStandin) -> None:
    workload = workload_of(api(kube), "hyperpod-i-0ffffffffffffffff")

    assert workload == Workload("hyperpod-i-0ffffffffffffffff",
                                unknown="node hyperpod-i-0ffffffffffffffff not found")
    assert len(kube.requests) == 1  # no pod list for a node that is gone


def test_api_down_unknown() -> None:
    workload = workload_of(KubeApi(down_url(), TOKEN, timeout=3.0), BUSY)

    assert workload.jobs == ()
    assert workload.unknown == "connection refused by 127.0.0.1"


def test_hanging_api_unknown(kube: KubeStandin) -> None:
    kube.hang()

    workload = workload_of(api(kube, timeout=0.2), BUSY)  # returns (the stand-in would hold it 30s)

    assert workload == Workload(BUSY, unknown="timeout: no answer within 0.2s")
    assert len(kube.requests) == 1


def test_bad_json_unknown(kube: KubeStandin) -> None:
    kube.raw = b"<html>gateway</html>"

    workload = workload_of(api(kube), BUSY)

    assert workload.unknown == f"bad JSON for /api/v1/nodes/{BUSY}"


def test_pod_list_failure_is_unknown_but_owner_failure_is_not(kube: KubeStandin) -> None:
    """The node and its pods are the read; an owner is detail (its 404 above did not fail the read), but a
    server error on the pod list does."""
    del kube.answers[("/api/v1/pods", (("fieldSelector", f"spec.nodeName={BUSY}"),))]

    with pytest.raises(KubeUnavailable) as raised:
        read_eks_workload(api(kube), BUSY)

    assert (raised.value.status, raised.value.why) == (404, "not found: /api/v1/pods")


def _certificate_authority(tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    """A cluster CA (its PEM in base64, as eks:DescribeCluster certificateAuthority.data gives it) and a server
    context whose certificate the CA signed for 127.0.0.1, as an EKS endpoint's is for its host name."""
    now = datetime.now(UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
                    signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("kubernetes", ca_key, None, ca_key, True)
    server_cert = certificate("kube-apiserver", server_key, ca_cert.subject, ca_key, False)
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    return base64.b64encode(ca_cert.public_bytes(serialization.Encoding.PEM)).decode(), context


def test_https_with_the_cluster_ca(tmp_path: Path) -> None:
    ca_data, server_context = _certificate_authority(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = _certificate_authority(tmp_path / "other")  # another cluster's CA
    standin = KubeStandin("cluster.json", tls=server_context)
    standin.start()
    try:
        trusted = workload_of(KubeApi(standin.url, TOKEN, ca_data=ca_data), QUIET)
        untrusted = workload_of(KubeApi(standin.url, TOKEN, ca_data=other_ca), QUIET)
    finally:
        standin.stop()

    assert standin.url.startswith("https://")
    assert trusted == Workload(QUIET, (), node_state="health Schedulable")
    assert untrusted.unknown == "TLS failure: CERTIFICATE_VERIFY_FAILED"
