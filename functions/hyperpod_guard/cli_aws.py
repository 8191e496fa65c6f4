"""AWS access for the command line: a session from --region/--profile, errors as one line."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from .errors import HyperPodGuardError

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


def aws_client(args: argparse.Namespace, service: str, label: str) -> Any:
    with aws_errors(label):
        session = boto3.session.Session(region_name=args.region, profile_name=args.profile)
        return session.client(service, config=CLI_CONFIG)


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: from the environment/profile)")
    parser.add_argument("--profile", metavar="PROFILE", help="AWS named profile")
