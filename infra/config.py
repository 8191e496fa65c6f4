"""Deploy-time configuration, read from CDK context (`cdk.json` or `-c key=value`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from constructs import Node

from hyperpod_guard import fleet, naming

DEFAULTS: dict[str, Any] = {
    "prefix": naming.DEFAULT_PREFIX,
    "slack": True,
    "slackSecretName": "",
    "emails": [],
    "emailSeverities": ["critical", "warning"],
    "opsEmails": [],
    "chatbotSlackWorkspaceId": "",
    "chatbotSlackChannelId": "",
    "sweepRate": 5,
    "remediation": False,
    "logLevel": "INFO",
    "logRetentionDays": 30,
    "seedRules": True,
    "rulesFile": "rules/defaults.json",
    "eventAccounts": [],
    "slackReceivers": [],
    "slackMode": "webhook",
    "slackChannels": {},
    "archiveRetentionDays": 730,
    "weeklyDigest": False,
    "digestSchedule": "cron(0 8 ? * MON *)",
    "spokeAccounts": [],
    "organizationId": "",
    "fleetRegions": [],
    "spokeRoleName": fleet.DEFAULT_SPOKE_ROLE,
    "spokeExternalId": "",
    # the blast radius (issue 23, infra/workload.py): each off when empty
    "workloadEksClusters": [],
    "workloadSlurm": False,
    "lambdaSubnets": [],
    "lambdaSecurityGroups": [],
}
SLACK_MODES = ("webhook", "app")
#: a Slack conversation id: public (C), private (G) channel or direct message (D)
CHANNEL_ID_PATTERN = r"[CGD][A-Z0-9]{2,}"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: an EventBridge schedule expression: cron (six fields) or rate
SCHEDULE_PATTERN = r"cron\((\S+ ){5}\S+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)"
#: the archive's objects are kept at most this long (S3 takes any number of days; 100 years is a typo's guard)
MAX_ARCHIVE_RETENTION_DAYS = 36500
#: the prefix of every name (and the hub's stack name, which its roles' names start with: infra/spoke.py)
PREFIX_PATTERN = r"[a-z][a-z0-9-]{1,30}"
#: an AWS Organizations id
ORGANIZATION_ID_PATTERN = r"o-[a-z0-9]{10,32}"
#: IAM's rules for a role name, and for an external id (sts:AssumeRole's ExternalId)
ROLE_NAME_PATTERN = r"[\w+=,.@-]{1,64}"
EXTERNAL_ID_PATTERN = r"[\w+=,.@:/-]{2,1224}"
#: EKS's rule for a cluster name (CreateCluster): a letter or digit, then letters, digits, '-' or '_'; 100 at most
EKS_CLUSTER_NAME_PATTERN = r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}"
#: EC2 subnet and security group ids (8 or 17 hex digits)
SUBNET_ID_PATTERN = r"subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?"
SECURITY_GROUP_ID_PATTERN = r"sg-[0-9a-f]{8}(?:[0-9a-f]{9})?"
#: Lambda's VpcConfig limits
MAX_LAMBDA_SUBNETS = 16
MAX_LAMBDA_SECURITY_GROUPS = 5


class ConfigError(ValueError):
    pass


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes", "on"):
        return True
    if str(value).lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"context {name!r} must be true or false, got {value!r}")


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context {name!r} must be a whole number, got {value!r}") from None


def _mapping(name: str, value: Any) -> dict[str, str]:
    """A JSON object, or `key=value` pairs separated by commas (what `-c slackChannels=default=C0123,x=C0456` gives)."""
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    text = str(value or "").strip()
    if text.startswith("{"):
        return _mapping(name, json.loads(text))
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f"context {name!r} takes name=value pairs separated by commas, got {value!r}")
    return {key.strip(): channel.strip() for key, channel in pairs}


def _list(value: Any) -> list[str]:
    """A JSON list, or a comma-separated string (what `-c emails=a@x,b@y` gives)."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value or "").strip()
    if text.startswith("["):
        return _list(json.loads(text))
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Config:
    prefix: str = DEFAULTS["prefix"]
    slack: bool = True
    slack_secret_name: str = ""
    emails: list[str] = field(default_factory=list)
    email_severities: list[str] = field(default_factory=lambda: list(DEFAULTS["emailSeverities"]))
    ops_emails: list[str] = field(default_factory=list)
    chatbot_workspace_id: str = ""
    chatbot_channel_id: str = ""
    sweep_rate_minutes: int = 5
    remediation: bool = False
    log_level: str = "INFO"
    log_retention_days: int = 30
    seed_rules: bool = True
    rules_file: str = DEFAULTS["rulesFile"]
    #: the fleet (infra/fleet.py, infra/spoke.py): the spoke accounts whose HyperPod events the hub's fleet
    #: bus admits, the rules and the evaluator believe, and whose spoke role the hub's functions may assume.
    #: Context `spokeAccounts`; `eventAccounts`, the seam this grew from, is a deprecated alias merged into
    #: it (so an `eventAccounts` deployment becomes a hub). Empty and no organization: a single account
    spoke_accounts: list[str] = field(default_factory=list)
    #: ... or every account of this AWS Organization (o-...): the bus admits the organization, the evaluator
    #: believes any account (EVENT_ACCOUNTS=*), the functions may assume the spoke role in any of its accounts
    organization_id: str = ""
    #: the regions the fleet covers (the sweep lists each); empty: the hub's own region
    fleet_regions: list[str] = field(default_factory=list)
    #: the role every spoke stack creates for the hub, and the external id the hub passes when assuming it
    #: (empty: the prefix)
    spoke_role_name: str = DEFAULTS["spokeRoleName"]
    spoke_external_id: str = ""
    #: the Slack receivers besides `default` whose webhook secret the stack creates (one each, under
    #: naming.slack_receiver_secret_prefix; a secret created there by hand is read as well)
    slack_receivers: list[str] = field(default_factory=list)
    #: "webhook" (incoming webhooks) or "app" (a Slack app: threads, updates, buttons; infra/chatops.py)
    slack_mode: str = "webhook"
    #: app mode: receiver name -> Slack channel id (`default` at least)
    slack_channels: dict[str, str] = field(default_factory=dict)
    #: days the episode archive keeps an object (infra/archive.py: the bucket's lifecycle)
    archive_retention_days: int = DEFAULTS["archiveRetentionDays"]
    #: the weekly digest (infra/digest.py): off by default; its EventBridge schedule expression
    weekly_digest: bool = False
    digest_schedule: str = DEFAULTS["digestSchedule"]
    #: the blast radius (infra/workload.py; the rules turn the read on per cluster): the EKS clusters (of this
    #: account and region) whose Kubernetes API the evaluating functions may read, with an access entry each
    workload_eks_clusters: list[str] = field(default_factory=list)
    #: ... and the read-only squeue/sinfo on a Slurm cluster's controller through SSM Run Command
    workload_slurm: bool = False
    #: the evaluating functions run in these subnets with these security groups (a private EKS endpoint)
    lambda_subnets: list[str] = field(default_factory=list)
    lambda_security_groups: list[str] = field(default_factory=list)

    @property
    def slack_app(self) -> bool:
        return self.slack and self.slack_mode == "app"

    @property
    def rules_path(self) -> str:
        return naming.rules_path(self.prefix)

    @property
    def fleet(self) -> bool:
        """A hub: spoke accounts or an organization are given (infra/fleet.py)."""
        return bool(self.spoke_accounts or self.organization_id)

    @property
    def workload(self) -> bool:
        """Any of the blast radius's options is given (infra/workload.py)."""
        return bool(self.workload_eks_clusters or self.workload_slurm or self.lambda_subnets)

    @property
    def external_id(self) -> str:
        """The external id the hub passes and the spoke role requires."""
        return self.spoke_external_id or self.prefix

    @classmethod
    def from_node(cls, node: Node) -> Config:
        def get(key: str) -> Any:
            value = node.try_get_context(key)
            return DEFAULTS[key] if value is None else value

        config = cls(
            prefix=str(get("prefix")),
            slack=_bool("slack", get("slack")),
            slack_secret_name=str(get("slackSecretName") or ""),
            emails=_list(get("emails")),
            email_severities=_list(get("emailSeverities")),
            ops_emails=_list(get("opsEmails")),
            chatbot_workspace_id=str(get("chatbotSlackWorkspaceId") or ""),
            chatbot_channel_id=str(get("chatbotSlackChannelId") or ""),
            sweep_rate_minutes=_int("sweepRate", get("sweepRate")),
            remediation=_bool("remediation", get("remediation")),
            log_level=str(get("logLevel")).upper(),
            log_retention_days=_int("logRetentionDays", get("logRetentionDays")),
            seed_rules=_bool("seedRules", get("seedRules")),
            rules_file=str(get("rulesFile")),
            # dict: drop repeats, keep order; eventAccounts (deprecated) is merged into spokeAccounts
            spoke_accounts=list(dict.fromkeys([*_list(get("spokeAccounts")), *_list(get("eventAccounts"))])),
            organization_id=str(get("organizationId") or "").strip(),
            fleet_regions=list(dict.fromkeys(_list(get("fleetRegions")))),
            spoke_role_name=str(get("spokeRoleName") or "").strip(),
            spoke_external_id=str(get("spokeExternalId") or "").strip(),
            slack_receivers=list(dict.fromkeys(_list(get("slackReceivers")))),
            slack_mode=str(get("slackMode")).strip().lower(),
            slack_channels=_mapping("slackChannels", get("slackChannels")),
            archive_retention_days=_int("archiveRetentionDays", get("archiveRetentionDays")),
            weekly_digest=_bool("weeklyDigest", get("weeklyDigest")),
            digest_schedule=str(get("digestSchedule")).strip(),
            workload_eks_clusters=list(dict.fromkeys(_list(get("workloadEksClusters")))),
            workload_slurm=_bool("workloadSlurm", get("workloadSlurm")),
            lambda_subnets=list(dict.fromkeys(_list(get("lambdaSubnets")))),
            lambda_security_groups=list(dict.fromkeys(_list(get("lambdaSecurityGroups")))),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not re.fullmatch(PREFIX_PATTERN, self.prefix):
            raise ConfigError(f"context 'prefix' must be 2-31 lowercase letters, digits or '-', got {self.prefix!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"context 'logLevel' must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if not 1 <= self.sweep_rate_minutes <= 60:
            raise ConfigError(f"context 'sweepRate' is minutes between sweeps (1-60), got {self.sweep_rate_minutes}")
        if not 1 <= self.log_retention_days <= 731:
            raise ConfigError(f"context 'logRetentionDays' must be 1-731, got {self.log_retention_days}")
        unknown = sorted(set(self.email_severities) - {"critical", "warning", "info"})
        if unknown or not self.email_severities:
            raise ConfigError(f"context 'emailSeverities' takes critical, warning, info; got {self.email_severities}")
        for address in self.emails + self.ops_emails:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                raise ConfigError(f"context 'emails'/'opsEmails': not an email address: {address!r}")
        self._validate_fleet()
        bad = [name for name in self.slack_receivers
               if not re.fullmatch(naming.RECEIVER_NAME_PATTERN, name) or name == naming.DEFAULT_RECEIVER]
        if bad:
            raise ConfigError(f"context 'slackReceivers' takes names of 1-63 lowercase letters, digits or '-' "
                              f"(not starting with '-'), other than {naming.DEFAULT_RECEIVER!r}; got {bad}")
        if self.slack_receivers and not self.slack:
            raise ConfigError("context 'slackReceivers' needs 'slack' (the Slack notifier reads their secrets)")
        self._validate_slack_app()
        self._validate_archive()
        self._validate_workload()
        if bool(self.chatbot_workspace_id) != bool(self.chatbot_channel_id):
            raise ConfigError("set both chatbotSlackWorkspaceId and chatbotSlackChannelId, or neither")

    def _validate_slack_app(self) -> None:
        if self.slack_mode not in SLACK_MODES:
            raise ConfigError(f"context 'slackMode' takes {' or '.join(SLACK_MODES)}, got {self.slack_mode!r}")
        if self.slack_mode != "app":
            if self.slack_channels:
                raise ConfigError("context 'slackChannels' needs 'slackMode=app' (webhooks post to their own channel)")
            return
        if not self.slack:
            raise ConfigError("context 'slackMode=app' needs 'slack' (the Slack notifier posts as the app)")
        bad = {name: channel for name, channel in self.slack_channels.items()
               if not re.fullmatch(naming.RECEIVER_NAME_PATTERN, name) or not re.fullmatch(CHANNEL_ID_PATTERN, channel)}
        if bad:
            raise ConfigError(f"context 'slackChannels' takes receiver=channel-id pairs (a receiver name of lowercase "
                              f"letters, digits or '-'; a channel id such as C0123ABCD), got {bad}")
        if naming.DEFAULT_RECEIVER not in self.slack_channels:
            raise ConfigError(f"context 'slackChannels' must name the {naming.DEFAULT_RECEIVER!r} receiver's channel "
                              f"in app mode (e.g. -c slackChannels={naming.DEFAULT_RECEIVER}=C0123ABCD), "
                              f"got {self.slack_channels}")

    def _validate_fleet(self) -> None:
        bad = [account for account in self.spoke_accounts if not fleet.ACCOUNT_ID.fullmatch(account)]
        if bad:
            raise ConfigError(f"context 'spokeAccounts' (or its old name 'eventAccounts') takes 12-digit AWS account "
                              f"ids (JSON list or comma-separated), got {bad}")
        if self.organization_id and not re.fullmatch(ORGANIZATION_ID_PATTERN, self.organization_id):
            raise ConfigError(f"context 'organizationId' takes an AWS Organizations id (o- and 10-32 lowercase letters "
                              f"or digits), got {self.organization_id!r}")
        bad = [region for region in self.fleet_regions if not fleet.REGION_NAME.fullmatch(region)]
        if bad:
            raise ConfigError(f"context 'fleetRegions' takes AWS region names such as us-east-1 (JSON list or "
                              f"comma-separated), got {bad}")
        if self.fleet_regions and not self.fleet:
            raise ConfigError("context 'fleetRegions' needs 'spokeAccounts' or 'organizationId' (a hub); to cover "
                              "other regions of this account, list this account in 'spokeAccounts' and deploy the "
                              "spoke stack there")
        if not re.fullmatch(ROLE_NAME_PATTERN, self.spoke_role_name):
            raise ConfigError(f"context 'spokeRoleName' takes an IAM role name (1-64 letters, digits or +=,.@_-), "
                              f"got {self.spoke_role_name!r}")
        if not re.fullmatch(EXTERNAL_ID_PATTERN, self.external_id):
            raise ConfigError(f"context 'spokeExternalId' takes an external id of 2-1224 letters, digits or "
                              f"+=,.@:/_-, got {self.spoke_external_id!r}")

    def _validate_archive(self) -> None:
        if not 1 <= self.archive_retention_days <= MAX_ARCHIVE_RETENTION_DAYS:
            raise ConfigError(f"context 'archiveRetentionDays' is days the archive keeps an episode "
                              f"(1-{MAX_ARCHIVE_RETENTION_DAYS}), got {self.archive_retention_days}")
        if not re.fullmatch(SCHEDULE_PATTERN, self.digest_schedule):
            raise ConfigError(f"context 'digestSchedule' takes an EventBridge schedule expression, cron(...) with six "
                              f"fields or rate(N unit), got {self.digest_schedule!r}")

    def _validate_workload(self) -> None:
        bad = [name for name in self.workload_eks_clusters if not re.fullmatch(EKS_CLUSTER_NAME_PATTERN, name)]
        if bad:
            raise ConfigError(f"context 'workloadEksClusters' takes EKS cluster names of this account and region (a "
                              f"letter or digit, then up to 99 letters, digits, '-' or '_'; JSON list or "
                              f"comma-separated), got {bad}")
        if bool(self.lambda_subnets) != bool(self.lambda_security_groups):
            raise ConfigError("set both lambdaSubnets and lambdaSecurityGroups (the evaluating functions run in those "
                              "subnets with those security groups), or neither")
        bad = [subnet for subnet in self.lambda_subnets if not re.fullmatch(SUBNET_ID_PATTERN, subnet)]
        if bad or len(self.lambda_subnets) > MAX_LAMBDA_SUBNETS:
            raise ConfigError(f"context 'lambdaSubnets' takes 1-{MAX_LAMBDA_SUBNETS} subnet ids (subnet-0123abcd...; "
                              f"JSON list or comma-separated), got {bad or self.lambda_subnets}")
        bad = [group for group in self.lambda_security_groups if not re.fullmatch(SECURITY_GROUP_ID_PATTERN, group)]
        if bad or len(self.lambda_security_groups) > MAX_LAMBDA_SECURITY_GROUPS:
            raise ConfigError(f"context 'lambdaSecurityGroups' takes 1-{MAX_LAMBDA_SECURITY_GROUPS} security group ids "
                              f"(sg-0123abcd...; JSON list or comma-separated), "
                              f"got {bad or self.lambda_security_groups}")
