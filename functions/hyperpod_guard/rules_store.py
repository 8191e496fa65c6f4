"""Rules in SSM Parameter Store: read one complete version, validate, keep the last good; split and push.

One Standard parameter holds only 4 KB, so a rules document is split into parts. Layout under the
path (`/hyperpod-guard/rules`):

- `<path>/v/<id>/00`, `/01`, ...: one immutable version of the document, its parts in name order;
  `<id>` sorts by push time (`20261130T120000123Z-1a2b`; the stack's seed is `seed-<hash>`);
- `<path>/manifest`: the switch, JSON `{"format": 1, "id", "parts", "sha256", "previous",
  "pushed_at", "pushed_by"}`; `sha256` is over the part values in order, joined by a newline;
  `previous` is `{"id", "parts", "sha256"}` of the version it replaced (for `rules rollback`) or null.

`push_rules` writes the new version's parts, then the manifest (one PutParameter: the moment the
rules change), then deletes every other version except the previous one, and anything else under
the path. Interrupted at any step, readers see the old document or the new one, never a mix.

Readers (`RulesStore.load`, `hyperpod-guard rules show`) list the path once (GetParametersByPath,
recursive: manifest and parts in the same listing) and use exactly the manifest's version: a part
missing, a part the manifest does not list, or a hash mismatch make the rules invalid. A listing is
paginated and not a snapshot, so `RulesStore` re-reads once before believing such a mismatch (a push
may have switched the manifest between two pages). Parameters beside a manifest that no version owns
(`<path>/00`, `<path>/team-a/x`) are not merged (`rules show` names them).

Without a manifest the legacy layout is read as before: every parameter under the path except
`<path>/v/...` (`/00`, `/01`, ..., plus any a team adds, e.g. `/team-a/x`), merged in name order:
objects key by key, lists concatenated (so `overrides`, `silences` and `required` can be spread
over several parameters), and for scalars the later parameter wins. The first push replaces it.

Invalid rules never stop evaluation: `RulesStore.load` falls back to the last good rules of
this process, or to the defaults, and says why in `LoadedRules.error` so the caller can raise
one alert. Only AWS failures raise (so that Lambda retries).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from . import aws_clients, naming
from .constants import RULES_MAX_AGE, RULES_PATH, RULES_REQUIRED
from .errors import HyperPodGuardError, InvalidRulesError
from .rules import DEFAULT_RULES, Rules, json_path, load_rules

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

DEFAULT_RULES_PATH = naming.rules_path()
DEFAULT_MAX_AGE = 60
#: a Standard parameter's value limit
SSM_STANDARD_LIMIT = 4096
#: parts are named `<path>/00` .. `<path>/99`: two digits keep name order == part order
MAX_PARTS = 100
#: `<path>/manifest` names the live version; `<path>/v/<id>/NN` are the versions' parts
MANIFEST = "manifest"
VERSIONS = "v"
MANIFEST_FORMAT = 1

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


# --- versions and the manifest -------------------------------------------------------------------


def digest(values: Sequence[str]) -> str:
    """sha256 (hex) over part values in order, joined by a newline (a compact JSON part has none)."""
    return hashlib.sha256("\n".join(values).encode("utf-8")).hexdigest()


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _stamp(now: datetime) -> str:
    return now.isoformat(timespec="seconds").replace("+00:00", "Z")


def version_prefix(path: str, version: str) -> str:
    return parameter_name(path, f"{VERSIONS}/{version}/")


def part_name(path: str, version: str, index: int) -> str:
    return f"{version_prefix(path, version)}{index:02d}"


def new_version_id(now: datetime | None = None) -> str:
    """Sortable by push time (UTC, milliseconds) plus a short random tail: `20261130T120000123Z-1a2b`."""
    now = _utc(now)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class VersionRef:
    """One version of the rules: its id, how many parts, the sha256 over them."""

    id: str
    parts: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "parts": self.parts, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """`<path>/manifest`: the live version (and the one it replaced, for rollback)."""

    current: VersionRef
    previous: VersionRef | None = None
    pushed_at: str | None = None
    pushed_by: str | None = None

    @property
    def id(self) -> str:
        return self.current.id

    def serialise(self) -> str:
        return serialise({"format": MANIFEST_FORMAT, **self.current.to_json(),
                          "previous": self.previous.to_json() if self.previous else None,
                          "pushed_at": self.pushed_at, "pushed_by": self.pushed_by})

    @classmethod
    def parse(cls, name: str, value: str) -> Manifest:
        """InvalidRulesError naming the manifest parameter when it is not a format-1 manifest."""
        try:
            data = json.loads(value)
            if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"not a format-{MANIFEST_FORMAT} manifest")
            previous = data.get("previous")
            return cls(_ref(data), _ref(previous) if previous is not None else None,
                       _optional_str(data.get("pushed_at")), _optional_str(data.get("pushed_by")))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            problem = (name, f"not a rules manifest: {exc}")
            raise InvalidRulesError(_summary([problem]), [problem]) from None


def _ref(data: Any) -> VersionRef:
    if not isinstance(data, dict):
        raise ValueError("a version must be an object with id, parts, sha256")
    version, parts, sha = data["id"], data["parts"], data["sha256"]
    if not (isinstance(version, str) and version and "/" not in version):
        raise ValueError(f"bad version id {version!r}")
    if not (isinstance(parts, int) and not isinstance(parts, bool) and 1 <= parts <= MAX_PARTS):
        raise ValueError(f"bad part count {parts!r}")
    if not isinstance(sha, str):
        raise ValueError(f"bad sha256 {sha!r}")
    return VersionRef(version, parts, sha)


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class IncompleteVersionError(InvalidRulesError):
    """The manifest's version is not there as the manifest describes it (a part missing, one too
    many, or a hash mismatch): broken by hand, or a listing taken while a push switched versions."""


def version_parts(values: Mapping[str, str], path: str, ref: VersionRef) -> dict[str, str]:
    """The parts of version `ref` among `values`, checked against it; IncompleteVersionError if not exact."""
    prefix = version_prefix(path, ref.id)
    owned = {name: value for name, value in values.items() if name.startswith(prefix)}
    expected = [part_name(path, ref.id, index) for index in range(ref.parts)]
    problems = [(name, f"missing (version {ref.id} has {ref.parts} part(s))") for name in expected
                if name not in owned]
    problems += [(name, f"not one of the {ref.parts} part(s) of version {ref.id}")
                 for name in sorted(set(owned) - set(expected))]
    if not problems:
        actual = digest([owned[name] for name in expected])
        if actual != ref.sha256:
            problems.append((f"{prefix}00..{ref.parts - 1:02d}",
                             f"not what the manifest says: sha256 {actual}, expected {ref.sha256}"))
    if problems:
        raise IncompleteVersionError(f"rules under {path} are incomplete: {_summary(problems)}", problems)
    return owned


@dataclass(frozen=True)
class Selected:
    """What a listing of the path holds: the parameters to merge, the manifest (None: legacy
    layout) and the parameters under the path that are not merged (`ignored`)."""

    values: dict[str, str]
    manifest: Manifest | None = None
    ignored: tuple[str, ...] = ()


def select_parameters(values: Mapping[str, str], path: str) -> Selected:
    """The parameters of one complete version (manifest) or, without a manifest, the legacy parts.

    With a manifest: exactly its version's parts (InvalidRulesError / IncompleteVersionError if
    they are not as it says); parameters beside it that no version owns are `ignored`. Without:
    every parameter except those under `<path>/v/` (the parts of a push that has not switched yet).
    """
    manifest_name = parameter_name(path, MANIFEST)
    versions = parameter_name(path, VERSIONS) + "/"
    if manifest_name not in values:
        legacy = {name: value for name, value in values.items() if not name.startswith(versions)}
        return Selected(legacy, None, tuple(sorted(set(values) - set(legacy))))
    manifest = Manifest.parse(manifest_name, values[manifest_name])
    parts = version_parts(values, path, manifest.current)
    stray = sorted(name for name in values if name != manifest_name and not name.startswith(versions))
    return Selected(parts, manifest, tuple(stray))


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
    `parameters` names the parameters `rules` were read from (empty for the defaults);
    `version` is the manifest's version id (None for the legacy layout and the defaults).
    """

    rules: Rules
    error: str | None = None
    source: Source
    parameters: tuple[str, ...] = ()
    version: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None


