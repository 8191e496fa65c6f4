"""`hyperpod-guard rules push|show|rollback`: the rules in SSM Parameter Store, from a terminal.

The layout (rules_store.py): versions `<path>/v/<id>/00..NN` and one `<path>/manifest` naming the
live version and the previous one. `push` prints a unified diff against the live rules, asks
"push? [y/N]" only on a terminal without `--yes`, then writes a new version and switches the
manifest to it; `rollback` switches the manifest back to the previous version (checked first);
`show` prints the live version. Without a manifest (rules pushed before manifests) `show` reads the
legacy layout, and the first `push` replaces it.

Exit codes, as in the rest of the CLI: 0 done (also: the question answered no, nothing written);
1 the rules have problems (each printed with its JSON path, as `validate` prints them), or `rollback`
has no intact previous version; 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config

from ..errors import HyperPodGuardError, InvalidRulesError
from ..rules import DEFAULT_RULES, load_rules
from ..rules_checks import rules_warnings
from ..rules_store import (
    DEFAULT_RULES_PATH,
    RollbackError,
    Selected,
    list_parameters,
    normalise_path,
    plan_parts,
    push_rules,
    rollback_rules,
    rules_from_parameters,
    select_parameters,
)
from .common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    BadInput,
    add_aws_options,
    aws_client,
    aws_errors,
    caller_arn,
    exit_codes,
    print_problems,
    read_text,
)

BAD_INPUT = "bad input or AWS unreachable"

PATH_ENV = "HYPERPOD_GUARD_RULES_PATH"


def _ssm_client(args: argparse.Namespace) -> Any:
    return aws_client(args, "ssm", "SSM")


def _path(args: argparse.Namespace) -> str:
    path = args.path or os.environ.get(PATH_ENV, "").strip() or DEFAULT_RULES_PATH
    try:
        return normalise_path(path)
    except ValueError as exc:
        raise BadInput(f"--path: {exc}") from None


def _read_document(file: str) -> Any:
    """The file's JSON (`-`: stdin); not JSON is a problem of the rules (exit 1, as `validate` says)."""
    text = sys.stdin.read() if file == "-" else read_text(file, "rules")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRulesError(f"rules are not JSON: {exc}", [("$", f"not JSON: {exc}")]) from None
    except RecursionError:
        raise InvalidRulesError("rules are nested too deeply", [("$", "nested too deeply")]) from None


def _pretty(document: Mapping[str, Any] | None) -> list[str]:
    if document is None:
        return []
    return [line + "\n" for line in json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).splitlines()]


def _diff(old: Mapping[str, Any] | None, new: Mapping[str, Any], old_label: str, new_label: str) -> None:
    """A unified diff of pretty JSON (sorted keys), or a line saying there is none."""
    lines = list(difflib.unified_diff(_pretty(old), _pretty(new), old_label, new_label))
    print("".join(lines).rstrip("\n") if lines else f"no changes: {new_label} equals {old_label}")


def _live_label(selected: Selected | None, path: str) -> str:
    if selected is None or not selected.values:
        return f"{path} (no rules)"
    if selected.manifest is None:
        return f"{path} (legacy layout)"
    return f"{path} (version {selected.manifest.id})"


def _live(values: dict[str, str], path: str) -> tuple[Selected | None, dict[str, Any] | None]:
    """The live version and its document; (None, None) with a note when it is invalid."""
    try:
        selected = select_parameters(values, path)
        if not selected.values:
            return selected, None
        merged, _ = rules_from_parameters(selected.values, path)
    except InvalidRulesError as exc:
        print(f"note: the live rules under {path} are invalid ({' '.join(str(exc).split())}); "
              "the diff is against nothing", file=sys.stderr)
        return None, None
    return selected, merged


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """Ask only a person at a terminal who did not pass --yes; anything but y/yes is no."""
    if args.yes or not sys.stdin.isatty():
        return True
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _caller(args: argparse.Namespace) -> str | None:
    """Who pushes, for the manifest (STS GetCallerIdentity); None when STS cannot say."""
    try:
        return caller_arn(args, Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5))
    except HyperPodGuardError:  # best effort: the push does not depend on it
        return None


