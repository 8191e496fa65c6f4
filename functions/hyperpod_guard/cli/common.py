"""What every `hyperpod-guard` command shares: exit codes and bad input, reading files and rules,
the options several commands take, printing an evaluation, and AWS clients from --region/--profile
with their errors as one line.

Exit codes: 0 done; 1 problems found (`validate`, `rules`, `redrive`, the demo's expectations);
2 bad input or AWS unreachable, with one `error: ...` line on stderr; 70 an internal error, also one
line. Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from .. import naming
from ..alerting import muted_reason
from ..engine import Evaluation
from ..errors import HyperPodGuardError, InvalidRulesError
from ..events import IgnoredEvent
from ..findings import Finding
from ..fleet import Location, location_of
from ..rules import DEFAULT_RULES, ClusterRules, Rules, account_glob, load_rules, region_glob

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 70


class BadInput(HyperPodGuardError):
    """A file that cannot be read or is not JSON."""


# --- files and rules --------------------------------------------------------------------------


#: the file name that means standard input, wherever a command reads a file
STDIN = "-"


def read_text(path: str | Path, what: str) -> str:
    """A file's text; `-` reads standard input (once: a second `-` of the same command is bad input)."""
    try:
        if str(path) == STDIN:
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(f"cannot read {what} file {_shown(path)}: {reason}") from None


def _shown(path: str | Path) -> str:
    return "(standard input)" if str(path) == STDIN else repr(str(path))


def one_stdin(**files: str | None) -> None:
    """At most one of a command's file options may be `-` (standard input is read once)."""
    from_stdin = [name for name, value in files.items() if value == STDIN]
    if len(from_stdin) > 1:
        raise BadInput(f"only one file can be read from standard input ('-'), got {' and '.join(from_stdin)}")


def read_json(path: str | Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what} file {_shown(path)} is not JSON: {exc}") from None
    except RecursionError:
        raise BadInput(f"{what} file {_shown(path)} is nested too deeply") from None


def load_rules_file(path: str | None) -> Rules:
    if path is None:
        return DEFAULT_RULES
    try:
        return load_rules(read_json(path, "rules"))
    except InvalidRulesError as exc:
        raise InvalidRulesError(f"{exc} (run `hyperpod-guard validate {path}` for every problem)") from None


def print_problems(label: str, problems: list[tuple[str, str]]) -> None:
    """The problem listing `validate` prints: a count, then `  <JSON path>: <message>` each."""
    print(f"{label}: {len(problems)} problem(s)")
    for path, message in problems:
        print(f"  {path}: {message}")


# --- options ------------------------------------------------------------------------------------


# One vocabulary: the same option name, metavar and wording for the same thing in every command.
# What looks alike but is not: `--prefix` is the stack's name prefix (resource names such as
# <prefix>-alerts), `rules --path` an SSM parameter path (/hyperpod-guard/rules).

#: what `--format` prints; `table`, the word `clusters` took before, still means `text`
FORMATS = ("text", "json")
FORMAT_ALIASES = {"table": "text"}


def _format(value: str) -> str:
    return FORMAT_ALIASES.get(value, value)


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """`--format text|json` (default text); `table` is accepted as a hidden alias of text."""
    parser.add_argument("--format", choices=FORMATS, default="text", type=_format,
                        help="output format: text (for people) or json (for programs) (default: text)")


def add_rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", metavar="FILE",
                        help="rules JSON file, - for standard input (default: the built-in defaults)")


def add_prefix_option(parser: argparse._ActionsContainer) -> None:
    """The deployed stack's name prefix, which names its resources (naming.py)."""
    parser.add_argument("--prefix", metavar="PREFIX", default=naming.DEFAULT_PREFIX,
                        help="the stack's name prefix, as deployed; resources are named <prefix>-... "
                        f"(default: {naming.DEFAULT_PREFIX})")


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: from the environment/profile)")
    parser.add_argument("--profile", metavar="PROFILE", help="AWS named profile")


# Where a cluster lives (fleet.py): `--account` and `--cluster-region`. Not `--region`, which every command
# already takes for the AWS region its own calls go to (the hub's, where the ledger and the rules are).


