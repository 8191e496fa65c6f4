"""Rules in SSM Parameter Store: read, merge, validate, keep the last good; split and push.

One Standard parameter holds only 4 KB, so the rules document lives in several parameters
under one path (`/hyperpod-guard/rules/00`, `/01`, ..., plus any a team adds, e.g.
`/hyperpod-guard/rules/team-a/x`). They are merged in name order: objects key by key,
lists concatenated (so `overrides`, `silences` and `required` can be spread over several
parameters), and for scalars the later parameter wins.

Invalid rules never stop evaluation: `RulesStore.load` falls back to the last good rules of
this process, or to the defaults, and says why in `LoadedRules.error` so the caller can raise
one alert. Only AWS failures raise (so that Lambda retries).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from . import naming
from .constants import RULES_MAX_AGE, RULES_PATH, RULES_REQUIRED
from .errors import InvalidRulesError
from .rules import DEFAULT_RULES, Rules, json_path, load_rules

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

DEFAULT_RULES_PATH = naming.rules_path()
DEFAULT_MAX_AGE = 60
#: a Standard parameter's value limit
SSM_STANDARD_LIMIT = 4096
#: parts are named `<path>/00` .. `<path>/99`: two digits keep name order == part order
MAX_PARTS = 100

Source = Literal["ssm", "defaults", "last-good"]


# --- paths and names -------------------------------------------------------------------


def normalise_path(path: str) -> str:
    """'/hyperpod-guard/rules/' -> '/hyperpod-guard/rules'; SSM hierarchies start with '/'."""
    if not path.startswith("/"):
        raise ValueError(f"an SSM parameter path starts with '/', got {path!r}")
    return "/" + path.strip("/") if path.strip("/") else "/"


def parameter_name(path: str, relative: str) -> str:
    return f"{path.rstrip('/')}/{relative}"


# --- merging ----------------------------------------------------------------------------


def merge_documents(documents: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Merge (parameter name, parsed JSON) pairs in name order into one rules document.

    Objects merge key by key (recursively), lists concatenate, and for anything else the
    later parameter wins. A document that is not a JSON object raises InvalidRulesError
    naming the parameter. The inputs are not modified.
    """
    ordered = sorted(documents, key=lambda item: item[0])
    problems = [
        (name, f"not a JSON object (got {_json_type(doc)})")
        for name, doc in ordered
        if not isinstance(doc, Mapping)
    ]
    if problems:
        raise InvalidRulesError(_summary(problems), problems)
    merged: dict[str, Any] = {}
    for _, document in ordered:
        _merge_into(merged, document)
    return merged


