"""foreign_origin: which events are this deployment's to evaluate (issue 14, item 4), as a table;
event_accounts: reading EVENT_ACCOUNTS."""

from __future__ import annotations

import pytest

from hyperpod_guard.events import event_accounts, foreign_origin

OURS, OTHER, ALLOWED = "123456789012", "999988887777", "111122223333"
REGION = "us-west-2"
STACK = frozenset({OURS})  # what the stack sets without an allow-list

#: (event account, event region, EVENT_ACCOUNTS as read, the function's region or a hub's regions) -> a reason
#: containing, or None
CASES = [
    pytest.param(OURS, REGION, STACK, REGION, None, id="own account and region"),
    pytest.param(ALLOWED, REGION, STACK | {ALLOWED}, REGION, None, id="allow-listed account"),
    pytest.param(OTHER, REGION, STACK, REGION, f"account '{OTHER}'", id="another account"),
    pytest.param(OTHER, REGION, STACK | {ALLOWED}, REGION, f"account '{OTHER}'", id="another account, not allow-listed"),
    pytest.param(OURS, "us-east-1", STACK, REGION, "region 'us-east-1'", id="another region"),
    pytest.param(ALLOWED, "eu-west-1", STACK | {ALLOWED}, REGION, "region 'eu-west-1'", id="allowed account, other region"),
    pytest.param("", REGION, STACK, REGION, "no account", id="no account"),
    pytest.param(OURS, "", STACK, REGION, "no region", id="no region"),
    pytest.param(OURS, REGION, STACK, None, "region 'us-west-2'", id="own region unknown: believes nothing"),
    pytest.param(OURS, REGION, frozenset(), REGION, f"account '{OURS}'", id="empty EVENT_ACCOUNTS: believes nothing"),
    pytest.param(OTHER, "eu-west-1", None, REGION, None, id="EVENT_ACCOUNTS unset: no check (local runs)"),
    pytest.param("", "", None, None, None, id="EVENT_ACCOUNTS unset: not even for empty fields"),
    pytest.param(OURS.lstrip("1"), REGION, STACK, REGION, "account", id="exact match only"),
    # a hub (issue 22): the regions it watches, and an organization's bus admitting any member account
    pytest.param(ALLOWED, "eu-west-1", STACK | {ALLOWED}, (REGION, "eu-west-1"), None, id="a fleet region"),
    pytest.param(ALLOWED, "ap-south-1", STACK | {ALLOWED}, (REGION, "eu-west-1"), "region 'ap-south-1'",
                 id="not a fleet region"),
    pytest.param(OTHER, REGION, frozenset({"*"}), REGION, None, id="organization: any account the bus admits"),
    pytest.param(OTHER, "us-east-1", frozenset({"*"}), REGION, "region 'us-east-1'", id="organization, other region"),
]


@pytest.mark.parametrize(("account", "region", "accounts", "own_region", "reason"), CASES)
def test_foreign_origin(account: str, region: str, accounts: frozenset[str] | None,
                        own_region: str | tuple[str, ...] | None, reason: str | None) -> None:
    regions = (own_region,) if isinstance(own_region, str) else own_region or ()
    found = foreign_origin(account, region, accounts=accounts, regions=regions)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found, found


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("", frozenset()),
    (OURS, frozenset({OURS})),
    (f"{OURS},{ALLOWED}", frozenset({OURS, ALLOWED})),
    (f" {OURS} , {ALLOWED},", frozenset({OURS, ALLOWED})),
])
def test_event_accounts(value: str | None, expected: frozenset[str] | None) -> None:
    assert event_accounts(value) == expected
