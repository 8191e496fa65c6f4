"""What a Slurm node runs (issue 23), read on the cluster's controller node through SSM Run Command.

One SendCommand (AWS-RunShellScript) to the controller's HyperPod SSM target
`sagemaker-cluster:<cluster-id>_<controller group>-<instance id>`, with read-only commands only:

    squeue -w <host> -h -o '%i|%j|%u|%a|%P|%T|%D|%N'    the jobs with work on the node
    sinfo -R -h -n <host> -o '%T|%E'                     the node's state and reason, if it is down/drained

then GetCommandInvocation, polled until the command ends or our own `timeout` (then CancelCommand, best
effort): the alert waits at most `timeout` for this. The host is checked against a strict hostname pattern
before it goes into the shell line, and quoted anyway.

`read_slurm_workload` raises `SlurmUnreadable` (with the why); `workload_of` never raises: any failure
(AccessDenied, an unknown target, the command Failed, our timeout, output we cannot parse) becomes
`Workload(host, unknown=why)`, and the alert goes out without the workload.

Not verified against AWS: botocore's SSM model gives InstanceId the pattern `i-...|mi-...`, which the
HyperPod target does not match (botocore does not check patterns, so the request is sent as written);
SendCommand takes the target in `Targets` (Key InstanceIds), whose values the model leaves unconstrained.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
from collections.abc import Callable
from typing import Any

from .model import Job, Workload

DOCUMENT = "AWS-RunShellScript"
#: SendCommand's TimeoutSeconds (the model's minimum): how long SSM may take to deliver the command
DELIVERY_TIMEOUT = 30
#: the command's own execution limit on the node, seconds (AWS-RunShellScript's executionTimeout)
EXECUTION_TIMEOUT = 30
#: squeue's fields: job id, name, user, account, partition, state, node count, node list
SQUEUE_FORMAT = "%i|%j|%u|%a|%P|%T|%D|%N"
SINFO_FORMAT = "%T|%E"
#: the line between squeue's output and sinfo's (neither prints it)
MARKER = "--- hyperpod-guard sinfo ---"
#: GetCommandInvocation statuses after which the command runs no more
FINISHED = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})
#: a DNS hostname (labels of letters, digits and inner hyphens), as Slurm node names are on HyperPod
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_COMMENT_MAX = 100  # SendCommand's Comment


class SlurmUnreadable(Exception):
    """The node's Slurm workload could not be read; the message says why."""


def ssm_target(cluster_id: str, controller_group: str, controller_instance: str) -> str:
    """The HyperPod SSM target of a cluster node (the cluster's id is the last part of its ARN)."""
    return f"sagemaker-cluster:{cluster_id}_{controller_group}-{controller_instance}"


def commands(host: str) -> list[str]:
    """The shell lines sent for `host`: read-only; `set -e` makes a failed squeue fail the command (an empty
    output would otherwise read as "no jobs")."""
    if not _HOSTNAME.fullmatch(host):
        raise SlurmUnreadable(f"not a hostname: {host[:80]!r}")
    quoted = shlex.quote(host)
    return ["set -e",
            f"squeue -w {quoted} -h -o {shlex.quote(SQUEUE_FORMAT)}",
            f"echo {shlex.quote(MARKER)}",
            f"sinfo -R -h -n {quoted} -o {shlex.quote(SINFO_FORMAT)}"]


