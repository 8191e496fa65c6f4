"""Which receivers an alert goes to: the rules' `routing` (rules.Routing) applied to one alert, as
Alertmanager's route tree does it with one level of routes.

Routes are tried in order; the first that matches wins, unless it says `continue`, in which case
the routes after it are tried too (and their receivers added). An alert no route matches goes to
the `default` receivers. A receiver named by several matching routes is sent to once: it keeps the
place and the route index of the first route that named it, and the first mention any of them adds
(a mention is something more to say, so a later route's is not lost to an earlier route without
one).

Pure: no I/O, no clock. The pipeline calls `route` per alert; `hyperpod-guard explain` and
`hyperpod-guard routes test` show what `decide` decides (which routes, which receivers);
`describe_routes` writes the route table for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .findings import Severity
from .fleet import Location
from .notify.message import ReceiverRef
from .rules import ClusterRules, Route, RouteMatch, Routing
from .workload.model import Workload

#: Slack's syntax for the special mentions (https://api.slack.com/reference/surfaces/formatting#special-mentions)
_SPECIAL_MENTIONS = {"here": "<!here>", "channel": "<!channel>"}


def mention_syntax(mention: str) -> str:
    """A route's `mention` as the rules write it -> as Slack writes it: `subteam^S…` -> `<!subteam^S…>`
    (a user group), `@U…`/`@W…` -> `<@U…>` (a user), `here` -> `<!here>`, `channel` -> `<!channel>`."""
    if mention in _SPECIAL_MENTIONS:
        return _SPECIAL_MENTIONS[mention]
    if mention.startswith("@"):
        return f"<{mention}>"
    return f"<!{mention}>"


class RouteDecision(NamedTuple):
    """Where one alert goes and why: the indexes of the routes it took (empty: none matched, so the
    default receivers) and its receivers, each once."""

    routes: tuple[int, ...]
    receivers: tuple[ReceiverRef, ...]


def decide(routing: Routing, *, cluster: str, policy: str, severity: Severity | str, instance_group: str | None,
           tags: Mapping[str, str] | None, location: Location | None = None,
           workload: Workload | None = None) -> RouteDecision:
    """The routes an alert takes, in order (each that matches, up to and including the first that
    matches without `continue`) and the receivers they name. `cluster`: its key (fleet.py); `tags`
    None: the cluster's tags were not read, so routes that select by tag do not match (as overrides);
    `location`: where the cluster lives (None: the key's own if qualified, else unknown, which only
    account and region matchers '*' match); `workload`: what runs on the alert's node (None: not read, so routes
    that select by owner do not match)."""
    taken = []
    for index, candidate in enumerate(routing.routes):
        if candidate.match.matches_alert(cluster=cluster, policy=policy, severity=Severity(severity),
                                         instance_group=instance_group, tags=tags, location=location,
                                         workload=workload):
            taken.append(index)
            if not candidate.continue_:
                break
    if not taken:
        return RouteDecision((), tuple(ReceiverRef(name=name) for name in dict.fromkeys(routing.default)))
    refs: dict[str, ReceiverRef] = {}
    for index in taken:
        chosen = routing.routes[index]
        mention = mention_syntax(chosen.mention) if chosen.mention else None
        for name in chosen.receivers:
            known = refs.get(name)
            if known is None:
                refs[name] = ReceiverRef(name=name, mention=mention, route=index)
            elif known.mention is None and mention is not None:
                refs[name] = known.model_copy(update={"mention": mention})
    return RouteDecision(tuple(taken), tuple(refs.values()))


def route(routing: Routing, *, cluster: str, policy: str, severity: Severity | str, instance_group: str | None,
          tags: Mapping[str, str] | None, location: Location | None = None,
          workload: Workload | None = None) -> tuple[ReceiverRef, ...]:
    """The receivers an alert with these fields goes to, each once, in route order (never empty)."""
    return decide(routing, cluster=cluster, policy=policy, severity=severity, instance_group=instance_group,
                  tags=tags, location=location, workload=workload).receivers


def receivers_for(rules: ClusterRules, *, policy: str, severity: Severity | str, instance_group: str | None,
                  workload: Workload | None = None) -> tuple[ReceiverRef, ...]:
    """`route` with the cluster's key, tags and location from its resolved rules."""
    return route(rules.routing, cluster=rules.cluster, policy=policy, severity=severity,
                 instance_group=instance_group, tags=rules.tags, location=rules.location, workload=workload)


# --- for people ----------------------------------------------------------------------------------


def describe_match(match: RouteMatch) -> str:
    """A route's matchers as one line, e.g. `severity=critical cluster=ml-prod* account=111122223333 tag:team=llm`."""
    parts = []
    if match.severity:
        parts.append("severity=" + ",".join(s.value for s in match.severity))
    if match.policy:
        parts.append("policy=" + ",".join(match.policy))
    if match.cluster != "*":
        parts.append(f"cluster={match.cluster}")
    if match.account != "*":
        parts.append(f"account={match.account}")
    if match.region != "*":
        parts.append(f"region={match.region}")
    if match.instance_group != "*":
        parts.append(f"instance_group={match.instance_group}")
    parts += [f"tag:{key}={value}" for key, value in sorted(match.tags.items())]
    if match.namespace != "*":
        parts.append(f"namespace={match.namespace}")
    if match.slurm_account != "*":
        parts.append(f"slurm_account={match.slurm_account}")
    parts += [f"label:{key}={value}" for key, value in sorted(match.workload_labels.items())]
    return " ".join(parts) or "(every alert)"


def describe_route(route_: Route) -> str:
    """`<matchers> -> <receivers>[ mention <…>][, continue]`."""
    text = f"{describe_match(route_.match)} -> {', '.join(route_.receivers)}"
    if route_.mention:
        text += f" mention {mention_syntax(route_.mention)}"
    return text + (", continue" if route_.continue_ else "")


def describe_routes(routing: Routing) -> list[str]:
    """The route table as lines for people: `#0 severity=critical -> ml-oncall, continue`, ...,
    then `default -> default`."""
    lines = [f"#{index} {describe_route(r)}" for index, r in enumerate(routing.routes)]
    return [*lines, f"default -> {', '.join(routing.default)}"]


def describe_receivers(refs: tuple[ReceiverRef, ...]) -> str:
    """`ml-oncall <!subteam^S0123ABCD> (#0), llm-team (#1)`; `default (default)` when no route matched."""
    return ", ".join(f"{ref.name}{f' {ref.mention}' if ref.mention else ''} "
                     f"({'default' if ref.route is None else f'#{ref.route}'})" for ref in refs)
