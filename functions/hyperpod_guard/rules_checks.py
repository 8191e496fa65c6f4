"""Warnings about rules that are valid but are probably not what their author meant: pure, so that
`validate` prints them and `rules push` can refuse or confirm them the same way.

A silence whose matchers are all `*` mutes every alert of every cluster; a silence whose `until`
has passed mutes nothing (it is dead weight, or a typo in the year); a `policy` matcher that no
registered policy name matches mutes nothing either (a misspelt policy). Each warning names the
JSON path of what it is about, as validation problems do (`$.silences[0].until`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from .constants import RULES_INVALID
from .policies import POLICY_NAMES
from .policy_settings import glob_match
from .rules import Rules, Silence
from .timeutil import isoformat

MATCHERS = ("cluster", "policy", "instance_group", "node")

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
                                     "of every cluster; name at least a cluster or a policy"))
    if silence.until is not None and silence.until <= now:
        warnings.append(RulesWarning(f"{path}.until", f"{isoformat(silence.until)} has passed: this silence "
                                     "mutes nothing; remove it or move `until`"))
    names = tuple(policy_names)
    if not any(glob_match(matchers.policy, name) for name in names):
        warnings.append(RulesWarning(f"{path}.matchers.policy", f"{matchers.policy!r} matches no policy: this "
                                     f"silence mutes nothing; policies are {', '.join(names)}"))
    return warnings


def rules_warnings(rules: Rules, now: datetime, policy_names: Iterable[str] = SILENCEABLE) -> list[RulesWarning]:
    """Every warning about the rules at `now`, in document order."""
    names = tuple(policy_names)
    return [warning for index, silence in enumerate(rules.silences)
            for warning in silence_warnings(silence, f"$.silences[{index}]", now, names)]