def _glob_type(check: Any) -> Any:
    def parse(value: str) -> str:
        try:
            return str(check(value))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def add_location_filters(parser: argparse.ArgumentParser, what: str) -> None:
    """`--account GLOB` and `--cluster-region GLOB` (default '*'): only the `what` of clusters in a matching
    account and region. A cluster of the hub's own account and region (a bare key) is matched as the
    caller's account and the command's AWS region (home_location)."""
    parser.add_argument("--account", default="*", metavar="GLOB", type=_glob_type(account_glob),
                        help=f"only {what} of clusters in these AWS accounts: an account id or a glob over "
                        "digits (default: *)")
    parser.add_argument("--cluster-region", default="*", metavar="GLOB", type=_glob_type(region_glob),
                        help=f"only {what} of clusters in these regions: a region or a glob, e.g. 'eu-*' "
                        "(default: *; --region is the AWS region the command itself calls)")


def filters_location(args: argparse.Namespace) -> bool:
    """Whether --account or --cluster-region narrows what is shown (only then is home looked up)."""
    return args.account != "*" or args.cluster_region != "*"


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """`--account ID --cluster-region REGION`: where the cluster lives (`cluster_location`)."""
    parser.add_argument("--account", metavar="ID",
                        help="the cluster's AWS account id, with --cluster-region (default: the key's, if "
                        "--cluster is name@account/region; else unknown, which only account and region "
                        "matchers '*' match)")
    parser.add_argument("--cluster-region", metavar="REGION",
                        help="the cluster's region, with --account (--region is the AWS region the command calls)")


def cluster_key_location(cluster: str) -> Location | None:
    """The location a `--cluster` key names (name@account/region), or None for a bare name."""
    try:
        return location_of(cluster)
    except ValueError as exc:
        raise BadInput(f"--cluster {cluster!r}: {exc}") from None


def cluster_location(args: argparse.Namespace) -> Location | None:
    """The location `--account` and `--cluster-region` give (both or neither), or None."""
    if args.account is None and args.cluster_region is None:
        return None
    if args.account is None or args.cluster_region is None:
        raise BadInput("--account and --cluster-region go together: a cluster's location is both")
    try:
        return Location.parse(f"{args.account.strip()}/{args.cluster_region.strip()}")
    except ValueError as exc:
        raise BadInput(f"--account/--cluster-region: {exc}") from None


def tag_pair(value: str) -> tuple[str, str]:
    """`--tags KEY=VALUE` -> (key, value); the value may be empty, the key may not."""
    key, sep, tag_value = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, tag_value


def add_tags_option(parser: argparse.ArgumentParser, text: str) -> None:
    """`--tags KEY=VALUE [KEY=VALUE ...]`, repeatable; tags_of(args) is a dict, or None when none were given."""
    parser.add_argument("--tags", metavar="KEY=VALUE", nargs="+", action="extend", type=tag_pair, help=text)


def tags_of(args: argparse.Namespace) -> dict[str, str] | None:
    return dict(args.tags) if args.tags else None


def exit_codes(ok: str, problems: str | None = None, bad_input: str = "bad input") -> str:
    """The epilog every subcommand's --help ends with: its exit codes (2 and 70 are the CLI's own)."""
    codes = [f"0 {ok}"]
    if problems:
        codes.append(f"1 {problems}")
    codes += [f"2 {bad_input}, with one `error: ...` line on stderr", "70 internal error, one line"]
    return textwrap.fill("exit codes: " + "; ".join(codes) + ".", width=100, break_on_hyphens=False)


# --- output -------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _scope(finding: Finding) -> str:
    return "/".join(part for part in (finding.instance_group, finding.node) if part) or "(cluster)"


def silenced_findings(result: Evaluation | IgnoredEvent, rules: ClusterRules, now: datetime) -> dict[str, str]:
    """fingerprint -> why it is silenced (the silence that matches it now), as the evaluator
    decides it (alerting.muted_reason; no inhibition: that needs the ledger)."""
    if isinstance(result, IgnoredEvent):
        return {}
    reasons = {f.fingerprint: muted_reason(f, rules, [], now) for f in result.findings}
    return {fingerprint: why for fingerprint, why in reasons.items() if why}