def _default_provider() -> None:
    """Powertools' default SSM provider (`parameters.get_parameters`), made on our shared session's
    client instead of a botocore session of its own; `parameters.clear_caches()` still drops it."""
    if "ssm" not in parameters.base.DEFAULT_PROVIDERS:
        parameters.base.DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider(boto3_client=aws_clients.client("ssm"))


aws_clients.on_reset(lambda: parameters.base.DEFAULT_PROVIDERS.pop("ssm", None))  # it holds a client


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

    def prime(self) -> None:
        """Make what the first load would make, without reading SSM (handlers/evaluator.prime): the SSM
        client and the GetParametersByPath paginator's model Powertools pages with."""
        if self._provider is None:
            _default_provider()
            aws_clients.client("ssm").get_paginator("get_parameters_by_path")

    def _fetch(self, force_fetch: bool) -> dict[str, str]:
        options: dict[str, Any] = {"recursive": True, "decrypt": True, "max_age": self.max_age,
                                   "force_fetch": force_fetch}
        try:
            if self._provider is None:
                _default_provider()
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
        outcome = self._read(values)
        if isinstance(outcome, IncompleteVersionError) and not force_fetch:
            # a listing spans pages and is no snapshot: a push may have switched versions in between
            values = self._fetch(True)
            if self._previous is not None and self._previous[0] == values:
                return self._previous[1]
            outcome = self._read(values)
        loaded = self._loaded(outcome)
        self._previous = (values, loaded)
        return loaded

    def _read(self, values: dict[str, str]) -> tuple[Selected, Rules] | InvalidRulesError | None:
        """The selected parameters and their rules; the error; None: nothing under the path."""
        try:
            selected = select_parameters(values, self.path)
            if not selected.values:
                if not self.required:
                    return None
                raise InvalidRulesError(f"no rules parameters under {self.path} (the stack seeded them: "
                                        "were they deleted? `hyperpod-guard rules push FILE` puts rules back)")
            _, rules = rules_from_parameters(selected.values, self.path)
        except InvalidRulesError as exc:
            return exc
        return selected, rules

    def _loaded(self, outcome: tuple[Selected, Rules] | InvalidRulesError | None) -> LoadedRules:
        if outcome is None:
            return LoadedRules(rules=DEFAULT_RULES, source="defaults")
        if isinstance(outcome, InvalidRulesError):
            error = _one_line(str(outcome))
            if self._last_good is not None:
                return LoadedRules(rules=self._last_good.rules, error=error, source="last-good",
                                   parameters=self._last_good.parameters, version=self._last_good.version)
            return LoadedRules(rules=DEFAULT_RULES, error=error, source="defaults")
        selected, rules = outcome
        self._last_good = LoadedRules(rules=rules, source="ssm", parameters=tuple(sorted(selected.values)),
                                      version=selected.manifest.id if selected.manifest else None)
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


