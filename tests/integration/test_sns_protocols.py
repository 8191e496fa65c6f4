"""One publish, one text per subscription protocol (MessageStructure "json"), on moto in server mode:
the SQS subscriber (like the Slack notifier's Lambda subscription and email-json) gets "default", the
JSON body that Notification.model_validate_json reads back; an https subscriber, the protocol of the
Chatbot subscription, gets the Chatbot custom notification (valid against the schema written from
https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html); an http subscriber gets
"default" (the message has no "http" key).

moto delivers http(s) subscriptions for real (moto/sns/models.py: Subscription.publish picks
`structured.get(protocol) or structured["default"]` and POSTs the SNS envelope with `requests`), so the
https subscriber here is a local TLS server whose self-signed certificate `requests` trusts through
REQUESTS_CA_BUNDLE. moto has no email transport: what email subscribers read is the "email" key, held
by tests/unit/test_email.py; here only its presence in what SNS accepted is checked."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from hyperpod_guard.local.kube_standin import certificate
from hyperpod_guard.notify.message import Notification
from hyperpod_guard.notify.sns import SnsPublisher
from tests.chatbot_schema import validate_chatbot
from tests.message_samples import SAMPLES


class Receiver(http.server.ThreadingHTTPServer):
    """An SNS http(s) endpoint on loopback: keeps every POST body (the SNS envelope, JSON)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if isinstance(self.socket, ssl.SSLSocket) else 'http'}://127.0.0.1:{self.server_address[1]}/sns"

    def notifications(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if p.get("Type") == "Notification"]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert, key = certificate()
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path


@pytest.fixture
def receivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Receiver, Receiver]]:
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # moto POSTs with requests, verifying TLS
    https, plain = Receiver(tls), Receiver()
    try:
        yield https, plain
    finally:
        https.stop()
        plain.stop()


@pytest.mark.parametrize("kind", ["firing", "resolved", "grouped"])
def test_each_protocol_gets_its_own_text(aws: str, receivers: tuple[Receiver, Receiver], kind: str) -> None:
    https, plain = receivers
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-copy")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    sns.subscribe(TopicArn=topic, Protocol="https", Endpoint=https.url)
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=plain.url)

    notification = SAMPLES[kind]
    SnsPublisher(topic, sns).publish(notification)

    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == notification.subject
    again = Notification.model_validate_json(envelope["Message"])  # what the Slack notifier reads
    assert again == notification
    assert json.loads(envelope["Message"])["text"] == notification.text()

    (chat,) = https.notifications()
    payload = json.loads(chat["Message"])
    validate_chatbot(payload)
    assert payload["metadata"]["threadId"] == notification.items[0].finding.fingerprint
    assert payload["metadata"]["summary"] == notification.preview

    (other,) = plain.notifications()  # no "http" key: the default
    assert Notification.model_validate_json(other["Message"]) == notification


def test_what_sns_accepted_holds_the_email_text(aws: str) -> None:
    """moto keeps no email transport; the published per-protocol message is what SNS would send."""
    published: list[dict[str, Any]] = []
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.meta.events.register("before-call.sns.Publish", lambda params, **_: published.append(params["body"]))
    SnsPublisher(topic, sns).publish(SAMPLES["resolved"])
    (body,) = published
    assert body["MessageStructure"] == "json"
    structured = json.loads(body["Message"])
    assert structured["email"] == SAMPLES["resolved"].text()
    assert structured["email"].splitlines()[0] == SAMPLES["resolved"].preview
