"""Alerting: the KMS key, the alerts topic and its subscribers (Slack notifier, email, Chatbot)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Validations
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from hyperpod_guard import naming
from hyperpod_guard.constants import SLACK_RECEIVER_SECRET_PREFIX, SLACK_WEBHOOK_SECRET

from .common import PythonFunction, python_function, secure_queue
from .config import Config

#: CDK's CloudFormation Validate warns that a `lambda` subscription's endpoint is an alias, not a function
ALIAS_ENDPOINT = "CloudFormation-Validate::W3694"
#: what the notifier may do with a receiver's secret: Powertools' parameters.get_secret calls GetSecretValue only
RECEIVER_SECRET_ACTIONS = ("secretsmanager:GetSecretValue",)


class Alerting(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config):
        super().__init__(scope, id)
        self.key = kms.Key(
            self, "Key", alias=f"alias/{config.prefix}", enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN,
            description="hyperpod-guard: encrypts the alert and operations topics",
        )
        # CloudWatch alarms publish to the (encrypted) operations topic
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=["*"],  # "*" = this key, in a key policy
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
        ))
        self.topic = sns.Topic(
            self, "Alerts", topic_name=naming.alerts_topic_name(config.prefix), display_name="hyperpod-guard alerts",
            master_key=self.key, enforce_ssl=True,
        )
        for address in config.emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address, filter_policy={
                "severity": sns.SubscriptionFilter.string_filter(allowlist=config.email_severities),
            }))
        self.slack_secret: secretsmanager.ISecret | None = None
        #: receiver name -> the secret the stack created for it (config.slack_receivers)
        self.receiver_secrets: dict[str, secretsmanager.Secret] = {}
        self.notifier: PythonFunction | None = None
        if config.slack:
            self._slack(config)
        if config.chatbot_workspace_id:
            chatbot.SlackChannelConfiguration(
                self, "Chatbot", slack_channel_configuration_name=f"{config.prefix}-alerts",
                slack_workspace_id=config.chatbot_workspace_id, slack_channel_id=config.chatbot_channel_id,
                notification_topics=[self.topic], logging_level=chatbot.LoggingLevel.ERROR,
            )

    def _slack(self, config: Config) -> None:
        if config.slack_secret_name:
            self.slack_secret = secretsmanager.Secret.from_secret_name_v2(
                self, "SlackWebhook", config.slack_secret_name)
        else:
            # created with a generated placeholder, which the notifier reports as "not configured"
            self.slack_secret = secretsmanager.Secret(
                self, "SlackWebhook", secret_name=naming.slack_secret_name(config.prefix),
                description="hyperpod-guard: the Slack incoming-webhook URL (put it here after deploying)",
            )
        self.notifier_dlq = secure_queue(self, "SlackDlq", config=config, name="slack-dlq")
        self.notifier = python_function(
            self, "SlackNotifier", config=config, name="slack-notifier",
            handler="hyperpod_guard.handlers.slack_notifier.handler",
            description="hyperpod-guard: renders alert messages and posts them to Slack",
            # measured: ~55 MB peak RSS. 90 s: 4 POSTs of up to 15 s each (SLACK_TIMEOUT) + backoff (≤ 5.25 s)
            # or a Retry-After (capped at 30 s), then 10 s kept back to record the delivery; the
            # idempotency record's in-progress lock lasts until this timeout (docs/reliability.md)
            memory_mb=256, timeout=Duration.seconds(90),
            environment={SLACK_WEBHOOK_SECRET.name: self.slack_secret.secret_name,
                         SLACK_RECEIVER_SECRET_PREFIX.name: naming.slack_receiver_secret_prefix(config.prefix)},
        )
        self.slack_secret.grant_read(self.notifier.function)
        self._receivers(config, self.notifier.function)
        # SNS -> Lambda is asynchronous: Lambda retries twice, then the failure destination keeps it.
        # On the alias SNS invokes: async invoke settings are per qualifier (the function's own would
        # apply to $LATEST only)
        self.notifier.live.configure_async_invoke(
            retry_attempts=2, max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.notifier_dlq),
        )
        subscription = self.topic.add_subscription(
            subscriptions.LambdaSubscription(self.notifier.live, dead_letter_queue=self.notifier_dlq))
        Validations.of(subscription).acknowledge(Acknowledgment(
            id=ALIAS_ENDPOINT, reason="SNS invokes a Lambda alias (a qualified function ARN) as it does a function."))

    def _receivers(self, config: Config, notifier: lambda_.Function) -> None:
        """One secret per named receiver (`slackReceivers`), made like the `default` one; and read access
        to every secret under the receivers' prefix, so that one created there by hand (an existing
        webhook, imported by its name) is read without a redeploy."""
        for name in config.slack_receivers:
            self.receiver_secrets[name] = secretsmanager.Secret(
                self, f"SlackReceiver-{name}", secret_name=naming.slack_receiver_secret_name(config.prefix, name),
                description=f"hyperpod-guard: the Slack incoming-webhook URL of receiver {name!r} "
                            "(put it here after deploying)",
            )
        # GetSecretValue only: no kms:Decrypt, since the secrets use the account's aws/secretsmanager key like the
        # default one. The ARN in pseudo parameters as the others are (infra/evaluation.py): the same template in
        # any environment, and the one cdk-nag finding acknowledged below
        prefix = naming.slack_receiver_secret_prefix(config.prefix)
        receivers = f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:{prefix}*"
        notifier.add_to_role_policy(iam.PolicyStatement(actions=list(RECEIVER_SECRET_ACTIONS), resources=[receivers]))
        Validations.of(notifier).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
               f"secret:{prefix}*]",
            reason="Each receiver's webhook secret is read by its name under the receivers' prefix; the '*' is the "
                   "receiver name and the 6 random characters Secrets Manager appends to a secret's ARN, so that "
                   "a receiver's secret created by hand (imported) is read without a redeploy.",
        ))