def list_parameters(ssm: Any, path: str, *, with_values: bool = True) -> dict[str, str]:
    """Every parameter under `path` (recursively): {full name: value}. Errors propagate."""
    found: dict[str, str] = {}
    paginator = ssm.get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=path, Recursive=True, WithDecryption=with_values):
        for parameter in page.get("Parameters", []):
            found[parameter["Name"]] = parameter.get("Value", "")
    return found


def plan_parts(document: Mapping[str, Any], path: str, limit: int = SSM_STANDARD_LIMIT, *,
               version: str | None = None) -> list[tuple[str, str]]:
    """Validate, split and name: [(parameter name, serialised value)]; the names are
    `<path>/v/<version>/NN` with a `version`, else the legacy `<path>/NN`."""
    load_rules(document)
    parts = split_for_ssm(document, limit)
    if len(parts) > MAX_PARTS:
        problem = ("$", f"needs {len(parts)} parameters of {limit} bytes; at most {MAX_PARTS} are supported")
        raise InvalidRulesError(f"rules are too large for SSM: {problem[1]}", [problem])
    path = normalise_path(path)
    return [(part_name(path, version, index) if version else parameter_name(path, f"{index:02d}"), serialise(part))
            for index, part in enumerate(parts)]


def plan_version(document: Mapping[str, Any], path: str, version: str, *, previous: VersionRef | None = None,
                 pushed_at: str | None = None, pushed_by: str | None = None) -> tuple[list[tuple[str, str]], Manifest]:
    """The parts of `document` as version `version`, and the manifest that makes it live."""
    planned = plan_parts(document, path, version=version)
    current = VersionRef(version, len(planned), digest([value for _, value in planned]))
    return planned, Manifest(current, previous, pushed_at, pushed_by)


def seed_version(document: Mapping[str, Any], path: str, source: str) -> tuple[list[tuple[str, str]], Manifest]:
    """What the stack seeds: version `seed-<hash of the parts>` (a changed rules file is another version)."""
    planned = plan_parts(document, path, version="seed")
    version = f"seed-{digest([value for _, value in planned])[:12]}"
    return plan_version(document, path, version, pushed_by=f"stack seed ({source})")


def live_manifest(values: Mapping[str, str], path: str) -> Manifest | None:
    """The manifest among listed values; None without one (or when it is unreadable)."""
    value = values.get(parameter_name(path, MANIFEST))
    if value is None:
        return None
    try:
        return Manifest.parse(parameter_name(path, MANIFEST), value)
    except InvalidRulesError:
        return None


def _stale(existing: Iterable[str], path: str, keep: Iterable[str]) -> list[str]:
    """Everything under the path but the manifest and the versions in `keep`."""
    prefixes = tuple(version_prefix(path, version) for version in keep)
    manifest = parameter_name(path, MANIFEST)
    return sorted(name for name in existing if name != manifest and not name.startswith(prefixes))