def _merge_into(base: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge_into(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            current.extend(copy.deepcopy(value))
        else:
            base[key] = copy.deepcopy(value)


_JSON_TYPES: dict[type, str] = {str: "string", list: "array"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def parse_parameters(values: Mapping[str, str]) -> list[tuple[str, Any]]:
    """{full parameter name: raw string} -> [(name, parsed JSON)] in name order.

    Raises InvalidRulesError with one problem per parameter that is not JSON, each naming it.
    """
    documents: list[tuple[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for name in sorted(values):
        try:
            documents.append((name, json.loads(values[name])))
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            problems.append((name, f"not JSON: {reason}"))
    if problems:
        raise InvalidRulesError(_summary(problems), problems)
    return documents


def rules_from_parameters(values: Mapping[str, str], path: str) -> tuple[dict[str, Any], Rules]:
    """Parse, merge and validate parameter values; InvalidRulesError with every problem.

    Schema problems keep their JSON paths (in the merged document); the message names the path.
    """
    merged = merge_documents(parse_parameters(values))
    try:
        return merged, load_rules(merged)
    except InvalidRulesError as exc:
        raise InvalidRulesError(f"rules under {path} are invalid: {_first(exc.problems)}", exc.problems) from None


def _first(problems: list[tuple[str, str]]) -> str:
    path, message = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{path}: {message}{more}"


def _summary(problems: list[tuple[str, str]]) -> str:
    """Parameter-level problems: (parameter name, what is wrong with it)."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"parameter {problems[0][0]} is {problems[0][1]}{more}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoadedRules:
    """The rules to evaluate with, and where they came from.

    `error` is set when the parameters under the path are invalid: then `rules` are the last
    good rules of this process (`source="last-good"`) or the defaults (`source="defaults"`).
    `parameters` names the parameters `rules` were read from (empty for the defaults).
    """

    rules: Rules
    error: str | None = None
    source: Source
    parameters: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.error is None


class RulesStore:
    """Reads the rules under `path`, cached by Powertools for `max_age` seconds.

    Create one per process (module level in a handler) so the cache and the last good
    rules outlive an invocation. Without `provider` the Powertools default SSM provider is
    used (`parameters.get_parameters`), whose cache `parameters.clear_caches()` clears.
    """

    def __init__(self, path: str = DEFAULT_RULES_PATH, max_age: int = DEFAULT_MAX_AGE, *,
                 provider: SSMProvider | None = None, required: bool = False):
        self.path = normalise_path(path)
        self.max_age = max_age
        self._provider = provider
        #: an empty path is an error (the stack seeded rules there, so they were deleted), not
        #: a choice to run on the defaults (`seedRules: false` before the first `rules push`)
        self.required = required
        self._last_good: LoadedRules | None = None
        # validation is skipped when the raw parameters are those of the previous load
        self._previous: tuple[dict[str, str], LoadedRules] | None = None

    @classmethod
    def from_env(cls, *, provider: SSMProvider | None = None) -> RulesStore:
        """RULES_PATH (default /hyperpod-guard/rules), RULES_MAX_AGE (seconds, default 60) and
        RULES_REQUIRED (true: no parameters under the path is an error; default false)."""
        return cls(RULES_PATH.read(), RULES_MAX_AGE.read(), provider=provider, required=RULES_REQUIRED.read())

    def _fetch(self, force_fetch: bool) -> dict[str, str]:
        options: dict[str, Any] = {"recursive": True, "decrypt": True, "max_age": self.max_age,
                                   "force_fetch": force_fetch}
        try:
            if self._provider is None:
                relative = parameters.get_parameters(self.path, **options)
            else:
                relative = self._provider.get_multiple(self.path, **options)
        except GetParameterError as exc:
            # Powertools wraps the botocore error; callers (and Lambda's retry) want the original
            if isinstance(exc.__context__, (BotoCoreError, ClientError)):
                raise exc.__context__ from None
            raise
        # Powertools strips the path from the names; put it back so errors name the parameter
        return {parameter_name(self.path, name): value for name, value in relative.items()}

    def load(self, *, force_fetch: bool = False) -> LoadedRules:
        """The rules to use now. Raises only when SSM cannot be read (the botocore error)."""
        values = self._fetch(force_fetch)
        if self._previous is not None and self._previous[0] == values:
            return self._previous[1]
        loaded = self._evaluate(values)
        self._previous = (values, loaded)
        return loaded

    def _evaluate(self, values: dict[str, str]) -> LoadedRules:
        if not values and not self.required:
            return LoadedRules(rules=DEFAULT_RULES, source="defaults")
        try:
            if not values:
                raise InvalidRulesError(f"no rules parameters under {self.path} (the stack seeded them: "
                                        "were they deleted? `hyperpod-guard rules push FILE` puts rules back)")
            _, rules = rules_from_parameters(values, self.path)
        except InvalidRulesError as exc:
            error = _one_line(str(exc))
            if self._last_good is not None:
                return LoadedRules(rules=self._last_good.rules, error=error, source="last-good",
                                   parameters=self._last_good.parameters)
            return LoadedRules(rules=DEFAULT_RULES, error=error, source="defaults")
        self._last_good = LoadedRules(rules=rules, source="ssm", parameters=tuple(sorted(values)))
        return self._last_good


# --- splitting and pushing ------------------------------------------------------------------


def serialise(document: Mapping[str, Any]) -> str:
    """The compact form a part is stored in (and measured by)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _size(document: Mapping[str, Any]) -> int:
    return len(serialise(document).encode("utf-8"))


def _fragments(document: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """The smallest pieces a valid document splits into, each a partial rules document with
    `"version"`, in the order whose concatenation gives back every list in order."""
    version = document.get("version", 1)
    fragments: list[tuple[tuple[str | int, ...], dict[str, Any]]] = []
    rest = {k: v for k, v in document.items() if k not in ("policies", "overrides", "silences")}
    fragments.append(((), {**rest, "version": version}))
    for policy, settings in (document.get("policies") or {}).items():
        settings = dict(settings)
        required = settings.pop("required", None)
        if not isinstance(required, list):  # absent (or not a list: keep it as a scalar)
            if required is not None:
                settings["required"] = required
            required = []
        if settings or not required:
            fragments.append((("policies", policy), {"version": version, "policies": {policy: settings}}))
        for index, entry in enumerate(required):
            fragments.append(
                (("policies", policy, "required", index),
                 {"version": version, "policies": {policy: {"required": [entry]}}})
            )
    for key in ("overrides", "silences"):
        for index, entry in enumerate(document.get(key) or ()):
            fragments.append(((key, index), {"version": version, key: [entry]}))
    return fragments


def split_for_ssm(document: Mapping[str, Any], limit: int = SSM_STANDARD_LIMIT) -> list[dict[str, Any]]:
    """Split a valid rules document into parameter documents of at most `limit` bytes each
    (UTF-8, serialised compactly) whose `merge_documents`, in order, equals the document.

    Fragments (the base, one per policy's settings, per `required` entry, per override, per
    silence) are packed greedily in order. A fragment that alone exceeds `limit` raises
    InvalidRulesError naming its JSON path.
    """
    oversized = [
        (json_path(loc), f"is {_size(fragment)} bytes as a parameter; one SSM parameter holds at most {limit}")
        for loc, fragment in _fragments(document)
        if _size(fragment) > limit
    ]
    if oversized:
        raise InvalidRulesError(f"rules cannot be split to fit SSM: {_first(oversized)}", oversized)
    parts: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for _, fragment in _fragments(document):
        if current is not None:
            candidate = copy.deepcopy(current)
            _merge_into(candidate, fragment)
            if _size(candidate) <= limit:
                current = candidate
                continue
            parts.append(current)
        current = copy.deepcopy(fragment)
    if current is not None:
        parts.append(current)
    return parts


@dataclass(frozen=True)
class PushResult:
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def list_parameters(ssm: Any, path: str, *, with_values: bool = True) -> dict[str, str]:
    """Every parameter under `path` (recursively): {full name: value}. Errors propagate."""
    found: dict[str, str] = {}
    paginator = ssm.get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=path, Recursive=True, WithDecryption=with_values):
        for parameter in page.get("Parameters", []):
            found[parameter["Name"]] = parameter.get("Value", "")
    return found


def plan_parts(document: Mapping[str, Any], path: str, limit: int = SSM_STANDARD_LIMIT) -> list[tuple[str, str]]:
    """Validate, split and name: [(parameter name, serialised value)]."""
    load_rules(document)
    parts = split_for_ssm(document, limit)
    if len(parts) > MAX_PARTS:
        problem = ("$", f"needs {len(parts)} parameters of {limit} bytes; at most {MAX_PARTS} are supported")
        raise InvalidRulesError(f"rules are too large for SSM: {problem[1]}", [problem])
    path = normalise_path(path)
    return [(parameter_name(path, f"{index:02d}"), serialise(part)) for index, part in enumerate(parts)]


def push_rules(document: Mapping[str, Any], path: str = DEFAULT_RULES_PATH, *, dry_run: bool = False,
               ssm: Any = None) -> PushResult:
    """Store `document` under `path` as Standard String parameters `<path>/00`, `/01`, ...

    After a push the parameters under `path` are exactly the written ones: anything else
    under it (stale parts of a longer push, hand-made parameters) is deleted, so the rules
    the evaluator merges are exactly `document`. Validates first (InvalidRulesError); AWS
    errors propagate. `dry_run` reads but writes nothing.
    """
    from . import aws_clients

    path = normalise_path(path)
    planned = plan_parts(document, path)
    ssm = ssm if ssm is not None else aws_clients.client("ssm")
    existing = list_parameters(ssm, path, with_values=False)
    written = [name for name, _ in planned]
    stale = sorted(set(existing) - set(written))
    if not dry_run:
        # parts first, in order, then the stale ones: a reader in between sees the new
        # parts (plus, briefly, old trailing ones), never a gap at the front
        for name, value in planned:
            ssm.put_parameter(Name=name, Value=value, Type="String", Tier="Standard", Overwrite=True)
        for start in range(0, len(stale), 10):  # DeleteParameters takes at most 10 names
            ssm.delete_parameters(Names=stale[start : start + 10])
    return PushResult(written=written, deleted=stale)