def cmd_rules_push(args: argparse.Namespace) -> int:
    path = _path(args)
    label = "stdin" if args.file == "-" else args.file
    try:
        document = _read_document(args.file)
        planned = plan_parts(document, path)  # every problem before touching AWS
    except InvalidRulesError as exc:
        print_problems(label, exc.problems)
        return EXIT_PROBLEMS
    # valid but suspicious (a silence muting everything, already over, naming no policy): said, not refused
    for warning in rules_warnings(load_rules(document), datetime.now(UTC)):
        print(f"warning: {label}: {warning.path}: {warning.message}", file=sys.stderr)
    ssm = _ssm_client(args)
    with aws_errors("SSM"):
        values = list_parameters(ssm, path)
        selected, live = _live(values, path)
        _diff(live, document, _live_label(selected, path), label)
        plan = push_rules(document, path, dry_run=True, ssm=ssm, existing=values)
    assert plan.manifest is not None
    sizes = [len(value.encode("utf-8")) for _, value in planned]
    print(f"plan: version {plan.manifest.id}, {len(planned)} part(s) ({', '.join(map(str, sizes))} bytes), "
          f"then {path}/manifest; delete {len(plan.deleted)} stale parameter(s)")
    if args.dry_run:
        for name in plan.deleted:
            print(f"would delete {name}")
        print("dry run: nothing written")
        return EXIT_OK
    if not _confirm(args, "push?"):
        print("not pushed: nothing written")
        return EXIT_OK
    with aws_errors("SSM"):
        result = push_rules(document, path, ssm=ssm, pushed_by=_caller(args), existing=values)
    assert result.manifest is not None
    for name in result.written:
        print(f"wrote {name}")
    for name in result.deleted:
        print(f"deleted {name}")
    previous = result.manifest.previous.id if result.manifest.previous else "none"
    print(f"pushed version {result.manifest.id} ({len(planned)} part(s)) under {path}; previous: {previous}")
    if not result.cleaned:
        print("note: another push switched the manifest meanwhile: its version is live, nothing was deleted",
              file=sys.stderr)
    return EXIT_OK


def cmd_rules_rollback(args: argparse.Namespace) -> int:
    path = _path(args)
    ssm = _ssm_client(args)
    with aws_errors("SSM"):
        values = list_parameters(ssm, path)
        selected, live = _live(values, path)
        try:
            manifest, document = rollback_rules(path, ssm=ssm, dry_run=True, existing=values)
        except (RollbackError, InvalidRulesError) as exc:
            print(f"error: cannot roll back: {' '.join(str(exc).split())}", file=sys.stderr)
            return EXIT_PROBLEMS
        _diff(live, document, _live_label(selected, path), f"{path} (version {manifest.id})")
        if args.dry_run:
            print(f"dry run: version {manifest.id} would be live again; nothing written")
            return EXIT_OK
        if not _confirm(args, f"roll back to version {manifest.id}?"):
            print("not rolled back: nothing written")
            return EXIT_OK
        manifest, _ = rollback_rules(path, ssm=ssm, pushed_by=_caller(args), existing=values)
    was = manifest.previous.id if manifest.previous else "none"
    print(f"rolled back: version {manifest.id} is live again under {path} (previous: {was})")
    return EXIT_OK


