"""Slack app mode as synthesised (issue 20, infra/chatops.py): nothing of it in webhook mode; in app mode the
two secrets, the notifier's variables and grants, the interactivity endpoint (Function URL on the `live`
alias, AuthType NONE, reserved concurrency), the actions queue and worker, IAM exactly what each calls,
outputs and alarms; cdk-nag and cfn-lint clean; the context refused when malformed. And the Slack app
manifest. The behaviour: tests/integration/test_chatops.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hyperpod_guard.constants import NAMESPACE, Metric, Service
from hyperpod_guard.ledger_store import IDEMPOTENCY_ACTIONS
from hyperpod_guard.notify.slack_threads import TABLE_ACTIONS as THREAD_ACTIONS
from infra.chatops import (
    ACTIONS_MAX_RECEIVES,
    ACTIONS_RETENTION_S,
    ACTIONS_TABLE_ACTIONS,
    ACTIONS_TIMEOUT_S,
    ACTIONS_VISIBILITY_S,
    ENDPOINT_CONCURRENCY,
)
from infra.config import ConfigError

from tests.integration.test_chatops import chatops  # noqa: F401 (fixture)
from tests.integration.test_remediation import hyperpod  # noqa: F401 (fixture)
from tests.runtime_fixtures import runtime, stack  # noqa: F401 (fixtures)

from .conftest import REPO, make_stack
from .test_stack import (
    ALL_OPTIONS,
    PREFIX,
    RULES_ARNS,
    alarms,
    as_list,
    find,
    function,
    function_statements,
    key,
    live,
    queue,
    resources,
)

APP = {"slackMode": "app", "slackChannels": "default=C0123ABCD,ml-oncall=C0456EFGH"}
CHANNELS = {"default": "C0123ABCD", "ml-oncall": "C0456EFGH"}
CHATOPS_FUNCTIONS = ("slack-interactivity", "slack-actions")
LEADING_KEYS = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["IDEMPOTENCY"]}}


@pytest.fixture(scope="module")
def app(synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return synth(**APP)


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def grants(template: dict[str, Any], name: str) -> set[tuple[str, str, str | None]]:
    """(action, resource, condition) of every Allow of the function's role."""
    return {(action, key(resource), key(s["Condition"]) if "Condition" in s else None)
            for s in function_statements(template, name) if s["Effect"] == "Allow"
            for action in as_list(s["Action"]) for resource in as_list(s["Resource"])}


def secret(template: dict[str, Any], name: str) -> str:
    logical_id, properties = find(template, "AWS::SecretsManager::Secret", Name=f"{PREFIX}/{name}")
    assert "SecretString" not in properties  # created with a generated placeholder: the value is never here
    return logical_id


# --- webhook mode: nothing of it -------------------------------------------------------------------------


@pytest.mark.parametrize("context", [{}, ALL_OPTIONS, {"slackMode": "webhook"}], ids=["default", "all-options",
                                                                                      "webhook"])
def test_webhook_mode_creates_none_of_it(synth: Callable[..., dict[str, Any]], context: dict[str, Any]) -> None:
    template = synth(**context)
    names = {r["Properties"].get("FunctionName") for r in resources(template, "AWS::Lambda::Function").values()}
    assert not names & {f"{PREFIX}-{n}" for n in CHATOPS_FUNCTIONS}
    assert resources(template, "AWS::Lambda::Url") == {}
    queues = {r["Properties"]["QueueName"] for r in resources(template, "AWS::SQS::Queue").values()}
    assert not {q for q in queues if "slack-actions" in q}
    secrets = {r["Properties"]["Name"] for r in resources(template, "AWS::SecretsManager::Secret").values()}
    assert not secrets & {f"{PREFIX}/slack-bot-token", f"{PREFIX}/slack-signing-secret"}
    env = function(template, "slack-notifier")[1]["Environment"]["Variables"]
    assert not {"SLACK_MODE", "SLACK_BOT_TOKEN_SECRET", "SLACK_CHANNELS"} & env.keys()
    assert not {"SlackInteractivityUrl", "SlackBotTokenSecret"} & template.get("Outputs", {}).keys()


# --- app mode ----------------------------------------------------------------------------------------------


