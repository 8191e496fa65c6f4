"""The functions' environment: one typed model per function (hyperpod_guard.settings), each variable's
name and default declared once (hyperpod_guard.constants), os.environ read there only."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from hyperpod_guard import constants
from hyperpod_guard.constants import METRICS_NAMESPACE, SERVICE_NAME, TRACING, MissingSetting
from hyperpod_guard.settings import EvaluatorSettings, SlackNotifierSettings, SweepSettings

PACKAGE = Path(constants.__file__).parent
REQUIRED = {"TABLE_NAME": "hyperpod-guard-ledger", "TOPIC_ARN": "arn:aws:sns:us-west-2:123456789012:alerts"}


def test_evaluator_defaults() -> None:
    assert EvaluatorSettings.from_env(REQUIRED) == EvaluatorSettings(
        table_name="hyperpod-guard-ledger", topic_arn="arn:aws:sns:us-west-2:123456789012:alerts",
        rules_path="/hyperpod-guard/rules", rules_max_age=60, rules_required=False, tags_max_age=300.0,
        silences_max_age=30.0, event_accounts=None, region=None,
    )


def test_sweep_is_the_evaluator_plus_its_concurrency() -> None:
    assert [f.name for f in dataclasses.fields(SweepSettings)] == [
        *(f.name for f in dataclasses.fields(EvaluatorSettings)), "sweep_concurrency"]
    assert SweepSettings.from_env(REQUIRED).sweep_concurrency == 8
    assert SweepSettings.from_env({**REQUIRED, "SWEEP_CONCURRENCY": " 2 "}).sweep_concurrency == 2


def test_slack_notifier_defaults() -> None:
    env = {"SLACK_WEBHOOK_SECRET": "hyperpod-guard/slack-webhook", "TABLE_NAME": "hyperpod-guard-ledger"}
    assert SlackNotifierSettings.from_env(env) == SlackNotifierSettings(
        webhook_secret="hyperpod-guard/slack-webhook", receiver_secret_prefix="hyperpod-guard/slack/", secret_max_age=300, timeout=15.0, max_attempts=4,
        table_name="hyperpod-guard-ledger", idempotency_ttl=86400, function_name=None,
    )


def test_powertools_defaults() -> None:
    """What every handler reads when it is imported (handlers/observability.py)."""
    assert (SERVICE_NAME.read({}), METRICS_NAMESPACE.read({}), TRACING.read({})) == ("hyperpod-guard", "HyperPodGuard", False)
    assert TRACING.read({"HYPERPOD_GUARD_TRACING": "TRUE"}) is True
    assert TRACING.read({"HYPERPOD_GUARD_TRACING": "yes"}) is False


@pytest.mark.parametrize(("model", "env", "missing"), [
    (EvaluatorSettings, {"TOPIC_ARN": "t"}, "TABLE_NAME"),
    (EvaluatorSettings, {"TABLE_NAME": "t", "TOPIC_ARN": "  "}, "TOPIC_ARN"),
    (SweepSettings, {}, "TABLE_NAME"),
    (SlackNotifierSettings, {"TABLE_NAME": "t"}, "SLACK_WEBHOOK_SECRET"),
    (SlackNotifierSettings, {"SLACK_WEBHOOK_SECRET": "s"}, "TABLE_NAME"),
])
def test_a_required_variable_missing_is_named(model, env, missing) -> None:
    with pytest.raises(MissingSetting, match=f"^{missing} is not set$"):
        model.from_env(env)
    assert issubclass(MissingSetting, KeyError)  # as os.environ[...] raised before


def test_blank_means_the_default_except_for_event_accounts() -> None:
    blank = {name: " " for name in ("RULES_PATH", "RULES_MAX_AGE", "RULES_REQUIRED", "TAGS_MAX_AGE", "AWS_REGION")}
    loaded = EvaluatorSettings.from_env({**REQUIRED, **blank, "EVENT_ACCOUNTS": " "})
    assert (loaded.rules_path, loaded.rules_max_age, loaded.rules_required, loaded.tags_max_age, loaded.region) == (
        "/hyperpod-guard/rules", 60, False, 300.0, None)
    # set but empty believes no account (events.event_accounts("") is an empty set); unset checks nothing
    assert loaded.event_accounts == ""
    assert EvaluatorSettings.from_env(REQUIRED).event_accounts is None


def test_values_are_trimmed_and_typed() -> None:
    loaded = SweepSettings.from_env({**REQUIRED, "RULES_PATH": " /x/rules ", "RULES_MAX_AGE": "0", "RULES_REQUIRED": " True",
                                     "TAGS_MAX_AGE": "2.5", "SILENCES_MAX_AGE": "0",
                                     "EVENT_ACCOUNTS": "111111111111, 222222222222",
                                     "AWS_REGION": "eu-west-1", "SWEEP_CONCURRENCY": "1"})
    assert loaded == SweepSettings(
        table_name="hyperpod-guard-ledger", topic_arn="arn:aws:sns:us-west-2:123456789012:alerts", rules_path="/x/rules",
        rules_max_age=0, rules_required=True, tags_max_age=2.5, silences_max_age=0.0,
        event_accounts="111111111111, 222222222222",
        region="eu-west-1", sweep_concurrency=1,
    )


def test_the_region_falls_back_to_aws_default_region() -> None:
    assert EvaluatorSettings.from_env({**REQUIRED, "AWS_DEFAULT_REGION": "us-east-2"}).region == "us-east-2"
    both = {**REQUIRED, "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-east-2"}
    assert EvaluatorSettings.from_env(both).region == "us-west-2"


@pytest.mark.parametrize(("model", "name", "value", "message"), [
    (EvaluatorSettings, "RULES_MAX_AGE", "-1", "RULES_MAX_AGE must be a whole number of seconds >= 0, got '-1'"),
    (EvaluatorSettings, "RULES_MAX_AGE", "1.5", "RULES_MAX_AGE must be a whole number of seconds >= 0, got '1.5'"),
    (EvaluatorSettings, "TAGS_MAX_AGE", "soon", "TAGS_MAX_AGE must be a number of seconds >= 0, got 'soon'"),
    (EvaluatorSettings, "TAGS_MAX_AGE", "nan", "TAGS_MAX_AGE must be a number of seconds >= 0, got 'nan'"),
    (EvaluatorSettings, "SILENCES_MAX_AGE", "-1", "SILENCES_MAX_AGE must be a number of seconds >= 0, got '-1'"),
    (SweepSettings, "SWEEP_CONCURRENCY", "many", "SWEEP_CONCURRENCY must be a whole number, got 'many'"),
    (SlackNotifierSettings, "SLACK_TIMEOUT", "15s", "SLACK_TIMEOUT must be a number of seconds, got '15s'"),
    (SlackNotifierSettings, "SLACK_MAX_ATTEMPTS", "four", "SLACK_MAX_ATTEMPTS must be a whole number, got 'four'"),
    (SlackNotifierSettings, "IDEMPOTENCY_TTL", "1d", "IDEMPOTENCY_TTL must be a whole number of seconds, got '1d'"),
])
def test_a_malformed_value_is_named_with_its_value(model, name, value, message) -> None:
    env = {**REQUIRED, "SLACK_WEBHOOK_SECRET": "s", name: value}
    with pytest.raises(ValueError, match=f"^{message}$"):
        model.from_env(env)


def test_environment_writes_the_given_values_and_every_default() -> None:
    given = {"table_name": "ledger", "topic_arn": "topic", "rules_path": "/p/rules", "rules_required": True,
             "event_accounts": "111111111111"}
    assert EvaluatorSettings.environment(**given) == {
        "TABLE_NAME": "ledger", "TOPIC_ARN": "topic", "RULES_PATH": "/p/rules", "RULES_MAX_AGE": "60",
        "RULES_REQUIRED": "true", "TAGS_MAX_AGE": "300", "SILENCES_MAX_AGE": "30", "EVENT_ACCOUNTS": "111111111111",
    }
    assert SweepSettings.environment(**given) == {**EvaluatorSettings.environment(**given), "SWEEP_CONCURRENCY": "8"}
    assert EvaluatorSettings.environment(**{**given, "rules_required": False})["RULES_REQUIRED"] == "false"
    # what the stack writes reads back as the model it meant
    assert SweepSettings.from_env(SweepSettings.environment(**given)) == SweepSettings(
        table_name="ledger", topic_arn="topic", rules_path="/p/rules", rules_max_age=60, rules_required=True,
        tags_max_age=300.0, silences_max_age=30.0, event_accounts="111111111111", region=None, sweep_concurrency=8)
    with pytest.raises(TypeError, match="EvaluatorSettings has no field table"):
        EvaluatorSettings.environment(table="ledger")


def test_environment_never_writes_what_lambda_sets() -> None:
    # Lambda refuses a function whose environment sets a reserved variable
    for model in (EvaluatorSettings, SweepSettings, SlackNotifierSettings):
        assert not {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME"} & model.environment().keys()


def test_the_runtime_keeps_the_same_defaults() -> None:
    """Defaults that modules still state for their own constructors agree with the settings."""
    from hyperpod_guard import cluster_reader, events, rules_store
    from hyperpod_guard.notify import slack
    from hyperpod_guard.service import Runtime

    assert rules_store.DEFAULT_MAX_AGE == constants.RULES_MAX_AGE.default_value
    assert rules_store.DEFAULT_RULES_PATH == constants.RULES_PATH.default_value
    assert cluster_reader.DEFAULT_TAGS_MAX_AGE == constants.TAGS_MAX_AGE.default_value
    assert Runtime.sweep_concurrency == constants.SWEEP_CONCURRENCY.default_value
    assert slack.DEFAULT_TIMEOUT == constants.SLACK_TIMEOUT.default_value == 15.0
    assert slack.SlackSender("https://hooks.slack.invalid/x").max_attempts == constants.SLACK_MAX_ATTEMPTS.default_value
    assert events.EVENT_ACCOUNTS_ENV == constants.EVENT_ACCOUNTS.name


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "from-os")
    monkeypatch.setenv("TOPIC_ARN", "topic")
    monkeypatch.setenv("TAGS_MAX_AGE", "7")
    loaded = EvaluatorSettings.from_env()
    assert (loaded.table_name, loaded.tags_max_age) == ("from-os", 7.0)


# -- one place ----------------------------------------------------------------------------------------

#: not Lambda code (infra/bundling.py leaves them out of the asset): the CLI reads its own variables
NOT_SHIPPED = ("cli", "local", "scenarios.py", "redrive.py")
#: reads that are still elsewhere, each with the reason
ALLOWED = {
    # service._count_tags_unavailable: the namespace of a metric emitted outside a handler
    ("service.py", "POWERTOOLS_METRICS_NAMESPACE"),
}


def _environment_reads(tree: ast.AST) -> list[str]:
    """The variables read through os.environ / os.getenv in a module ('?' when not a literal)."""
    reads = []
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            target = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                _is_environ(node.func.value) and node.func.attr in {"get", "pop", "setdefault"}
                or node.func.attr == "getenv"):
            target = node.args[0] if node.args else None
        else:
            continue
        reads.append(target.value if isinstance(target, ast.Constant) else "?")
    return reads


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" or isinstance(node, ast.Name) and node.id == "environ"


def test_the_functions_read_their_environment_only_through_settings() -> None:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0].startswith(NOT_SHIPPED) or relative.as_posix() == "constants.py":  # Var.read
            continue
        found |= {(relative.as_posix(), name) for name in _environment_reads(ast.parse(path.read_text()))}
    assert found <= ALLOWED, f"read these through hyperpod_guard.constants/settings: {sorted(found - ALLOWED)}"


def test_the_scan_sees_reads() -> None:
    tree = ast.parse("import os\nfrom os import environ\nos.environ['A']\nos.environ.get('B', '')\nos.getenv('C')\n"
                     "environ.get(name)\n")
    assert sorted(_environment_reads(tree)) == ["?", "A", "B", "C"]
