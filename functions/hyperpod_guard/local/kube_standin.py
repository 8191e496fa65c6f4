"""A local stand-in for an EKS cluster's Kubernetes API server (issue 23's workload reader), for the tests and
the demo: a real HTTP(S) server on 127.0.0.1 that answers GETs from recorded JSON, checks the bearer token, and
can be told to refuse (403), to hang, or be down (a closed port).

A fixture file in local/kube/ maps request targets to answers, e.g.
`{"/api/v1/nodes/n1": {...Node...}, "/api/v1/pods?fieldSelector=spec.nodeName=n1": {...PodList...}}`;
queries match whatever their order and encoding. An unknown target is a 404 with a kube `Status` body.

`token`: a fixed string the client must present, or `EKS_TOKEN` to check a real token the way EKS's
authenticator reads it (eks_token_problem). `serve_as_eks` puts it behind moto's eks:DescribeCluster: the
cluster's endpoint becomes this server (https, with a self-signed certificate whose PEM is the cluster's CA
data), so the reader's whole path runs: DescribeCluster, the CA, the token, TLS, the Kubernetes reads.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "kube"
#: `token=EKS_TOKEN`: accept a token made as `aws eks get-token` makes one (eks_token_problem), not a fixed one
EKS_TOKEN = "<an EKS token>"  # noqa: S105 (a mode, not a secret)
TOKEN = "k8s-aws-v1.stand-in-token"  # noqa: S105 (a test value)
_HOST = "127.0.0.1"


def _key(target: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    path, _, query = target.partition("?")
    return urllib.parse.unquote(path), tuple(sorted(urllib.parse.parse_qsl(query)))


@dataclass(frozen=True)
class Request:
    target: str
    authorization: str | None
    status: int


class KubeStandin:
    def __init__(self, *fixtures: str, token: str = TOKEN, tls: ssl.SSLContext | None = None) -> None:
        self.answers: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        for name in fixtures:
            self.load(name)
        self.token = token
        self.requests: list[Request] = []
        #: TCP connections accepted (a client that keeps its connection alive makes one for many requests)
        self.connections = 0
        #: None: answer from the fixtures; an HTTP status (403, 500): answer that to everything
        self.status: int | None = None
        #: an answer's raw body instead of the fixture's JSON (bad JSON)
        self.raw: bytes | None = None
        self._hang = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            #: headers and body go out in two writes: without this, Nagle's algorithm and the client's delayed
            #: ACK hold the second ~40 ms (an API server written in Go sends at once)
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with standin._lock:
                    standin.connections += 1

            def do_GET(self) -> None:
                status, body = standin._answer(self.path, self.headers.get("Authorization"))
                if standin._hang.is_set():  # hold the connection open, say nothing, until the test ends
                    standin._released.wait(timeout=30)
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer((_HOST, 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:  # https, as the EKS endpoint (a server-side context with the stand-in's certificate)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="kube-standin", daemon=True)

    def load(self, name: str) -> None:
        for target, answer in json.loads((FIXTURES / name).read_text()).items():
            self.answers[_key(target)] = answer

    def _answer(self, target: str, authorization: str | None) -> tuple[int, bytes]:
        answer = self.answers.get(_key(target))
        if not self._authorized(authorization):
            status, answer = 401, _status(401, "Unauthorized", "Unauthorized")
        elif self.status is not None:
            status, answer = self.status, _status(self.status, "Forbidden", f"GET {target} is forbidden")
        elif answer is None:
            status, answer = 404, _status(404, "NotFound", f"{target} not found")
        else:
            status = 200
        with self._lock:
            self.requests.append(Request(target, authorization, status))
        body = self.raw if status == 200 and self.raw is not None else json.dumps(answer).encode()
        return status, body

    def _authorized(self, authorization: str | None) -> bool:
        if self.token == EKS_TOKEN:
            return authorization is not None and eks_token_problem(authorization.removeprefix("Bearer ")) is None
        return authorization == f"Bearer {self.token}"

    def hang(self) -> None:
        self._hang.set()

    @property
    def url(self) -> str:
        return f"{self._scheme}://{_HOST}:{self._server.server_port}"

    @property
    def paths(self) -> list[str]:
        return [urllib.parse.unquote(r.target) for r in self.requests]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def down_url() -> str:
    """The URL of a port nothing listens on (bound, then closed): connection refused."""
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        port = sock.getsockname()[1]
    return f"http://{_HOST}:{port}"


def running(*fixtures: str, token: str = TOKEN, tls: ssl.SSLContext | None = None) -> Iterator[KubeStandin]:
    """A started stand-in, stopped when the generator closes (a pytest fixture's body)."""
    standin = KubeStandin(*(fixtures or ("cluster.json",)), token=token, tls=tls)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()





def eks_token_problem(token: str) -> str | None:
    """What is wrong with `token` as EKS's authenticator reads one, or None: `k8s-aws-v1.` and the unpadded
    base64url of a presigned STS GetCallerIdentity URL whose signature covers `x-k8s-aws-id`."""
    prefix = "k8s-aws-v1."
    if not token.startswith(prefix):
        return "no k8s-aws-v1. prefix"
    body = token.removeprefix(prefix)
    try:
        url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except ValueError:
        return "not base64url"
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    if parts.scheme not in ("https", "http"):  # http: STS is moto's, in the tests and the demo
        return f"not a URL: {url[:80]}"
    if query.get("Action") != "GetCallerIdentity":
        return "not GetCallerIdentity"
    if "x-k8s-aws-id" not in query.get("X-Amz-SignedHeaders", "").split(";"):
        return "the cluster header is not signed"
    if not query.get("X-Amz-Signature"):
        return "not signed"
    return None


def certificate() -> tuple[bytes, bytes]:
    """A fresh self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(_HOST))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def self_signed() -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate, and that certificate as an EKS
    cluster's `certificateAuthority.data` (base64 of the PEM)."""
    import tempfile

    cert_pem, key_pem = certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context, base64.b64encode(cert_pem).decode()


def serve_as_eks(endpoint: str, ca_data: str, *, name: str, account: str, region: str) -> str:
    """Make `name` an EKS cluster in moto (same process) whose DescribeCluster gives `endpoint` and `ca_data`;
    returns its ARN (what a HyperPod cluster's Orchestrator.Eks.ClusterArn names)."""
    from moto.eks.models import eks_backends

    backend = eks_backends[account][region]
    if name not in backend.clusters:
        backend.create_cluster(name=name, role_arn=f"arn:aws:iam::{account}:role/eks-cluster",
                               resources_vpc_config={})
    cluster = backend.clusters[name]
    cluster.endpoint, cluster.certificate_authority = endpoint, {"data": ca_data}
    return str(cluster.arn)