def render_text(result: Evaluation | IgnoredEvent, silenced: Mapping[str, str] | None = None) -> str:
    """An evaluation as `evaluate` and `check` print it: a line, then a table of the findings;
    silenced findings (fingerprint -> the silence) in a table of their own below."""
    if isinstance(result, IgnoredEvent):
        return f"ignored {result.detail_type!r}: {result.reason}"
    silenced = silenced or {}
    alerting = [f for f in result.findings if f.fingerprint not in silenced]
    muted = [f for f in result.findings if f.fingerprint in silenced]
    if not result.findings:
        text = f"cluster {result.cluster}: no findings"
    else:
        count = f"{len(result.findings)} finding(s)" + (f", {len(muted)} silenced" if muted else "")
        text = f"cluster {result.cluster}: {count}"
        if alerting:
            text += "\n" + table(("SEVERITY", "POLICY", "SCOPE", "SUMMARY"),
                                 [(f.severity.value, f.policy, _scope(f), f.summary) for f in alerting])
    if muted:
        text += "\nsilenced:\n" + table(("SEVERITY", "POLICY", "SCOPE", "SUMMARY", "SILENCED"),
                                        [(f.severity.value, f.policy, _scope(f), f.summary, silenced[f.fingerprint])
                                         for f in muted])
    if result.resolved:
        text += f"\nresolved by this event: {', '.join(result.resolved)}"
    return text


def render_json(result: Evaluation | IgnoredEvent, silenced: Mapping[str, str] | None = None) -> str:
    """An evaluation as `--format json` prints it: {"cluster", "findings", "resolved"}; with
    `silenced` given, each finding has a `silenced` field: the silence that mutes it, or null."""
    if isinstance(result, IgnoredEvent):
        data: dict[str, Any] = {"cluster": None, "findings": [], "ignored": result.reason}
    else:
        data = result.to_dict()
        if silenced is not None:
            for finding in data["findings"]:
                finding["silenced"] = silenced.get(finding["fingerprint"])
    return json.dumps(data, indent=2, ensure_ascii=False)


# --- AWS ----------------------------------------------------------------------------------------

#: a person is waiting: fewer retries than the functions make
CLI_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)


class AwsUnavailable(HyperPodGuardError):
    """An AWS service could not be reached or refused the request (exit 2, one line)."""


@contextlib.contextmanager
def aws_errors(service: str, hint: str = "") -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise AwsUnavailable(f"{service} refused the request: {' '.join(str(exc).split())}{hint}") from None
    except NoRegionError:
        raise AwsUnavailable(f"cannot reach {service}: no AWS region; pass --region or set AWS_REGION") from None
    except NoCredentialsError:
        raise AwsUnavailable(f"cannot reach {service}: no AWS credentials; pass --profile, set AWS_PROFILE or "
                             "the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair") from None
    except BotoCoreError as exc:
        raise AwsUnavailable(f"cannot reach {service}: {' '.join(str(exc).split())}") from None


def aws_client(args: argparse.Namespace, service: str, label: str, config: Config = CLI_CONFIG) -> Any:
    """A client from --region/--profile; an unknown profile or no region is one `error:` line."""
    with aws_errors(label):
        session = boto3.session.Session(region_name=args.region, profile_name=args.profile)
        return session.client(service, config=config)


def caller_arn(args: argparse.Namespace, config: Config = CLI_CONFIG) -> str:
    """Who runs the command (STS GetCallerIdentity): a silence's author, a push's `pushed_by`."""
    sts = aws_client(args, "sts", "STS", config)
    with aws_errors("STS"):
        return str(sts.get_caller_identity()["Arn"])


def home_location(args: argparse.Namespace, region: str | None, config: Config = CLI_CONFIG) -> Location:
    """Where a cluster with a bare key lives, as the CLI sees it: the caller's account (STS GetCallerIdentity)
    and `region` (the command's AWS region: the hub's, where its ledger is)."""
    sts = aws_client(args, "sts", "STS", config)
    with aws_errors("STS"):
        account = str(sts.get_caller_identity()["Account"])
    if not region:
        raise AwsUnavailable("no AWS region; pass --region or set AWS_REGION")
    return Location(account, region)