def read_slurm_workload(ssm: Any, *, cluster_id: str, controller_group: str, controller_instance: str, host: str,
                        timeout: float, poll: float = 1.0, clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> Workload:
    """The jobs on `host` and its state, as the controller's Slurm sees them. Raises SlurmUnreadable."""
    lines = commands(host)  # before any call: a bad host is refused here
    target = ssm_target(cluster_id, controller_group, controller_instance)
    deadline = clock() + timeout
    comment = f"hyperpod-guard: read-only workload of {host}"[:_COMMENT_MAX]
    sent = _call(ssm, "SendCommand", ssm.send_command,
                 DocumentName=DOCUMENT, Targets=[{"Key": "InstanceIds", "Values": [target]}],
                 TimeoutSeconds=DELIVERY_TIMEOUT, Comment=comment,
                 Parameters={"commands": lines, "executionTimeout": [str(EXECUTION_TIMEOUT)]})
    command_id = sent["Command"]["CommandId"]
    while True:
        invocation = _invocation(ssm, command_id, target)
        status = (invocation or {}).get("Status")
        if invocation is not None and status in FINISHED:
            break
        if clock() >= deadline:
            _cancel(ssm, command_id, target)
            raise SlurmUnreadable(f"no answer from {target} within {timeout:g}s (last status {status or 'none'})")
        sleep(max(0.0, min(poll, deadline - clock())))
    if status != "Success":
        stderr = (invocation.get("StandardErrorContent") or "").strip()
        raise SlurmUnreadable(f"command {status} on {target} (exit {invocation.get('ResponseCode')})"
                              + (f": {stderr[-300:]}" if stderr else ""))
    return parse(host, invocation.get("StandardOutputContent") or "")


def workload_of(ssm: Any, *, cluster_id: str, controller_group: str, controller_instance: str, host: str,
                timeout: float, poll: float = 1.0, clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Workload:
    """`read_slurm_workload`, or `Workload(host, unknown=why)` on any failure: never raises."""
    try:
        return read_slurm_workload(ssm, cluster_id=cluster_id, controller_group=controller_group,
                                   controller_instance=controller_instance, host=host, timeout=timeout,
                                   poll=poll, clock=clock, sleep=sleep)
    except SlurmUnreadable as unreadable:
        return Workload(host, unknown=str(unreadable))
    except Exception as error:  # noqa: BLE001 (the alert must go out whatever went wrong here)
        return Workload(host, unknown=f"{type(error).__name__}: {error}")


def parse(host: str, stdout: str) -> Workload:
    """squeue's lines, the marker, sinfo's lines -> the Workload. Raises SlurmUnreadable on other output."""
    if MARKER not in stdout:
        raise SlurmUnreadable(f"unexpected output (no sinfo part): {stdout[:200]!r}")
    jobs_part, _, node_part = stdout.partition(MARKER)
    jobs = tuple(_job(line) for line in jobs_part.splitlines() if line.strip())
    states = [_node_state(line) for line in node_part.splitlines() if line.strip()]
    return Workload(host, jobs, node_state="; ".join(states) or None)


def _job(line: str) -> Job:
    """One squeue line; the job's name may hold '|', the fields after it cannot."""
    job_id, _, rest = line.strip().partition("|")
    fields = rest.rsplit("|", 6)
    if len(fields) != 7 or not job_id or not fields[5].isdigit():
        raise SlurmUnreadable(f"unexpected squeue line: {line[:200]!r}")
    name, user, account, partition, state, nodes, node_list = fields
    return Job(name=f"{name} ({job_id})", kind="slurm", user=user or None, account=account or None,
               queue=partition or None, on_node=1, total=int(nodes),
               labels={"state": state, "nodes": node_list})


def _node_state(line: str) -> str:
    """One `sinfo -R` line, '<state>|<reason>' -> 'drained: <reason>'."""
    state, _, reason = line.strip().partition("|")
    return f"{state}: {reason}" if reason else state


def _call(ssm: Any, operation: str, method: Callable[..., Any], **params: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return method(**params)
    except ClientError as error:
        detail = error.response.get("Error", {})
        raise SlurmUnreadable(f"SSM {operation}: {detail.get('Code')}: {detail.get('Message')}") from error
    except BotoCoreError as error:
        raise SlurmUnreadable(f"SSM {operation}: {error}") from error


def _invocation(ssm: Any, command_id: str, target: str) -> dict[str, Any] | None:
    """The invocation, or None while SSM does not know it yet (InvocationDoesNotExist just after sending)."""
    from botocore.exceptions import ClientError

    try:
        return dict(ssm.get_command_invocation(CommandId=command_id, InstanceId=target))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvocationDoesNotExist":
            return None
        detail = error.response.get("Error", {})
        raise SlurmUnreadable(f"SSM GetCommandInvocation: {detail.get('Code')}: {detail.get('Message')}") from error
    except Exception as error:  # BotoCoreError and kin: reported as unreadable
        raise SlurmUnreadable(f"SSM GetCommandInvocation: {error}") from error


def _cancel(ssm: Any, command_id: str, target: str) -> None:
    """Best effort: the command is read-only, so a failed cancel costs nothing but the node's time."""
    with contextlib.suppress(Exception):
        ssm.cancel_command(CommandId=command_id, InstanceIds=[target])
