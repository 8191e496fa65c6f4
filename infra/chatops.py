"""ChatOps (`-c slackMode=app`): Slack app mode's secrets, the notifier's part of it, the interactivity
endpoint (a Lambda Function URL), the actions queue and the actions worker. In webhook mode (the default)
none of this exists.

- secrets: the bot token (`xoxb-…`) and the signing secret, created with a generated placeholder like the
  webhook secret (the operator puts the app's values in after deploying; neither is ever in the template);
- the notifier: SLACK_MODE=app, SLACK_BOT_TOKEN_SECRET, SLACK_CHANNELS; reads the bot token; keeps where
  each alert's messages are (notify/slack_threads.ThreadStore) in the ledger table;
- the endpoint (handlers/slack_interactivity.py): a Function URL on the `live` alias with AuthType NONE:
  Slack cannot sign AWS requests, so Slack's own request signature, checked before anything else, is the
  authentication. A Function URL rather than API Gateway: no cost beyond the invocations, one service less
  to secure and alarm, and it points at the SnapStart alias directly. Its reserved concurrency bounds what
  a flood of requests can cost (each unsigned one ends at the signature check);
- the actions queue (+ dead-letter queue) between the endpoint and the actions worker (Slack's 3 seconds);
- the actions worker (handlers/slack_actions.py): IAM for exactly what it calls.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from hyperpod_guard import naming
from hyperpod_guard.constants import SLACK_BOT_TOKEN_SECRET, SLACK_CHANNELS, SLACK_MODE
from hyperpod_guard.ledger_store import IDEMPOTENCY_ACTIONS, IDEMPOTENCY_PK
from hyperpod_guard.settings import SlackActionsSettings, SlackAppSettings, SlackInteractivitySettings

from .common import PythonFunction, python_function, work_queue
from .config import Config

#: Powertools' parameters.get_secret calls GetSecretValue only
SECRET_ACTIONS = ("secretsmanager:GetSecretValue",)
#: what the actions worker calls on the table besides ThreadStore's and its idempotency records':
#: LedgerStore.get (GetItem) and .acknowledge (GetItem, UpdateItem); ApprovalStore.decide (GetItem,
#: UpdateItem; request, a PutItem, is the evaluation's); SilenceStore.add (PutItem).
#: tests/infra/test_dynamodb_grants.py checks these against the calls
ACTIONS_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
#: what the notifier calls of ThreadStore's actions: all but the Query of an alert's threads (alert_threads),
#: which only the actions worker makes (the notifier reads its thread by key)
NOTIFIER_THREAD_EXCLUDED = ("dynamodb:Query",)
#: the endpoint answers within Slack's 3 s: SQS SendMessage and, when its cache is cold, GetSecretValue
ENDPOINT_TIMEOUT_S = 10
#: endpoints at once: a person clicks a button; more than this at once is a flood, answered 429 by Lambda
ENDPOINT_CONCURRENCY = 10
ACTIONS_TIMEOUT_S = 60
#: receives before a click's message goes to the dead-letter queue (Slack or DynamoDB failing three times)
ACTIONS_MAX_RECEIVES = 3
#: AWS recommends a source queue's visibility timeout of at least six times the function's timeout
ACTIONS_VISIBILITY_S = 6 * ACTIONS_TIMEOUT_S
#: a click not carried out within an hour is stale (the alert moved on); longer than the receives above
ACTIONS_RETENTION_S = 3600
ACTIONS_BATCH_SIZE = 5
ACTIONS_MAX_CONCURRENCY = 5


class ChatOps(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, table: dynamodb.ITable,
                 notifier: PythonFunction, work_queue_: sqs.IQueue):
        super().__init__(scope, id)
        # imported here: only app mode needs A's module
        from hyperpod_guard.notify.slack_threads import TABLE_ACTIONS as THREAD_ACTIONS

        self.bot_token = secretsmanager.Secret(
            self, "SlackBotToken", secret_name=naming.slack_bot_token_secret_name(config.prefix),
            description="hyperpod-guard: the Slack app's Bot User OAuth Token, xoxb-... (put it here after deploying)",
        )
        self.signing_secret = secretsmanager.Secret(
            self, "SlackSigningSecret", secret_name=naming.slack_signing_secret_name(config.prefix),
            description="hyperpod-guard: the Slack app's Signing Secret (put it here after deploying)",
        )
        app = {"mode": "app", "bot_token_secret": naming.slack_bot_token_secret_name(config.prefix),
               "channels": json.dumps(config.slack_channels, separators=(",", ":"), sort_keys=True)}
        self._notifier(notifier.function, table, app, THREAD_ACTIONS)

        self.queue, self.dlq = work_queue(
            self, "SlackActionsQueue", config=config, name="slack-actions",
            visibility_timeout=Duration.seconds(ACTIONS_VISIBILITY_S), max_receive_count=ACTIONS_MAX_RECEIVES,
            retention=Duration.seconds(ACTIONS_RETENTION_S),
        )
        self.endpoint = python_function(
            self, "SlackInteractivity", config=config, name="slack-interactivity",
            handler="hyperpod_guard.handlers.slack_interactivity.handler",
            description="hyperpod-guard: Slack's interactivity endpoint: checks the signature, queues the click",
            # measured on the dev machine: ~60 MB; the work is one SendMessage (a GetSecretValue when the cache is cold)
            memory_mb=256, timeout=Duration.seconds(ENDPOINT_TIMEOUT_S),
            environment=SlackInteractivitySettings.environment(
                signing_secret_secret=naming.slack_signing_secret_name(config.prefix),
                actions_queue_url=self.queue.queue_url),
            reserved_concurrency=ENDPOINT_CONCURRENCY,
        )
        self.url = self.endpoint.live.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        self._grant_secret(self.endpoint.function, self.signing_secret)
        self.endpoint.function.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"],
                                                                      resources=[self.queue.queue_arn]))

        self.actions = python_function(
            self, "SlackActionsWorker", config=config, name="slack-actions",
            handler="hyperpod_guard.handlers.slack_actions.handler",
            description="hyperpod-guard: carries out the Slack clicks (acknowledge, silence, approve, reject)",
            memory_mb=256, timeout=Duration.seconds(ACTIONS_TIMEOUT_S),
            environment={
                **SlackAppSettings.environment(**app, table_name=table.table_name),
                **SlackActionsSettings.environment(table_name=table.table_name, rules_path=config.rules_path,
                                                   work_queue_url=work_queue_.queue_url),
            },
        )
        self.actions.live.add_event_source(event_sources.SqsEventSource(
            self.queue, batch_size=ACTIONS_BATCH_SIZE, max_concurrency=ACTIONS_MAX_CONCURRENCY,
            report_batch_item_failures=True,
        ))
        self._grant_actions(config, table, work_queue_, THREAD_ACTIONS)

        CfnOutput(scope, "SlackInteractivityUrl", value=self.url.url,
                  description="the Slack app's interactivity Request URL (slack/app-manifest.yaml: request_url)")
        CfnOutput(scope, "SlackBotTokenSecret", value=naming.slack_bot_token_secret_name(config.prefix),
                  description="put the Slack app's Bot User OAuth Token (xoxb-...) in this secret")
        CfnOutput(scope, "SlackSigningSecretSecret", value=naming.slack_signing_secret_name(config.prefix),
                  description="put the Slack app's Signing Secret in this secret")

    @staticmethod
    def _grant_secret(function: lambda_.Function, secret: secretsmanager.ISecret) -> None:
        # not secret.grantRead: it adds DescribeSecret, never called
        function.add_to_role_policy(iam.PolicyStatement(actions=list(SECRET_ACTIONS), resources=[secret.secret_arn]))

    def _notifier(self, notifier: lambda_.Function, table: dynamodb.ITable, app: dict[str, str],
                  thread_actions: tuple[str, ...]) -> None:
        """App mode for the notifier: its variables, the bot token, and the alerts' threads in the table."""
        notifier.add_environment(SLACK_MODE.name, app["mode"])
        notifier.add_environment(SLACK_BOT_TOKEN_SECRET.name, app["bot_token_secret"])
        notifier.add_environment(SLACK_CHANNELS.name, app["channels"])
        self._grant_secret(notifier, self.bot_token)
        notifier.add_to_role_policy(iam.PolicyStatement(
            actions=sorted(set(thread_actions) - set(NOTIFIER_THREAD_EXCLUDED)), resources=[table.table_arn]))

    def _grant_actions(self, config: Config, table: dynamodb.ITable, work: sqs.IQueue,
                       thread_actions: tuple[str, ...]) -> None:
        function = self.actions.function
        function.add_to_role_policy(iam.PolicyStatement(
            actions=sorted({*ACTIONS_TABLE_ACTIONS, *thread_actions}), resources=[table.table_arn]))
        # the clicks carried out (Powertools idempotency), on its own records only, as the notifier's
        function.add_to_role_policy(iam.PolicyStatement(
            actions=list(IDEMPOTENCY_ACTIONS), resources=[table.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [IDEMPOTENCY_PK]}},
        ))
        path = f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{config.rules_path}"
        function.add_to_role_policy(iam.PolicyStatement(actions=["ssm:GetParametersByPath"],
                                                        resources=[path, f"{path}/*"]))
        self._grant_secret(function, self.bot_token)
        # an approved remediation: the cluster handed to the worker (WorkQueue.send: SendMessageBatch)
        function.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[work.queue_arn]))