def cmd_rules_show(args: argparse.Namespace) -> int:
    path = _path(args)
    ssm = _ssm_client(args)
    with aws_errors("SSM"):
        values = list_parameters(ssm, path)
    try:
        selected = select_parameters(values, path)
        if selected.values:
            merged, rules = rules_from_parameters(selected.values, path)
    except InvalidRulesError as exc:
        print_problems(f"rules under {path}", exc.problems)
        return EXIT_PROBLEMS
    manifest = selected.manifest
    if not selected.values:
        print(f"no parameters under {path}: the built-in defaults apply", file=sys.stderr)
        output: Any = DEFAULT_RULES.model_dump(mode="json", by_alias=True) if args.with_defaults else {"version": 1}
    elif manifest is None:
        print(f"merged {len(selected.values)} parameter(s) in name order: {', '.join(sorted(selected.values))}",
              file=sys.stderr)
    else:
        print(f"version {manifest.id} ({manifest.current.parts} part(s), sha256 verified), pushed "
              f"{manifest.pushed_at or '(time unknown)'} by {manifest.pushed_by or '(unknown)'}; previous: "
              f"{manifest.previous.id if manifest.previous else 'none'}", file=sys.stderr)
    if selected.ignored:
        why = "no version owns them" if manifest else "parts of a push that has not switched the manifest yet"
        print(f"note: not merged ({why}): {', '.join(selected.ignored)}", file=sys.stderr)
    if selected.values:
        output = rules.model_dump(mode="json", by_alias=True) if args.with_defaults else merged
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return EXIT_OK


def _aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", metavar="PATH",
                        help=f"SSM parameter path (default: ${PATH_ENV} or {DEFAULT_RULES_PATH})")
    add_aws_options(parser)


def _yes_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", "-y", action="store_true",
                        help="do not ask (nothing is asked anyway when stdin is not a terminal)")


def add_rules_commands(commands: Any) -> None:
    """Add the `rules` group to the top-level subparsers."""
    group = commands.add_parser(
        "rules", help="push, show or roll back the rules in SSM Parameter Store",
        description="Rules live in SSM Parameter Store under a path: each push is a version <path>/v/<id>/00, /01, "
        "... (Standard 4 KB parameters), and <path>/manifest names the live version (part count, sha256) and the "
        "previous one. Readers use exactly the manifest's version. Without a manifest, every parameter under the "
        "path is merged in name order (the legacy layout). Exit codes: 0 done, 1 problems, 2 bad input or AWS "
        "unreachable.",
    )
    actions = group.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    push = actions.add_parser(
        "push", help="validate a rules file, show the diff against the live rules, store it as a new version",
        description="Validate FILE (- for stdin), print a unified diff against the live rules, then write it as a "
        "new version <path>/v/<id>/00, /01, ... and switch <path>/manifest to it (the moment the rules change). "
        "Versions other than the new and the previous one, and any other parameter under the path, are then "
        "deleted. Asks 'push? [y/N]' on a terminal unless --yes; never asks when stdin is not a terminal.",
    )
    push.epilog = exit_codes("pushed, a dry run, or the question answered no",
                             "the file has problems (listed with their JSON paths; nothing written)", BAD_INPUT)
    push.add_argument("file", metavar="FILE", help="the rules JSON; - reads stdin")
    push.add_argument("--dry-run", action="store_true", help="print the diff and the plan; write nothing")
    _yes_option(push)
    _aws_options(push)
    push.set_defaults(run=cmd_rules_push)

    rollback = actions.add_parser(
        "rollback", help="make the previous version live again (checked first)",
        description="Switch <path>/manifest back to the previous version after checking that its parts are all "
        "there, match its sha256 and are valid rules; the version rolled back from becomes the previous one. "
        "Prints the diff and asks on a terminal unless --yes. Exit 1 when there is no intact previous version.",
    )
    rollback.epilog = exit_codes("rolled back, a dry run, or the question answered no",
                                 "no intact previous version (nothing written)", BAD_INPUT)
    rollback.add_argument("--dry-run", action="store_true", help="print the diff; write nothing")
    _yes_option(rollback)
    _aws_options(rollback)
    rollback.set_defaults(run=cmd_rules_rollback)

    show = actions.add_parser(
        "show", help="print the live rules (the manifest's version); exit 1 listing problems if invalid",
        description="Read the path, take the version the manifest names (checking its parts and sha256; without "
        "a manifest, merge the legacy parameters in name order), validate, print the JSON. Which version, and "
        "any parameter that is not merged, is said on stderr.",
    )
    show.epilog = exit_codes("printed", "the live rules have problems (listed)", BAD_INPUT)
    show.add_argument("--with-defaults", action="store_true", help="print every setting, defaults filled in")
    _aws_options(show)
    show.set_defaults(run=cmd_rules_show)
