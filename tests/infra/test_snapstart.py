"""SnapStart as synthesised (issue 17, the cold path): each of our functions resumes its published versions
from a snapshot of their init; each deploy publishes a version of a changed function and deletes the one
before; and everything that invokes a function goes through its `live` alias, never the unqualified
function ($LATEST, which SnapStart does not cover): the EventBridge rules' targets, the SNS subscription,
the SQS event source mapping, the async invoke settings, and the permissions that let EventBridge and SNS
invoke. What the init puts in the snapshot: tests/e2e/test_snapstart_init.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.common import LIVE

from .conftest import make_stack
from .test_dashboard_metrics import read_metrics
from .test_security import VARIANTS
from .test_stack import PREFIX, _violations, resources

#: the variants and the functions each has (without Slack, no notifier)
FUNCTIONS = {
    "default": {"evaluator", "sweep", "worker", "slack-notifier"},
    "all-options": {"evaluator", "sweep", "worker", "slack-notifier"},
    "without-slack": {"evaluator", "sweep", "worker"},
    "slack-app": {"evaluator", "sweep", "worker", "slack-notifier", "slack-interactivity", "slack-actions"},
}
#: who invokes which function: (what, function); each must name the function's `live` alias
WIRING = {
    ("rule hyperpod-guard-hyperpod-events", "evaluator"), ("rule hyperpod-guard-sweep", "sweep"),
    ("permission events.amazonaws.com", "evaluator"), ("permission events.amazonaws.com", "sweep"),
    ("async invoke config", "evaluator"), ("event source mapping", "worker"),
    ("subscription", "slack-notifier"), ("permission sns.amazonaws.com", "slack-notifier"),
    ("async invoke config", "slack-notifier"),
    # Slack app mode: the interactivity endpoint's Function URL (and its two public permissions), the actions queue
    ("function url", "slack-interactivity"), ("permission *", "slack-interactivity"),
    ("event source mapping", "slack-actions"),
}
REGION, ACCOUNT = "us-west-2", "123456789012"


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def variant(request: pytest.FixtureRequest, synth: Callable[..., dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return request.param, synth(**VARIANTS[request.param])


def ours(template: dict[str, Any]) -> dict[str, str]:
    """Our functions (the named ones; the rules seed's provider has a generated name): logical id -> name
    without the prefix."""
    return {lid: r["Properties"]["FunctionName"].removeprefix(f"{PREFIX}-")
            for lid, r in resources(template, "AWS::Lambda::Function").items() if "FunctionName" in r["Properties"]}


class Resolver:
    """Just enough CloudFormation to say what a function reference names: Ref (a function: its name; an
    alias: its ARN, as CloudFormation returns them), Fn::GetAtt Arn of a function (the unqualified ARN),
    Fn::Join / Fn::Select / Fn::Split. Other resources resolve to their logical id."""

    def __init__(self, template: dict[str, Any]):
        self.names = ours(template)
        self.refs: dict[str, str] = {lid: f"{PREFIX}-{name}" for lid, name in self.names.items()}
        self.arns = {lid: self._arn(name) for lid, name in self.refs.items()}
        for lid, alias in resources(template, "AWS::Lambda::Alias").items():
            function = self.refs[alias["Properties"]["FunctionName"]["Ref"]]
            self.refs[lid] = f"{self._arn(function)}:{alias['Properties']['Name']}"

    @staticmethod
    def _arn(name: str) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, (str, int)):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.refs.get(argument, argument)
        if function == "Fn::GetAtt":
            assert argument[1] == "Arn", value
            return self.arns.get(argument[0], argument[0])
        if function == "Fn::Join":
            return argument[0].join(self(argument[1]))
        if function == "Fn::Select":
            return self(argument[1])[int(argument[0])]
        if function == "Fn::Split":
            return self(argument[1]).split(argument[0])
        raise AssertionError(f"cannot resolve {value}")

    def target(self, value: Any, qualifier: Any = None) -> tuple[str, str | None]:
        """(function without the prefix, qualifier or None) of a function ARN, a name or `name:qualifier`."""
        resolved = self(value)
        parts = resolved.split(":")
        name, qualified = (parts[6], parts[7:]) if resolved.startswith("arn:") else (parts[0], parts[1:])
        if qualifier is not None:
            assert not qualified, value
            qualified = [self(qualifier)]
        return name.removeprefix(f"{PREFIX}-"), qualified[0] if qualified else None


def invocations(template: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(who, function, qualifier) of everything in the template that invokes a function or configures
    how it is invoked."""
    resolve = Resolver(template)
    found: list[tuple[str, str, str | None]] = []
    for rule in resources(template, "AWS::Events::Rule").values():
        found += [(f"rule {rule['Properties']['Name']}", *resolve.target(t["Arn"]))
                  for t in rule["Properties"].get("Targets", [])]
    for subscription in resources(template, "AWS::SNS::Subscription").values():
        if subscription["Properties"]["Protocol"] == "lambda":
            found.append(("subscription", *resolve.target(subscription["Properties"]["Endpoint"])))
    for mapping in resources(template, "AWS::Lambda::EventSourceMapping").values():
        found.append(("event source mapping", *resolve.target(mapping["Properties"]["FunctionName"])))
    for config in resources(template, "AWS::Lambda::EventInvokeConfig").values():
        properties = config["Properties"]
        found.append(("async invoke config", *resolve.target(properties["FunctionName"], properties["Qualifier"])))
    for url in resources(template, "AWS::Lambda::Url").values():
        properties = url["Properties"]
        found.append(("function url", *resolve.target(properties["TargetFunctionArn"], properties.get("Qualifier"))))
    public: set[tuple[str, str, str | None]] = set()  # a Function URL's two: InvokeFunctionUrl, InvokeFunction
    for permission in resources(template, "AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        target = (f"permission {properties['Principal']}", *resolve.target(properties["FunctionName"]))
        if properties["Principal"] == "*":
            assert properties["Action"] in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction"), properties
            public.add(target)
            continue
        assert properties["Action"] == "lambda:InvokeFunction", properties
        found.append(target)
    return found + sorted(public, key=str)


def test_every_function_resumes_its_published_versions_from_a_snapshot(variant: tuple[str, dict[str, Any]]) -> None:
    name, template = variant
    functions = {lid: resources(template, "AWS::Lambda::Function")[lid]["Properties"] for lid in ours(template)}
    assert {f["FunctionName"].removeprefix(f"{PREFIX}-") for f in functions.values()} == FUNCTIONS[name]
    for function in functions.values():
        assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}, function["FunctionName"]
        assert function["Runtime"] == "python3.14"  # SnapStart: Python 3.12 and later
        assert "EphemeralStorage" not in function and "FileSystemConfigs" not in function  # (SnapStart refuses)


def test_the_rules_seed_keeps_its_provider_unqualified(variant: tuple[str, dict[str, Any]]) -> None:
    """The custom resources' provider (CDK's Node.js function, not ours) has no SnapStart: CloudFormation
    invokes it unqualified, as before."""
    _, template = variant
    tokens = {r["Properties"]["ServiceToken"]["Fn::GetAtt"][0] for r in resources(template, "Custom::AWS").values()}
    (provider,) = tokens
    properties = resources(template, "AWS::Lambda::Function")[provider]["Properties"]
    assert "FunctionName" not in properties and "SnapStart" not in properties
    assert properties["Runtime"].startswith("nodejs")


def test_each_deploy_publishes_a_version_and_live_points_at_it(variant: tuple[str, dict[str, Any]]) -> None:
    """One version per function in the template (CDK names it by a hash of the function's code and
    configuration: a changed function is a new version), deleted when the next deploy replaces it or the
    stack goes (each keeps a billed snapshot, and nothing invokes an old one); `live` on it."""
    _, template = variant
    versions = resources(template, "AWS::Lambda::Version")
    aliases = resources(template, "AWS::Lambda::Alias")
    functions = ours(template)
    assert len(versions) == len(aliases) == len(functions)
    for lid, name in functions.items():
        ((version_id, version),) = [(v, r) for v, r in versions.items()
                                    if r["Properties"]["FunctionName"] == {"Ref": lid}]
        assert (version.get("DeletionPolicy"), version.get("UpdateReplacePolicy")) == ("Delete", "Delete"), name
        ((alias),) = [r["Properties"] for r in aliases.values() if r["Properties"]["FunctionName"] == {"Ref": lid}]
        assert alias["Name"] == LIVE == "live"
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}, name
        assert "RoutingConfig" not in alias and "ProvisionedConcurrencyConfig" not in alias


