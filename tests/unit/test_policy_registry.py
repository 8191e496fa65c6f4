"""A policy is one module: its settings model lives beside its evaluate, and the rules' `policies`
(and so the JSON Schema) are assembled from the registry, so the two cannot disagree."""

from __future__ import annotations

import pytest

from hyperpod_guard.policies import REGISTRY, Policy
from hyperpod_guard.policy_settings import PolicySettings
from hyperpod_guard.rules import Policies, rules_schema


@pytest.mark.parametrize("policy", REGISTRY.values(), ids=list(REGISTRY))
def test_every_registered_policy_owns_its_settings(policy: Policy):
    assert issubclass(policy.settings, PolicySettings) and policy.settings is not PolicySettings
    assert policy.settings.__module__ == policy.evaluate.__module__, "a policy's settings live in its module"


def test_the_rules_have_exactly_one_settings_section_per_registered_policy_in_registry_order():
    assert [field.alias for field in Policies.model_fields.values()] == list(REGISTRY)
    assert [field.annotation for field in Policies.model_fields.values()] == [p.settings for p in REGISTRY.values()]
    assert list(rules_schema()["$defs"]["Policies"]["properties"]) == list(REGISTRY)


def test_each_policy_reads_its_own_settings_from_the_resolved_rules():
    policies = Policies()
    for name, policy in REGISTRY.items():
        assert type(policies.for_policy(name)) is policy.settings
