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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from ..engine import Evaluation
from ..errors import HyperPodGuardError, InvalidRulesError
from ..events import IgnoredEvent
from ..findings import Finding
from ..rules import DEFAULT_RULES, Rules, load_rules

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 70


class BadInput(HyperPodGuardError):
    """A file that cannot be read or is not JSON."""


# --- files and rules --------------------------------------------------------------------------


def read_text(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(f"cannot read {what} file {str(path)!r}: {reason}") from None


def read_json(path: str | Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what} file {str(path)!r} is not JSON: {exc}") from None
    except RecursionError:
        raise BadInput(f"{what} file {str(path)!r} is nested too deeply") from None


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


def add_rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", metavar="FILE", help="rules JSON; default: the built-in defaults")


def add_format_option(parser: argparse.ArgumentParser, choices: tuple[str, ...], default: str) -> None:
    parser.add_argument("--format", choices=choices, default=default, help=f"output format (default: {default})")


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: from the environment/profile)")
    parser.add_argument("--profile", metavar="PROFILE", help="AWS named profile")


# --- output -------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _scope(finding: Finding) -> str:
    return "/".join(part for part in (finding.instance_group, finding.node) if part) or "(cluster)"


def render_text(result: Evaluation | IgnoredEvent) -> str:
    """An evaluation as `evaluate` and `check` print it: a line, then a table of the findings."""
    if isinstance(result, IgnoredEvent):
        return f"ignored {result.detail_type!r}: {result.reason}"
    if not result.findings:
        text = f"cluster {result.cluster}: no findings"
    else:
        rows = [(f.severity.value, f.policy, _scope(f), f.summary) for f in result.findings]
        text = (f"cluster {result.cluster}: {len(rows)} finding(s)\n"
                + table(("SEVERITY", "POLICY", "SCOPE", "SUMMARY"), rows))
    if result.resolved:
        text += f"\nresolved by this event: {', '.join(result.resolved)}"
    return text


def render_json(result: Evaluation | IgnoredEvent) -> str:
    """An evaluation as `--format json` prints it: {"cluster", "findings", "resolved"}."""
    if isinstance(result, IgnoredEvent):
        data: dict[str, Any] = {"cluster": None, "findings": [], "ignored": result.reason}
    else:
        data = result.to_dict()
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
