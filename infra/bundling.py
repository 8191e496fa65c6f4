"""The Lambda asset, built without Docker: the `hyperpod_guard` package plus its runtime
dependencies installed by pip for the Lambda platform (arm64, the function's Python).

boto3 is left out: every Lambda Python runtime ships it. So are two subpackages, as whole
directories: the command line (`hyperpod_guard/cli`) and the moto-based stand-ins and demo
(`hyperpod_guard/local`); every other module of the package ships, whatever its name. No runtime
module imports them (tests/infra/test_stack.py::test_asset_carries_the_runtime_package_and_not_cli_or_local).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = REPO / "functions"
PACKAGE = FUNCTIONS / "hyperpod_guard"
#: what the functions import besides boto3 (pinned like requirements-dev.lock)
LAMBDA_REQUIREMENTS = ("aws-lambda-powertools[parser]==3.37.0", "pydantic==2.14.3", "slack-sdk==3.48.0")
#: subpackages of hyperpod_guard that are not Lambda code: the command line and the local stand-ins
NOT_SHIPPED = ("cli", "local")
#: what a developer's tree holds besides the sources, at any depth
CACHES = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
#: CDK's exclude globs, relative to functions/ (the asset's source, which it fingerprints): a
#: pattern with a slash is anchored, so only the package's own cli/ and local/ are left out
EXCLUDE = (*CACHES, *(f"{PACKAGE.name}/{name}" for name in NOT_SHIPPED))


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    def __init__(self, python_version: str, platform: str = "manylinux2014_aarch64"):
        self.python_version = python_version
        self.platform = platform

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        result = subprocess.run(  # noqa: S603 - a fixed argv (this interpreter's pip), no shell
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", output_dir, "--platform", self.platform, "--implementation", "cp",
             "--python-version", self.python_version, "--only-binary=:all:", *LAMBDA_REQUIREMENTS],
            capture_output=True, text=True,
        )
        if result.returncode != 0:  # pip's own words, not a bare CalledProcessError
            raise RuntimeError(f"bundling the Lambda dependencies failed:\n{result.stdout}{result.stderr}")
        copy_package(Path(output_dir))
        return True  # done: CDK never starts Docker


def left_out(package: Path) -> Callable[[str, list[str]], set[str]]:
    """shutil.copytree's `ignore` for `package`: caches anywhere, NOT_SHIPPED at its top level."""
    caches = shutil.ignore_patterns(*CACHES)

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(caches(directory, names))
        if Path(directory).resolve() == package.resolve():
            ignored.update(name for name in names if name in NOT_SHIPPED)
        return ignored

    return ignore


def copy_package(output_dir: Path, package: Path = PACKAGE) -> Path:
    """Copy the `hyperpod_guard` package as the asset carries it (the end-to-end tests run this copy)."""
    target = output_dir / "hyperpod_guard"
    shutil.copytree(package, target, dirs_exist_ok=True, ignore=left_out(package))
    return target


#: compileall's mode for an asset: /var/task is read-only and the zip need not keep the sources'
#: mtimes, so a .pyc is never compared with its source; a .pyc of another Python (its magic number)
#: is ignored and that module compiled from source, as without bytecode
BYTECODE_MODE = "unchecked-hash"


def find_python(version: str) -> str | None:
    """A CPython `version` ("3.13") on this machine, to byte-compile an asset for that runtime
    (bytecode is only read by the Python that wrote it): this interpreter, `pythonX.Y` on PATH, or a
    pyenv build. None when there is none."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return getattr(sys, "_base_executable", sys.executable)
    on_path = shutil.which(f"python{version}")  # may be a pyenv shim that refuses to run it
    builds = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in [*([on_path] if on_path else []), *map(str, builds)]:
        ran = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],  # noqa: S603
                             capture_output=True, text=True)
        if ran.returncode == 0 and ran.stdout.strip() == version:
            return candidate
    return None


def compile_bytecode(output_dir: Path, python: str) -> None:
    """Byte-compile everything in `output_dir` with `python`, which must be the runtime's Python."""
    subprocess.run(  # noqa: S603 - a fixed argv
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", BYTECODE_MODE, str(output_dir)],
        check=True, capture_output=True, text=True,
    )


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
