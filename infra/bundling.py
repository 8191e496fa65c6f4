"""The Lambda asset, built without Docker: the `hyperpod_guard` package plus its runtime
dependencies installed by pip for the Lambda platform (arm64, the function's Python).

boto3 is left out: every Lambda Python runtime ships it. So are the local stand-ins
(`hyperpod_guard/local`, moto-based) and caches.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = REPO / "functions"
#: what the functions import besides boto3 (pinned like requirements-dev.lock)
LAMBDA_REQUIREMENTS = ("aws-lambda-powertools[parser]==3.37.0", "pydantic==2.14.3")
#: the command line (cli*, scenarios) and the moto-based stand-ins (local/) are not Lambda code
EXCLUDE = ("__pycache__", "*.pyc", "*.egg-info", "local", ".pytest_cache", "cli.py", "cli_*.py", "scenarios.py", "redrive.py")


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    def __init__(self, python_version: str, platform: str = "manylinux2014_aarch64"):
        self.python_version = python_version
        self.platform = platform

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options) -> bool:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", output_dir, "--platform", self.platform, "--implementation", "cp",
             "--python-version", self.python_version, "--only-binary=:all:", *LAMBDA_REQUIREMENTS],
            capture_output=True, text=True,
        )
        if result.returncode != 0:  # pip's own words, not a bare CalledProcessError
            raise RuntimeError(f"bundling the Lambda dependencies failed:\n{result.stdout}{result.stderr}")
        copy_package(Path(output_dir))
        return True  # done: CDK never starts Docker


def copy_package(output_dir: Path) -> Path:
    """Copy the `hyperpod_guard` package as the asset carries it (the end-to-end tests run this copy)."""
    target = output_dir / "hyperpod_guard"
    shutil.copytree(FUNCTIONS / "hyperpod_guard", target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*EXCLUDE))
    return target


def function_code(runtime: lambda_.Runtime) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(FUNCTIONS),
        exclude=list(EXCLUDE),
        bundling=cdk.BundlingOptions(
            image=runtime.bundling_image,  # required by the API, never pulled
            command=["false"],
            local=PipLocalBundling(runtime.name.removeprefix("python")),
        ),
    )