def test_everything_that_invokes_a_function_names_its_live_alias(variant: tuple[str, dict[str, Any]]) -> None:
    """No trigger, permission or async invoke setting on the unqualified function: $LATEST has no snapshot,
    and async invoke settings apply to the qualifier they are made for only."""
    name, template = variant
    found = invocations(template)
    assert [f for f in found if f[2] != LIVE] == []
    wiring = {(who, function) for who, function, _ in found}
    assert wiring == {(who, function) for who, function in WIRING if function in FUNCTIONS[name]}
    assert len(found) == len(wiring)  # each once


def test_the_alarms_and_graphs_count_every_version(template: dict[str, Any]) -> None:
    """Lambda's metrics by FunctionName alone sum all versions and aliases: an alarm keeps counting
    across the deploy that moves `live` (one by version would go quiet at every deploy)."""
    lambda_metrics = [(metric, dimensions) for namespace, metric, dimensions in read_metrics(template)
                      if namespace == "AWS/Lambda"]
    assert len(lambda_metrics) >= 2 * len(ours(template))  # errors and throttles per function, at least
    assert {frozenset(dimensions or {}) for _, dimensions in lambda_metrics} == {frozenset({"FunctionName"})}


def test_synthesis_warns_of_nothing(tmp_path: Path) -> None:
    """Two warnings are acknowledged where they are made: CDK's reminder that SnapStart needs published
    versions (python_function publishes them), and CloudFormation Validate's W3694 on the SNS subscription
    to an alias (infra/alerting.py)."""
    _, stack = make_stack(tmp_path)
    Template.from_stack(stack)  # runs the validation plugins (cdk-nag, CloudFormation Validate)
    assert _violations(tmp_path) == []
    assert Annotations.from_stack(stack).find_warning("*", Match.any_value()) == []