def test_the_notifier_posts_as_the_app(app: dict[str, Any]) -> None:
    env = function(app, "slack-notifier")[1]["Environment"]["Variables"]
    assert (env["SLACK_MODE"], env["SLACK_BOT_TOKEN_SECRET"]) == ("app", f"{PREFIX}/slack-bot-token")
    assert json.loads(env["SLACK_CHANNELS"]) == CHANNELS
    token = secret(app, "slack-bot-token")
    table, _ = find(app, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    granted = grants(app, "slack-notifier")
    assert ("secretsmanager:GetSecretValue", key({"Ref": token}), None) in granted
    # where each alert's messages are (ThreadStore), beside its idempotency records
    assert {(a, r) for a, r, c in granted if r == key(_arn(table)) and c is None} == {
        (a, key(_arn(table))) for a in set(THREAD_ACTIONS) - {"dynamodb:Query"}}


def test_the_endpoint_is_a_function_url_on_the_live_alias(app: dict[str, Any]) -> None:
    fn_id, fn = function(app, "slack-interactivity")
    alias_id, _ = live(app, "slack-interactivity")
    ((url_id, url),) = resources(app, "AWS::Lambda::Url").items()
    properties = url["Properties"]
    # Slack cannot sign AWS requests: its own signature, checked first by the handler, is the authentication
    assert (properties["AuthType"], properties["Qualifier"], properties["TargetFunctionArn"]) == (
        "NONE", "live", _arn(fn_id))
    assert alias_id in url.get("DependsOn", [])
    permissions = [r["Properties"] for r in resources(app, "AWS::Lambda::Permission").values()
                   if r["Properties"]["FunctionName"] == {"Ref": alias_id}]
    assert sorted((p["Action"], p["Principal"], p.get("FunctionUrlAuthType"), p.get("InvokedViaFunctionUrl"))
                  for p in permissions) == [("lambda:InvokeFunction", "*", None, True),
                                            ("lambda:InvokeFunctionUrl", "*", "NONE", None)]
    assert fn["ReservedConcurrentExecutions"] == ENDPOINT_CONCURRENCY
    assert (fn["Handler"], fn["Timeout"]) == ("hyperpod_guard.handlers.slack_interactivity.handler", 10)
    assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert app["Outputs"]["SlackInteractivityUrl"]["Value"] == {"Fn::GetAtt": [url_id, "FunctionUrl"]}
    assert app["Outputs"]["SlackBotTokenSecret"]["Value"] == f"{PREFIX}/slack-bot-token"
    assert app["Outputs"]["SlackSigningSecretSecret"]["Value"] == f"{PREFIX}/slack-signing-secret"


def test_the_endpoint_reads_its_secret_and_queues_nothing_else(app: dict[str, Any]) -> None:
    signing = secret(app, "slack-signing-secret")
    actions_queue, _ = queue(app, "slack-actions")
    env = function(app, "slack-interactivity")[1]["Environment"]["Variables"]
    assert env["SLACK_SIGNING_SECRET_SECRET"] == f"{PREFIX}/slack-signing-secret"
    assert env["SLACK_ACTIONS_QUEUE_URL"] == {"Ref": actions_queue}
    assert grants(app, "slack-interactivity") == {
        ("secretsmanager:GetSecretValue", key({"Ref": signing}), None),
        ("sqs:SendMessage", key(_arn(actions_queue)), None)}


def test_the_actions_worker_may_do_exactly_what_it_calls(app: dict[str, Any]) -> None:
    table, _ = find(app, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    actions_queue, _ = queue(app, "slack-actions")
    work, _ = queue(app, "work")
    token = secret(app, "slack-bot-token")
    expected = {(a, key(_arn(table)), None) for a in {*ACTIONS_TABLE_ACTIONS, *THREAD_ACTIONS}}
    expected |= {(a, key(_arn(table)), key(LEADING_KEYS)) for a in IDEMPOTENCY_ACTIONS}
    expected |= {("ssm:GetParametersByPath", key(arn), None) for arn in RULES_ARNS}
    expected |= {("secretsmanager:GetSecretValue", key({"Ref": token}), None),
                 ("sqs:SendMessage", key(_arn(work)), None)}
    expected |= {(a, key(_arn(actions_queue)), None) for a in (
        "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        "sqs:ReceiveMessage")}
    assert grants(app, "slack-actions") == expected
    # it never reads or changes a cluster, nor publishes alerts
    assert not [a for a, _, _ in expected if a.startswith(("sagemaker:", "sns:", "kms:"))]
    env = function(app, "slack-actions")[1]["Environment"]["Variables"]
    assert (env["SLACK_MODE"], env["SLACK_BOT_TOKEN_SECRET"], env["RULES_PATH"]) == (
        "app", f"{PREFIX}/slack-bot-token", f"/{PREFIX}/rules")
    assert env["WORK_QUEUE_URL"] == {"Ref": work} and env["TABLE_NAME"] == {"Ref": table}


def test_the_actions_queue_redrives_and_feeds_the_worker_alias(app: dict[str, Any]) -> None:
    queue_id, properties = queue(app, "slack-actions")
    dlq_id, dlq = queue(app, "slack-actions-dlq")
    assert properties["RedrivePolicy"] == {"deadLetterTargetArn": _arn(dlq_id), "maxReceiveCount": ACTIONS_MAX_RECEIVES}
    assert properties["VisibilityTimeout"] == ACTIONS_VISIBILITY_S >= 6 * ACTIONS_TIMEOUT_S
    assert properties["MessageRetentionPeriod"] == ACTIONS_RETENTION_S > ACTIONS_MAX_RECEIVES * ACTIONS_VISIBILITY_S
    assert properties["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    alias, _ = live(app, "slack-actions")
    (mapping,) = [r["Properties"] for r in resources(app, "AWS::Lambda::EventSourceMapping").values()
                  if r["Properties"]["EventSourceArn"] == _arn(queue_id)]
    assert mapping["FunctionName"] == {"Fn::Join": ["", [
        {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": alias}]}]}, ":live"]]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_it_is_alarmed(app: dict[str, Any]) -> None:
    found = alarms(app)
    assert found[f"{PREFIX}-slack-interactivity-errors"]["MetricName"] == "Errors"
    assert found[f"{PREFIX}-slack-actions-errors"]["MetricName"] == "Errors"
    assert found[f"{PREFIX}-slack-actions-dlq-depth"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    refused = found[f"{PREFIX}-slack-signatures-refused"]
    assert (refused["Namespace"], refused["MetricName"], refused["Dimensions"]) == (
        NAMESPACE, Metric.CHATOPS_SIGNATURES_REFUSED, [{"Name": "service", "Value": Service.SLACK_INTERACTIVITY}])
    assert f"{PREFIX}-slack-actions-depth" not in found  # busy by design; its DLQ is alarmed


def test_the_dashboard_shows_the_clicks(app: dict[str, Any]) -> None:
    from .test_dashboard_metrics import read_metrics

    ours = {(metric, (dimensions or {}).get("service")) for namespace, metric, dimensions in read_metrics(app)
            if namespace == NAMESPACE}
    assert {(Metric.CHATOPS_CLICKS, Service.SLACK_INTERACTIVITY), (Metric.CHATOPS_DONE, Service.SLACK_ACTIONS),
            (Metric.CHATOPS_REFUSED, Service.SLACK_ACTIONS)} <= ours


# cdk-nag and cfn-lint: tests/infra/test_stack.py (its LINTED variants include app mode)


def test_channels_as_json(synth: Callable[..., dict[str, Any]]) -> None:
    template = synth(slackMode="app", slackChannels=json.dumps({"default": "C0123ABCD"}))
    env = function(template, "slack-notifier")[1]["Environment"]["Variables"]
    assert json.loads(env["SLACK_CHANNELS"]) == {"default": "C0123ABCD"}


@pytest.mark.parametrize(("context", "named"), [
    ({"slackMode": "chat"}, "'slackMode'"),
    ({"slackMode": "app"}, "'default' receiver's channel"),
    ({"slackMode": "app", "slackChannels": "ml-oncall=C0456EFGH"}, "'default' receiver's channel"),
    ({"slackMode": "app", "slackChannels": "default=#alerts"}, "'slackChannels'"),
    ({"slackMode": "app", "slackChannels": "Default=C0123ABCD"}, "'slackChannels'"),
    ({"slackMode": "app", "slackChannels": "default"}, "'slackChannels'"),
    ({"slackChannels": "default=C0123ABCD"}, "needs 'slackMode=app'"),
    ({"slackMode": "app", "slackChannels": "default=C0123ABCD", "slack": False}, "needs 'slack'"),
], ids=lambda v: v if isinstance(v, str) else json.dumps(v))
def test_invalid_context(tmp_path: Path, context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_stack(tmp_path, **context)
    assert named in str(raised.value)


# --- the Slack app manifest ----------------------------------------------------------------------------------


def test_the_app_manifest() -> None:
    manifest = yaml.safe_load((REPO / "slack" / "app-manifest.yaml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == ["chat:write", "usergroups:read"]
    assert manifest["features"]["bot_user"]["display_name"] == "hyperpod-guard"
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity == {"is_enabled": True, "request_url": "https://<function-url>/"}
    assert manifest["display_information"]["name"]
    # no user scopes, no events, no slash commands: the app posts and is clicked, nothing else
    assert set(manifest["oauth_config"]["scopes"]) == {"bot"}
    assert not {"event_subscriptions"} & manifest["settings"].keys()


# --- DynamoDB least privilege from reality (as tests/infra/test_dynamodb_grants.py does for the others) ---


def test_the_app_mode_roles_are_granted_exactly_the_dynamodb_actions_their_code_calls(
    app, stack, runtime, chatops, hyperpod,  # noqa: F811
) -> None:
    """Every click kind (acknowledge, silence, approve, reject, a refused one, one delivered twice) through the
    real handlers, the notifier posting and updating in app mode; each role's DynamoDB calls recorded."""
    from hyperpod_guard import aws_clients
    from hyperpod_guard.handlers import slack_actions
    from hyperpod_guard.local.lambda_context import LambdaContext
    from hyperpod_guard.local.provision import delivered
    from tests.infra.test_dynamodb_grants import Recorder, compare, granted
    from tests.integration import test_chatops as flow
    from tests.integration.test_sweep_fanout import EventSource

    recorder = Recorder(aws_clients.client("dynamodb"), stack.table_name)
    context = LambdaContext(function_name=f"{PREFIX}-slack-notifier")

    def notify_failing_once(method: str) -> None:
        """Deliver what SNS has to the notifier, Slack refusing its first call (the record is deleted, then
        Lambda's retry delivers)."""
        from hyperpod_guard.handlers import slack_notifier

        for message in delivered(stack):
            chatops.slack.fail("channel_not_found", method=method)
            with recorder.acting("slack-notifier"), pytest.raises(Exception):  # noqa: B017, PT011
                slack_notifier.handler(message["sns_event"], context)
            with recorder.acting("slack-notifier"):
                slack_notifier.handler(message["sns_event"], context)

    with recorder.acting("evaluation"):  # not under test here
        flow.put_rules(flow.approval_rules())
        flow.batch_infer()
        flow.run_sweep(runtime, 0)
    notify_failing_once("chat.postMessage")
    parent = chatops.parent()
    chatops.at(1)

    def click(action: str, user: str) -> None:
        body = chatops.payload(action, chatops.button(parent, action), user, parent)
        for _ in range(2 if action == flow.ACK else 1):  # the acknowledge delivered twice
            assert chatops.post(body)["statusCode"] == 200
        if action == flow.REJECT:  # Slack fails the refusal once: the click is done again, from scratch
            chatops.slack.fail("channel_not_found", method="chat.postEphemeral")
        with recorder.acting("slack-actions"):
            EventSource(chatops.actions_queue, slack_actions).drain()

    for action, user in ((flow.ACK, flow.RESPONDER), (flow.REJECT, flow.OTHER), (flow.APPROVE, flow.APPROVER)):
        click(action, user)
    assert [(user, text.split(":")[0]) for user, text in chatops.ephemerals()] == [(flow.OTHER, "Not done")]
    with recorder.acting("evaluation"):  # the approved reboot, then its news in the alert's thread
        flow.drain_work(chatops, 2)
    assert [op for op, _ in hyperpod.take()] == [flow.REBOOT]
    notify_failing_once("chat.postMessage")
    click(flow.SILENCE_4H, flow.RESPONDER)

    problems = []
    for role in ("slack-notifier", "slack-actions"):
        assert recorder.needed[role], f"{role}: the workload made no DynamoDB call"
        problems += compare(role, recorder.needed[role], granted(app, role))
    print("recorded:", {role: sorted(recorder.needed[role]) for role in ("slack-notifier", "slack-actions")})
    assert problems == [], "\n".join(problems)