@dataclass(frozen=True)
class PushResult:
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    #: False when another push switched the manifest after ours: its versions were left alone
    cleaned: bool = True


def push_rules(document: Mapping[str, Any], path: str = DEFAULT_RULES_PATH, *, dry_run: bool = False,
               ssm: Any = None, pushed_by: str | None = None, now: datetime | None = None,
               existing: Mapping[str, str] | None = None) -> PushResult:
    """Store `document` under `path` as a new version, switch the manifest to it, clean up.

    1. PutParameter each part `<path>/v/<new id>/NN` (Standard String, never overwriting);
    2. PutParameter `<path>/manifest` naming the new version and the one it replaces: the switch;
    3. GetParameter the manifest: if another push has switched it since, stop (its versions stay);
    4. DeleteParameters every other version except the previous one, and anything else under the
       path (legacy parts, hand-made parameters), at most 10 names per call.

    Readers see the old document until step 2 and the new one from then on. Validates first
    (InvalidRulesError); AWS errors propagate. `dry_run` reads but writes nothing. `existing` is
    the listing of the path when the caller has just read it (one GetParametersByPath less).
    """
    from . import aws_clients

    path = normalise_path(path)
    now = _utc(now)
    ssm = ssm if ssm is not None else aws_clients.client("ssm")
    plan_parts(document, path)  # every problem before touching AWS
    if existing is None:
        existing = list_parameters(ssm, path)
    current = live_manifest(existing, path)
    planned, manifest = plan_version(document, path, new_version_id(now), previous=current.current if current else None,
                                     pushed_at=_stamp(now),
                                     pushed_by=pushed_by)
    keep = [manifest.id] + ([manifest.previous.id] if manifest.previous else [])
    stale = _stale(existing, path, keep)
    written = [name for name, _ in planned] + [parameter_name(path, MANIFEST)]
    if dry_run:
        return PushResult(written=written, deleted=stale, manifest=manifest)
    for name, value in planned:
        ssm.put_parameter(Name=name, Value=value, Type="String", Tier="Standard", Overwrite=False)
    _put_manifest(ssm, path, manifest)
    live = ssm.get_parameter(Name=parameter_name(path, MANIFEST))["Parameter"]["Value"]
    if live != manifest.serialise():
        return PushResult(written=written, deleted=[], manifest=manifest, cleaned=False)
    _delete(ssm, stale)
    return PushResult(written=written, deleted=stale, manifest=manifest)


def _put_manifest(ssm: Any, path: str, manifest: Manifest) -> None:
    ssm.put_parameter(Name=parameter_name(path, MANIFEST), Value=manifest.serialise(), Type="String",
                      Tier="Standard", Overwrite=True)


def _delete(ssm: Any, names: Sequence[str]) -> None:
    for start in range(0, len(names), 10):  # DeleteParameters takes at most 10 names
        ssm.delete_parameters(Names=list(names[start : start + 10]))


class RollbackError(HyperPodGuardError):
    """There is no previous version to roll back to, or it is not intact."""


def rollback_rules(path: str = DEFAULT_RULES_PATH, *, ssm: Any = None, dry_run: bool = False,
                   pushed_by: str | None = None, now: datetime | None = None,
                   existing: Mapping[str, str] | None = None) -> tuple[Manifest, dict[str, Any]]:
    """Make the manifest's previous version current again (and the current one its previous).

    Checks first that the previous version's parts are all there, match its hash and are valid
    rules: RollbackError (with the problems) otherwise. Returns the new manifest and the document
    it makes live; one PutParameter of the manifest, nothing deleted. `dry_run` writes nothing.
    """
    from . import aws_clients

    path = normalise_path(path)
    ssm = ssm if ssm is not None else aws_clients.client("ssm")
    if existing is None:
        existing = list_parameters(ssm, path)
    manifest_name = parameter_name(path, MANIFEST)
    if manifest_name not in existing:
        raise RollbackError(f"no manifest under {path}: nothing to roll back to (no rules pushed by this version of "
                            "hyperpod-guard yet)")
    current = Manifest.parse(manifest_name, existing[manifest_name])
    if current.previous is None:
        raise RollbackError(f"version {current.id} under {path} has no previous version to roll back to")
    try:
        parts = version_parts(existing, path, current.previous)
        document, _ = rules_from_parameters(parts, path)
    except InvalidRulesError as exc:
        raise RollbackError(f"cannot roll back to version {current.previous.id}: {_one_line(str(exc))}") from None
    restored = Manifest(current.previous, current.current, _stamp(_utc(now)), pushed_by)
    if not dry_run:
        _put_manifest(ssm, path, restored)
    return restored, document
