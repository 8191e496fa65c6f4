"""A policy is one module: its settings model and its remediation live beside its evaluate, and the
rules' `policies` (and so the JSON Schema) are assembled from the registry, so the two cannot disagree."""

from __future__ import annotations

import pytest

from hyperpod_guard.policies import REGISTRY, Policy
from hyperpod_guard.policy_settings import PolicySettings, Remediation, remediation_of
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


@pytest.mark.parametrize("policy", REGISTRY.values(), ids=list(REGISTRY))
def test_a_policy_remediates_exactly_when_its_settings_offer_remediation(policy: Policy):
    """Settings with a `remediation` section and no `remediate` would let users enable a
    remediation that never runs; a `remediate` without the section could never be enabled."""
    offered = remediation_of(policy.settings())
    assert (offered is not None) == (policy.remediate is not None), policy.name
    if policy.remediate is not None:
        assert isinstance(offered, Remediation) and not offered.enabled, "remediation is opt-in"
        assert policy.remediate.__module__ == policy.evaluate.__module__, "a policy's remediation lives in its module"


def test_settings_come_back_typed_as_the_policys_own_model():
    policies = Policies()
    for policy in REGISTRY.values():
        assert type(policies.settings(policy)) is policy.settings
