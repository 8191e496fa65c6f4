"""Warnings about rules that are valid but are probably not what their author meant: pure, so that
`validate` prints them and `rules push` can refuse or confirm them the same way.

A silence whose matchers are all `*` mutes every alert of every cluster; a silence whose `until`
has passed mutes nothing (it is dead weight, or a typo in the year); a `policy` matcher that no
registered policy name matches mutes nothing either (a misspelt policy). Each warning names the
JSON path of what it is about, as validation problems do (`$.silences[0].until`).

Routing: a route that can never match, because an earlier route without `continue` takes every alert
it would (an empty `match` shadows every route after it), is a warning. A receiver other than
`default` needs its webhook secret (<prefix>/slack/NAME); the rules cannot know whether it exists,
so `routing_notes` says which: notes, not warnings (`validate --strict` does not fail on them).

Routing by owner: a route that selects by owner (namespace, slurm_account, workload_labels) matches only
alerts whose node's workload was read, which a `workload` entry turns on per cluster; with no entry that can
select any cluster the route selects, it never matches: a warning at its match.

ChatOps: a policy whose remediation says `approval: required` while `chatops.approvers` is empty never
acts (nobody may approve): a warning at that policy's `approval`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from . import naming
from .constants import RULES_INVALID
from .policies import POLICY_NAMES, REGISTRY
from .policy_settings import glob_match, remediation_of
from .rules import ClusterMatch, Policies, RouteMatch, Routing, Rules, Silence, json_path
from .timeutil import isoformat

MATCHERS = ("cluster", "account", "region", "policy", "instance_group", "node")

#: what a silence's policy matcher may name: the policies and the system's own rules-invalid alert
SILENCEABLE = (*POLICY_NAMES, RULES_INVALID)


class RulesWarning(NamedTuple):
    path: str
    message: str


def _matches_everything(pattern: str) -> bool:
    return pattern != "" and set(pattern) == {"*"}


def silence_warnings(silence: Silence, path: str, now: datetime,
                     policy_names: Iterable[str] = SILENCEABLE) -> list[RulesWarning]:
    """What is suspicious about one silence (at JSON path `path`) at `now`."""
    warnings = []
    matchers = silence.matchers
    if all(_matches_everything(getattr(matchers, name)) for name in MATCHERS):
        warnings.append(RulesWarning(f"{path}.matchers", 'every matcher is "*": this silence mutes every alert '
                                     "of every cluster; name at least a cluster, an account, a region or a policy"))
    if silence.until is not None and silence.until <= now:
        warnings.append(RulesWarning(f"{path}.until", f"{isoformat(silence.until)} has passed: this silence "
                                     "mutes nothing; remove it or move `until`"))
    names = tuple(policy_names)
    if not any(glob_match(matchers.policy, name) for name in names):
        warnings.append(RulesWarning(f"{path}.matchers.policy", f"{matchers.policy!r} matches no policy: this "
                                     f"silence mutes nothing; policies are {', '.join(names)}"))
    return warnings


def _one_of_covers(earlier: tuple[str, ...], later: tuple[str, ...]) -> bool:
    """A one-of matcher (empty: any) takes every value another takes."""
    return not earlier or (bool(later) and set(later) <= set(earlier))


def _covers(earlier: RouteMatch, later: RouteMatch) -> bool:
    """Whether every alert `later` matches is matched by `earlier` too (judged matcher by matcher:
    a glob covers only `*` patterns and itself, so this may miss a shadowed route, never invent one)."""
    return (_one_of_covers(earlier.severity, later.severity) and _one_of_covers(earlier.policy, later.policy)
            and (_matches_everything(earlier.cluster) or earlier.cluster == later.cluster)
            # only "*" matches a cluster whose account and region are unknown (rules.location_matches)
            and earlier.account in ("*", later.account) and earlier.region in ("*", later.region)
            # "**" does not match an alert without an instance group; only "*" does (glob_match)
            and earlier.instance_group in ("*", later.instance_group)
            and earlier.tags.items() <= later.tags.items()
            # owner matchers: some job on the node must match them all, so a narrower owner is covered only by
            # the same owner or by none
            and earlier.namespace in ("*", later.namespace) and earlier.slurm_account in ("*", later.slurm_account)
            and earlier.workload_labels.items() <= later.workload_labels.items())


def routing_warnings(routing: Routing) -> list[RulesWarning]:
    """Routes that can never match: an earlier route without `continue` takes every alert they would."""
    warnings = []
    for index, later in enumerate(routing.routes):
        shadow = next((i for i, earlier in enumerate(routing.routes[:index])
                       if not earlier.continue_ and _covers(earlier.match, later.match)), None)
        if shadow is not None:
            warnings.append(RulesWarning(f"$.routing.routes[{index}]", f"never matches: route #{shadow} (without "
                                         "`continue`) takes every alert this one would; move this route before it, "
                                         f"or give route #{shadow} `\"continue\": true`"))
    return warnings


def _literal_start(pattern: str) -> str:
    """What every value a glob matches starts with (all of it for a literal)."""
    return re.split(r"[*?\[]", pattern, maxsplit=1)[0]


def _may_meet(one: str, other: str) -> bool:
    """Whether two globs may match a common value: False when one is a literal the other does not match, or
    their literal starts differ (`ml-*`, `slurm-*`); otherwise taken to meet, so this may miss a route that
    never matches, never invent one."""
    if _literal_start(one) == one:
        return glob_match(other, one)
    if _literal_start(other) == other:
        return glob_match(one, other)
    start, other_start = _literal_start(one), _literal_start(other)
    return start.startswith(other_start) or other_start.startswith(start)


def _may_share_clusters(route: ClusterMatch, entry: ClusterMatch) -> bool:
    """Whether a route's and a workload entry's cluster matchers may select a common cluster."""
    return (_may_meet(route.cluster, entry.cluster) and _may_meet(route.account, entry.account)
            and _may_meet(route.region, entry.region)
            and all(route.tags[key] == value for key, value in entry.tags.items() if key in route.tags))


def owner_route_warnings(rules: Rules) -> list[RulesWarning]:
    """Routes that select by owner where no `workload` entry reads the workload of any cluster they select."""
    warnings = []
    for index, route in enumerate(rules.routing.routes):
        if route.match.selects_by_owner and not any(_may_share_clusters(route.match, entry.match)
                                                     for entry in rules.workload):
            why = ("there is no `workload` entry" if not rules.workload else
                   "no `workload` entry selects the clusters this route does")
            warnings.append(RulesWarning(
                f"$.routing.routes[{index}].match", f"selects by owner (namespace, slurm_account, workload_labels) "
                f"but {why}: the workload of these clusters is never read, so this route never matches; add a "
                "`workload` entry for them (README, Blast radius)"))
    return warnings


def routing_notes(routing: Routing, prefix: str = naming.DEFAULT_PREFIX) -> list[RulesWarning]:
    """One note per receiver other than `default`, where it is first named: its webhook secret must exist."""
    places = [(f"$.routing.routes[{index}].receivers", route.receivers) for index, route in enumerate(routing.routes)]
    first: dict[str, str] = {}
    for path, names in [*places, ("$.routing.default", routing.default)]:
        for name in names:
            first.setdefault(name, path)
    return [RulesWarning(path, f"receiver {name!r}: make sure the secret "
                         f"{naming.slack_receiver_secret_name(prefix, name)} exists (its Slack incoming-webhook URL; "
                         f"with another stack prefix: <prefix>/slack/{name})")
            for name, path in first.items() if name != naming.DEFAULT_RECEIVER]


def _approval_required(policies: Policies, path: tuple[int | str, ...]) -> list[str]:
    """The JSON paths of the `approval` settings that say `required` among `policies` (at `path`)."""
    found = []
    for name in REGISTRY:
        remediation = remediation_of(policies.for_policy(name))
        if remediation is not None and remediation.approval == "required":
            found.append(json_path((*path, name, "remediation", "approval")))
    return found


def approval_warnings(rules: Rules) -> list[RulesWarning]:
    """Remediation that waits for an approval nobody may give: `chatops.approvers` is empty."""
    if rules.chatops.approvers:
        return []
    paths = _approval_required(rules.policies, ("policies",))
    for index, override in enumerate(rules.overrides):
        paths += _approval_required(override.policies, ("overrides", index, "policies"))
    return [RulesWarning(path, "approval is required but `chatops.approvers` is empty: nobody can approve, so this "
                         "remediation never acts; name the Slack users or user groups who may (U…, W…, S…)")
            for path in paths]


def rules_warnings(rules: Rules, now: datetime, policy_names: Iterable[str] = SILENCEABLE) -> list[RulesWarning]:
    """Every warning about the rules at `now`, in document order."""
    names = tuple(policy_names)
    return [*(warning for index, silence in enumerate(rules.silences)
              for warning in silence_warnings(silence, f"$.silences[{index}]", now, names)),
            *routing_warnings(rules.routing), *owner_route_warnings(rules), *approval_warnings(rules)]
