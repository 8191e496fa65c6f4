"""Routing by owner (issue 23; rules.RouteMatch namespace / slurm_account / workload_labels, routing.py): a route
that names an owner takes an alert when some job on the alert's node matches every owner matcher; an alert
whose workload is unknown or was not read takes no such route, and routes that name no owner are unaffected."""

from __future__ import annotations

from typing import Any

import pytest

from hyperpod_guard.findings import Severity
from hyperpod_guard.routing import decide, describe_match, describe_routes
from hyperpod_guard.rules import RouteMatch, Routing
from hyperpod_guard.workload.model import Job, Workload

LLAMA = Job("llama-ft", "PyTorchJob", namespace="team-a", labels={"team": "llm", "tier": "prod"})
BOARD = Job("tensorboard", "Deployment", namespace="team-b-tools", labels={"team": "viz"})
SLURM = Job("train (42)", "slurm", user="alice", account="research", labels={"state": "RUNNING"})
EKS_NODE = Workload("hyperpod-i-1", (LLAMA, BOARD))
SLURM_NODE = Workload("ip-10-1-0-16", (SLURM,))
UNKNOWN = Workload("hyperpod-i-1", unknown="timeout: no answer within 3s")
IDLE = Workload("hyperpod-i-1")


def matches(match: dict[str, Any], workload: Workload | None) -> bool:
    return RouteMatch.model_validate(match).matches_alert(
        cluster="ml-prod", policy="unhealthy-node", severity=Severity.CRITICAL, instance_group="p5",
        tags={}, workload=workload)


@pytest.mark.parametrize("match, workload, expected", [
    ({"namespace": "team-a"}, EKS_NODE, True),
    ({"namespace": "team-*"}, EKS_NODE, True),
    ({"namespace": "team-b"}, EKS_NODE, False),  # a glob on the whole name: team-b-tools is not team-b
    ({"namespace": "team-b*"}, EKS_NODE, True),  # the node's second job
    ({"namespace": "team-z"}, EKS_NODE, False),
    ({"slurm_account": "research"}, SLURM_NODE, True),
    ({"slurm_account": "res*"}, SLURM_NODE, True),
    ({"slurm_account": "finance"}, SLURM_NODE, False),
    ({"slurm_account": "research"}, EKS_NODE, False),  # EKS jobs have no account
    ({"namespace": "team-a"}, SLURM_NODE, False),  # Slurm jobs have no namespace
    ({"workload_labels": {"team": "llm"}}, EKS_NODE, True),
    ({"workload_labels": {"team": "llm", "tier": "prod"}}, EKS_NODE, True),
    ({"workload_labels": {"team": "ll*"}}, EKS_NODE, False),  # labels are exact, not globs
    ({"workload_labels": {"team": "llm", "tier": "dev"}}, EKS_NODE, False),
    ({"workload_labels": {"owner": "llm"}}, EKS_NODE, False),
    # several jobs: one job must match every matcher; two jobs matching one each do not
    ({"namespace": "team-a", "workload_labels": {"team": "llm"}}, EKS_NODE, True),
    ({"namespace": "team-a", "workload_labels": {"team": "viz"}}, EKS_NODE, False),
    ({"namespace": "team-b*", "workload_labels": {"team": "viz"}}, EKS_NODE, True),
    # the workload unknown, not read, or nothing on the node: no owner route
    ({"namespace": "*", "slurm_account": "*", "workload_labels": {"team": "llm"}}, UNKNOWN, False),
    ({"namespace": "team-a"}, UNKNOWN, False),
    ({"namespace": "team-a"}, None, False),
    ({"slurm_account": "research"}, None, False),
    ({"workload_labels": {"team": "llm"}}, None, False),
    ({"namespace": "team-a"}, IDLE, False),
    # routes naming no owner ('*' or nothing) are unaffected by the workload
    ({"namespace": "*", "slurm_account": "*"}, None, True),
    ({"namespace": "*"}, UNKNOWN, True),
    ({}, IDLE, True),
    ({"severity": ["critical"]}, EKS_NODE, True),
    # an owner matcher does not widen the others: it is one more condition
    ({"namespace": "team-a", "severity": ["warning"]}, EKS_NODE, False),
    ({"namespace": "team-a", "cluster": "dev-*"}, EKS_NODE, False),
])
def test_owner_matchers(match: dict[str, Any], workload: Workload | None, expected: bool) -> None:
    assert matches(match, workload) is expected


def test_selects_by_owner() -> None:
    assert not RouteMatch().selects_by_owner
    assert not RouteMatch.model_validate({"namespace": "*", "slurm_account": "*"}).selects_by_owner
    for owner in ({"namespace": "a"}, {"slurm_account": "a"}, {"workload_labels": {"team": "a"}}):
        assert RouteMatch.model_validate(owner).selects_by_owner


ROUTING = Routing.model_validate({"default": ["platform"], "routes": [
    {"match": {"namespace": "team-a"}, "receivers": ["team-a"], "continue": True},
    {"match": {"slurm_account": "research"}, "receivers": ["research"]},
    {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"]},
]})


@pytest.mark.parametrize("workload, routes, receivers", [
    (EKS_NODE, (0, 2), ["team-a", "ml-oncall"]),
    (SLURM_NODE, (1,), ["research"]),
    (UNKNOWN, (2,), ["ml-oncall"]),
    (None, (2,), ["ml-oncall"]),
])
def test_the_owner_route_then_the_others(workload: Workload | None, routes: tuple[int, ...],
                                         receivers: list[str]) -> None:
    decision = decide(ROUTING, cluster="ml-prod", policy="unhealthy-node", severity="critical", instance_group="p5",
                      tags={}, workload=workload)
    assert decision.routes == routes and [r.name for r in decision.receivers] == receivers


def test_describe_match_prints_the_owner_matchers() -> None:
    match = RouteMatch.model_validate({"severity": ["critical"], "namespace": "team-*", "slurm_account": "research",
                                       "workload_labels": {"tier": "prod", "team": "llm"}})
    assert describe_match(match) == ("severity=critical namespace=team-* slurm_account=research label:team=llm "
                                      "label:tier=prod")
    assert describe_routes(ROUTING)[:2] == ["#0 namespace=team-a -> team-a, continue",
                                            "#1 slurm_account=research -> research"]
