"""What every policy's settings share, and the helpers they use: kept apart from rules.py so
that a policy module can own its settings model (rules.py assembles the rules from the registry)."""

from __future__ import annotations

import fnmatch
import functools
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .findings import Severity
from .timeutil import Duration

#: Prefixes that HyperPod, EKS, Kubernetes and Karpenter write themselves (e.g. HyperPod's
#: `sagemaker.amazonaws.com/node-health-status` taint during deep health checks). Drift in
#: them is not the user's drift, and users may not set them.
MANAGED_KEY_PREFIXES = (
    "kubernetes.io/",
    "k8s.io/",
    "sagemaker.amazonaws.com/",
    "eks.amazonaws.com/",
    "k8s.aws/",
    "karpenter.sh/",
)

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class RulesModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def has_prefix(key: str, prefixes: tuple[str, ...]) -> bool:
    """True when `key` starts with one of `prefixes`, or lives in a subdomain of a domain
    prefix: Kubernetes reserves `*.kubernetes.io/` and `*.k8s.io/` too (e.g.
    `node.kubernetes.io/unschedulable`, `topology.kubernetes.io/zone`)."""
    pattern = _prefix_pattern(prefixes)
    return pattern is not None and pattern.match(key) is not None


@functools.lru_cache(maxsize=64)
def _prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str] | None:
    # One compiled alternation instead of a loop per key: taint drift asks this for every
    # label and taint of every group (15k times for a 256-group cluster).
    if not prefixes:
        return None
    alternatives = [re.escape(p) for p in prefixes]
    domains = [re.escape(p[:-1]) for p in prefixes if p.endswith("/")]
    if domains:  # "<anything without a slash>.<domain>/"
        alternatives.append(r"[^/]*\.(?:" + "|".join(domains) + ")/")
    return re.compile("|".join(alternatives))


def glob_match(pattern: str, value: str | None) -> bool:
    """Case-sensitive shell glob ('*', '?', '[ab]'); None never matches anything but '*'."""
    return pattern == "*" or (value is not None and fnmatch.fnmatchcase(value, pattern))


# --- per-policy settings -------------------------------------------------------------


#: a link people open from an alert: https only (a rules file is trusted, but a typo'd scheme is not a link)
RunbookUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s<>|]+$", max_length=1000)]


class PolicySettings(RulesModel):
    enabled: bool = True
    severity: Severity | None = Field(
        default=None, description="Override the severity of every finding of this policy."
    )
    grace: Duration = Field(
        default=timedelta(0),
        description="How long a finding must persist before it fires (Prometheus' `for`).",
    )
    repeat_interval: Duration = Field(
        default=timedelta(hours=4), description="Re-notify a still-firing alert this often."
    )
    notify_on_resolve: bool = True
    runbook_url: RunbookUrl | None = Field(
        default=None, description="An https link shown on this policy's alerts (a button in Slack, a line in email "
        "and Chatbot): what on-call should do. Set it per override for a team's own runbook.",
    )


class Remediation(RulesModel):
    """Opt-in, and a dry run until you say otherwise: the exact request is logged, audited and
    reported, and nothing is sent."""

    enabled: bool = False
    dry_run: bool = Field(default=True, description="Log, audit and report the exact request; send nothing.")
    approval: Literal["none", "required"] = Field(
        default="none", description="`required`: a real action (not a dry run) waits until one of `chatops.approvers` "
        "approves it in Slack (app mode), then runs through the budgets and the audit, naming the approver.",
    )
    approval_expires: Duration = Field(
        default=timedelta(hours=1), gt=timedelta(0),
        description="How long a request for approval stands; after that a new one is asked for.",
    )


class NodeRemediation(Remediation):
    """Reboot or replace nodes in Failure or reported unhealthy (BatchReboot/ReplaceClusterNodes)."""

    action: Literal["reboot", "replace"] = "reboot"
    after: Duration = Field(
        default=timedelta(minutes=30),
        description="When the cluster's NodeRecovery is Automatic, give HyperPod's own repair this long first.",
    )


def remediation_of(settings: PolicySettings) -> Remediation | None:
    """A policy's remediation settings (its `remediation` field), None when it has none."""
    remediation = getattr(settings, "remediation", None)
    return remediation if isinstance(remediation, Remediation) else None
